"""`make run` installs what running needs, `make test` the development tools as well.

The Makefile is read with ``make -n`` (nothing installed), and the product's modules are
parsed (not imported): none imports, at run time, a package only the [dev] set brings.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("core", "storage", "recorder", "transcriber", "compliance", "indexer", "evidence")
PRODUCT += ("api", "cli")


def planned(target: str, venv: Path) -> list[str]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in done.stdout.splitlines() if "pip install" in line]


def test_make_run_installs_the_runtime_set_only(tmp_path: Path) -> None:
    installs = planned("run", tmp_path / "venv")
    assert any(re.search(r"pip install .*-e \.$", line) for line in installs), installs
    assert not any("[dev]" in line for line in installs), installs


def test_make_test_installs_the_development_tools(tmp_path: Path) -> None:
    installs = planned("test", tmp_path / "venv")
    assert any("-e '.[dev]'" in line for line in installs), installs


def _requirement_name(spec: str) -> str:
    name = re.split(r"[\[<>=!~ ;]", spec, maxsplit=1)[0]
    return name.lower().replace("_", "-")


def dev_only_modules() -> set[str]:
    """Top-level import names of the distributions only [dev] installs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    elsewhere = {_requirement_name(s) for s in project["dependencies"]}
    for extra, specs in extras.items():
        if extra != "dev":
            elsewhere |= {_requirement_name(s) for s in specs}
    dev_only = {_requirement_name(s) for s in extras["dev"]} - elsewhere
    return {
        module
        for module, dists in packages_distributions().items()
        if any(d.lower().replace("_", "-") in dev_only for d in dists)
    }


def runtime_imports(tree: ast.AST) -> set[str]:
    """Top-level names imported outside ``if TYPE_CHECKING:`` blocks."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_the_product_imports_no_development_tool() -> None:
    dev_only = dev_only_modules()
    assert {"pytest", "playwright", "moto"} <= dev_only  # the check sees the dev set
    offenders = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            names = runtime_imports(ast.parse(path.read_text(encoding="utf-8")))
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in sorted(names & dev_only)]
    assert not offenders
