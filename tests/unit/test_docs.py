"""The documentation is consistent: diagrams rendered from their current sources, links that resolve.

- Every diagram source in docs/diagrams (*.dot, *.mmd) has its SVG committed next to it, and the
  SVG was rendered from the source as it is now: scripts/render-docs (`make docs`) appends the
  source's sha256 to each SVG, compared here. No renderer is needed to run these tests.
- Every Mermaid block embedded in a document is the text of a source in docs/diagrams, so what
  the code host renders from the Markdown is also committed rendered.
- Every relative link and image in README.md and docs/**/*.md points to a file that exists
  (anchors, queries and absolute URLs are ignored; code blocks and code spans are not links).
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIAGRAMS = ROOT / "docs" / "diagrams"
SOURCE_SUFFIXES = (".dot", ".mmd")


# ---- helpers (also exercised on purpose-made broken inputs below) ----------------------------


def diagram_sources(folder: Path = DIAGRAMS) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in SOURCE_SUFFIXES) if folder.is_dir() else []


def rendering_problem(source: Path) -> str | None:
    """Why the committed SVG of ``source`` cannot be trusted, or None when it is current."""
    svg = source.with_suffix(".svg")
    if not svg.is_file():
        return f"{svg.name} is missing: run `make docs` and commit it"
    text = svg.read_text(encoding="utf-8")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if f"sha256:{digest}" not in text:
        return f"{svg.name} was not rendered from the current {source.name}: run `make docs` and commit it"
    try:
        root = ET.fromstring(text)  # noqa: S314 - our own committed file
    except ET.ParseError as exc:
        return f"{svg.name} is not well-formed XML: {exc}"
    if not root.tag.endswith("svg"):
        return f"{svg.name} is not an SVG document (root element {root.tag})"
    return None


def markdown_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [f for f in files if f.is_file()]


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]"  # [text], one level of nested brackets allowed
    r"\(\s*(<[^>]*>|[^)\s]+)"  # (target or (<target>
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"  # optional title, )
)
_REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
_HTML_ATTR = re.compile(r"<(?:a|img|source)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with code spans blanked."""
    out: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        m = _FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            continue
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not m.group(2).strip():
                fence = None
            continue
        out.append((number, _CODE_SPAN.sub(lambda s: " " * len(s.group(0)), line)))
    return out


def relative_links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every link or image that points at a file of the repository."""
    found: list[tuple[int, str]] = []
    for number, line in prose_lines(text):
        targets = [m.group(1) for m in _INLINE_LINK.finditer(line)]
        targets += [m.group(1) for m in _REFERENCE_DEF.finditer(line)]
        targets += [m.group(1) for m in _HTML_ATTR.finditer(line)]
        for target in targets:
            target = target.strip("<>").strip()
            if not target or target.startswith(("#", "//")) or _SCHEME.match(target):
                continue
            path = unquote(re.split(r"[#?]", target, maxsplit=1)[0])
            if path:
                found.append((number, path))
    return found


def broken_links(markdown: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for number, path in relative_links(markdown.read_text(encoding="utf-8")):
        resolved = (root / path.lstrip("/")) if path.startswith("/") else (markdown.parent / path)
        if not resolved.exists():
            problems.append(f"{markdown.relative_to(root)}:{number}: {path} does not exist")
    return problems


def mermaid_blocks(text: str) -> list[str]:
    blocks, current, fence = [], None, None
    for line in text.splitlines():
        m = _FENCE.match(line)
        if current is None and m and m.group(2).strip().lower() == "mermaid":
            current, fence = [], m.group(1)
        elif current is not None and m and m.group(1).startswith(fence) and not m.group(2).strip():
            blocks.append("\n".join(current).strip())
            current = None
        elif current is not None:
            current.append(line)
    return blocks


# ---- the repository's documentation -----------------------------------------------------------


def test_there_are_diagrams_and_documents():
    assert diagram_sources(), f"no diagram source (*.dot, *.mmd) in {DIAGRAMS}"
    assert (ROOT / "docs" / "ingestion-pipeline.md").is_file()


@pytest.mark.parametrize("source", diagram_sources(), ids=lambda p: p.name)
def test_diagram_rendering_is_committed_and_current(source: Path):
    problem = rendering_problem(source)
    assert problem is None, problem


@pytest.mark.parametrize("source", diagram_sources(), ids=lambda p: p.name)
def test_diagram_is_used_by_a_document(source: Path):
    svg = source.with_suffix(".svg")
    users = [md for md in markdown_files()
             if any((md.parent / path).resolve() == svg.resolve() for _, path in relative_links(md.read_text()))]
    assert users, f"{svg.relative_to(ROOT)} is not linked from any document"


@pytest.mark.parametrize("markdown", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(markdown: Path):
    assert broken_links(markdown) == []


@pytest.mark.parametrize("markdown", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_embedded_mermaid_is_a_committed_source(markdown: Path):
    sources = {p.read_text(encoding="utf-8").strip() for p in DIAGRAMS.glob("*.mmd")}
    for block in mermaid_blocks(markdown.read_text(encoding="utf-8")):
        assert block in sources, (
            f"{markdown.relative_to(ROOT)}: a mermaid block differs from every docs/diagrams/*.mmd "
            "(keep the block identical to its source, then run `make docs`)"
        )


# ---- the checks fail when they should -----------------------------------------------------------


def test_stale_and_missing_renderings_are_detected(tmp_path: Path):
    source = tmp_path / "flow.dot"
    source.write_text("digraph { a -> b }\n")
    assert "missing" in rendering_problem(source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    (tmp_path / "flow.svg").write_text(f'<svg xmlns="http://www.w3.org/2000/svg"/>\n<!-- x sha256:{digest} -->\n')
    assert rendering_problem(source) is None
    source.write_text("digraph { a -> c }\n")  # edited, not re-rendered
    assert "not rendered from the current" in rendering_problem(source)


def test_broken_links_are_detected(tmp_path: Path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "there.md").write_text("x")
    doc = tmp_path / "docs" / "doc.md"
    doc.write_text(
        "[ok](there.md#part) [gone](missing.md) ![img](img/none.svg) [web](https://example.org/x)\n"
        "[anchor](#top) [root](/docs/there.md) <img src=\"pic.png\">\n"
        "`[code](nope.md)`\n\n```\n[fenced](nope2.md)\n```\n[ref]: ../absent.txt\n"
    )
    assert broken_links(doc, root=tmp_path) == [
        "docs/doc.md:1: missing.md does not exist",
        "docs/doc.md:1: img/none.svg does not exist",
        "docs/doc.md:2: pic.png does not exist",
        "docs/doc.md:8: ../absent.txt does not exist",
    ]


def test_mermaid_blocks_are_extracted():
    text = "intro\n```mermaid\nsequenceDiagram\n  A->>B: hi\n```\n```python\nx = 1\n```\n"
    assert mermaid_blocks(text) == ["sequenceDiagram\n  A->>B: hi"]
