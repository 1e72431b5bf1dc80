"""scripts/private-workdir, the work folder of bootstrap and build-stand-ins (run as root): made
private when missing, refused when another user could have prepared or could change it."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from rates.config import PROJECT_DIR


def workdir(path: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PROJECT_DIR / "scripts" / "private-workdir")], env={**os.environ,
                          "BOOTSTRAP_WORKDIR": str(path)}, capture_output=True, text=True, timeout=30, check=False)


def test_a_missing_folder_is_created_private(tmp_path):
    folder = tmp_path / "a" / "work"
    proc = workdir(folder)
    assert proc.returncode == 0 and proc.stdout == f"{folder}\n"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.mark.parametrize("case", ["symlink", "writable by others", "relative", "a file", "another owner"])
def test_a_folder_others_could_tamper_with_is_refused(tmp_path, case):
    folder = tmp_path / "work"
    if case == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        folder.symlink_to(tmp_path / "elsewhere")
    elif case == "writable by others":
        folder.mkdir()
        folder.chmod(0o777)
    elif case == "relative":
        folder = Path("work")
    elif case == "a file":
        folder.write_text("")
    else:
        if os.getuid() != 0:
            pytest.skip("giving a folder to another user needs root")
        folder.mkdir(mode=0o700)
        os.chown(folder, 65534, 65534)
    proc = workdir(folder)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith(f"ERROR: work folder {folder}: ")
