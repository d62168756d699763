"""The import graph of the product: no cycles, and imports only along the data flow.

Every module of every product package is parsed (not imported), and every import it
holds counts, also those inside functions and under ``TYPE_CHECKING``: an import put
inside a function to dodge a cycle is still a cycle here. A package may import itself
and any package of a lower layer; packages of the same layer stay apart.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The flow, bottom up: core → storage → recorder/transcriber → compliance → indexer →
# evidence → api → cli. compliance sits below indexer because the indexer runs the
# banned-word matcher on every utterance it indexes.
LAYERS: dict[str, int] = {
    "core": 0,
    "storage": 1,
    "recorder": 2,
    "transcriber": 2,
    "compliance": 3,
    "indexer": 4,
    "evidence": 5,
    "api": 6,
    "cli": 7,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def product_modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:  # alembic's scripts, run by alembic only
                continue
            found[module_name(path)] = path
    return found


def imported(path: Path, name: str, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(module of ours, line) for every import in the file, resolved to a module."""
    source = path.read_text(encoding="utf-8")
    yield from imports_in(source, name, path.name == "__init__.py", modules)


def imports_in(
    text: str, name: str, is_package: bool, modules: dict[str, Path]
) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in LAYERS:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            if source.split(".")[0] not in LAYERS:
                continue
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                yield (candidate if candidate in modules else source), node.lineno


def graph() -> dict[str, set[str]]:
    modules = product_modules()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, _line in imported(path, name, modules):
            if target in modules and target != name:
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_imports_follow_the_flow() -> None:
    modules = product_modules()
    against = []
    for name, path in modules.items():
        package = name.split(".")[0]
        for target, line in imported(path, name, modules):
            other = target.split(".")[0]
            if other != package and LAYERS[other] >= LAYERS[package]:
                against.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert against == []


def test_the_check_sees_cycles_and_wrong_imports() -> None:
    # The checks themselves can fail: a two-module cycle and a three-module one are found.
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    # An import inside a function counts, resolved to the module it names; relative
    # imports resolve against the importing module's package; other packages are ignored.
    modules = product_modules()
    hidden = "import json\n\ndef f():\n    from api.app import create_app\n    from . import s3\n"
    assert list(imports_in(hidden, "storage.blobs.factory", False, modules)) == [
        ("api.app", 4),
        ("storage.blobs.s3", 5),
    ]


def test_core_imports_nothing_of_ours() -> None:
    modules = product_modules()
    outside = [
        f"{name} imports {target}"
        for name, path in modules.items()
        if name.startswith("core")
        for target, _line in imported(path, name, modules)
        if not target.startswith("core")
    ]
    assert outside == []
