"""The shape of the shipped package: small modules and functions, and layers that only import
downwards, without cycles.

Layers, lowest first: errors, rules, config -> observability -> db -> reads, batches ->
components (the composition root) -> api -> the entry points (wsgi, serve, __main__).
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "rates"
MAX_PACKAGE_LINES = 3000
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
LAYERS = [
    {"rates", "rates.errors", "rates.rules", "rates.config"},
    {"rates.observability"},
    {"rates.db"},
    {"rates.reads", "rates.batches"},
    {"rates.components"},
    {"rates.api"},
    {"rates.wsgi", "rates.serve", "rates.__main__"},
]


def modules() -> dict[str, Path]:
    """Module name -> file, for every Python file of the package (gunicorn.conf.py is a config file)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "gunicorn.conf.py":
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def layer(module: str) -> int:
    for index, members in enumerate(LAYERS):
        if any(module == m or module.startswith(m + ".") for m in members if m != "rates") or module == "rates":
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def imports(path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports (anywhere in the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in known}
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, set(known)) - {name} for name, path in known.items()}


def lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def code_lines(source: str) -> int:
    """Lines of code as cloc, sloccount and tokei count them: lines holding a token other than a
    comment or a docstring (a string that is a statement of its own); blank lines, comments and
    docstrings are not code."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    counted: set[int] = set()
    statement_start = True
    for token in tokens:
        if token.type in skip:
            statement_start = statement_start or token.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
            continue
        docstring = token.type == tokenize.STRING and statement_start
        statement_start = False
        if not docstring:
            counted.update(range(token.start[0], token.end[0] + 1))
    return len(counted)


def test_code_lines_count_code_only():
    source = ('"""Module\ndocstring."""\n\n# a comment\nX = """not a\ndocstring"""\n\n\n'
              'def f():\n    "doc"\n    return 1\n')
    assert code_lines(source) == 4  # X = (2 lines), def f, return


def test_the_package_is_small():
    """At most 3,000 lines of code (code_lines: what cloc calls code). Physical lines, with
    docstrings, comments and blank lines, are printed by the failure message for comparison."""
    sources = [path.read_text() for path in modules().values()]
    total = sum(code_lines(source) for source in sources)
    physical = sum(len(source.splitlines()) for source in sources)
    assert total <= MAX_PACKAGE_LINES, f"rates/ has {total} lines of code ({physical} physical lines)"


@pytest.mark.parametrize("name", sorted(modules()))
def test_each_module_is_small(name):
    assert lines(modules()[name]) <= MAX_MODULE_LINES


def test_each_function_is_small():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert long == []


def test_no_module_imports_a_higher_layer():
    upward = [f"{module} imports {target}" for module, targets in graph().items() for target in targets
              if layer(target) > layer(module)]
    assert upward == []


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_there_is_no_import_cycle():
    assert cycle(graph()) is None


def test_the_checks_catch_what_they_look_for():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None
    assert layer("rates.api.app") > layer("rates.db.pools") > layer("rates.config")
