"""The scripts in scripts/ run where the suite does not (a GPU machine, a peer's checkout): every name they
import from the package must exist, so that a module moved or renamed fails here rather than there."""

import ast
import importlib
from pathlib import Path

import pytest

SCRIPTS = sorted(p for p in (Path(__file__).parents[1] / "scripts").iterdir() if p.is_file())


def python_scripts() -> list[Path]:
    return [p for p in SCRIPTS if p.suffix == ".py" or p.read_text().startswith("#!/usr/bin/env python")]


def package_imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, name) for every `from workbench... import name` and `import workbench...` in the file."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("workbench"):
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name.startswith("workbench")]
    return found


def test_the_python_scripts_are_found():
    names = {p.name for p in python_scripts()}
    assert {"gpu-check", "cuda_ab.py", "reliability-table"} <= names


@pytest.mark.parametrize("script", python_scripts(), ids=lambda p: p.name)
def test_every_name_a_script_imports_from_the_package_exists(script):
    missing = []
    for module, name in package_imports(script):
        try:
            imported = importlib.import_module(module)
        except ImportError as exc:
            missing.append(f"{module}: {exc}")
            continue
        if name is not None and not hasattr(imported, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{module}.{name}")
    assert not missing, f"{script.name} imports what the package does not have: {missing}"
