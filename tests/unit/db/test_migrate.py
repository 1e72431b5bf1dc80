"""The migration runner's own logic: finding, naming, ordering and checksumming migrations."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from rates.db.migrate import DUMP_VERSION, Migration, MigrationError, discover, sha256_file

REPO_MIGRATIONS = Path(__file__).resolve().parents[3] / "db" / "migrations"


def write(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_text(f"-- {name}\nSELECT 1;\n", encoding="utf-8")


def test_migrations_are_ordered_by_version_not_by_name(tmp_path: Path) -> None:
    write(tmp_path, "0010_zeta.sql", "0002_beta.sql", "0001_omega.sql", "0003_alpha.sql")
    found = discover(tmp_path)
    assert [(m.version, m.name) for m in found] == [
        ("0001", "omega"), ("0002", "beta"), ("0003", "alpha"), ("0010", "zeta"),
    ]  # fmt: skip
    assert [m.path for m in found] == [tmp_path / f"{m.version}_{m.name}.sql" for m in found]


def test_files_other_than_sql_are_ignored(tmp_path: Path) -> None:
    write(tmp_path, "0001_first.sql", "README.md", "0002_draft.sql.bak", "notes.txt")
    (tmp_path / "old").mkdir()
    assert [m.name for m in discover(tmp_path)] == ["first"]


def test_an_empty_folder_has_no_migrations(tmp_path: Path) -> None:
    assert discover(tmp_path) == []


@pytest.mark.parametrize(
    "name", ["1_short.sql", "00001_long.sql", "0001-dash.sql", "0001_Upper.sql", "0001_.sql", "0001_sp ace.sql",
             "abcd_letters.sql", "0001_x.SQL.sql"],
)
def test_malformed_names_are_an_error(tmp_path: Path, name: str) -> None:
    write(tmp_path, "0001_fine.sql", name)
    with pytest.raises(MigrationError, match="migration files are named NNNN_lower_snake.sql") as caught:
        discover(tmp_path)
    assert str(caught.value).startswith(f"{name}:")


def test_version_0000_is_the_dump_s(tmp_path: Path) -> None:
    write(tmp_path, f"{DUMP_VERSION}_schema.sql")
    with pytest.raises(MigrationError, match="version 0000 is reserved or used twice"):
        discover(tmp_path)


def test_a_version_used_twice_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "0001_one.sql", "0002_two.sql", "0002_again.sql")
    with pytest.raises(MigrationError, match="version 0002 is reserved or used twice"):
        discover(tmp_path)


def test_a_missing_folder_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match=f"MIGRATE_DIR: not a directory: {tmp_path / 'nope'}"):
        discover(tmp_path / "nope")


def test_checksum_is_the_sha256_of_the_file_and_follows_its_content(tmp_path: Path) -> None:
    path = tmp_path / "0001_x.sql"
    path.write_bytes(b"CREATE TABLE t (a int);\n")
    migration = Migration("0001", "x", path)
    before = migration.checksum
    assert before == hashlib.sha256(b"CREATE TABLE t (a int);\n").hexdigest() == sha256_file(path)
    path.write_bytes(b"CREATE TABLE t (a bigint);\n")
    assert migration.checksum != before


def test_checksum_reads_large_files_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.sql"
    content = b"-- " + b"x" * (3 << 20) + b"\n"  # more than one read block
    path.write_bytes(content)
    assert sha256_file(path) == hashlib.sha256(content).hexdigest()


def test_the_repository_s_migrations_are_well_formed() -> None:
    versions = [m.version for m in discover(REPO_MIGRATIONS)]
    assert versions == [f"{n:04d}" for n in range(1, len(versions) + 1)], "versions follow each other from 0001"
