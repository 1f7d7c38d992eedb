"""The engine must run without Qt: nothing under engine/ imports it, directly or through a dependency."""
import ast
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "engine"
QT_MODULES = {"PySide6", "PyQt5", "PyQt6", "qtpy", "shiboken6"}


def test_no_engine_source_imports_qt():
    offenders = []
    for path in ENGINE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in QT_MODULES]
    assert offenders == []


def _loaded_by_importing_the_engine(packages) -> str:
    modules = sorted({p.relative_to(ENGINE.parent).with_suffix("").as_posix().replace("/", ".")
                      for p in ENGINE.rglob("*.py") if p.name not in ("env.py",) and "versions" not in p.parts})
    code = ("import importlib, sys\n"
            f"for m in {modules!r}:\n"
            "    if not m.endswith('__main__'): importlib.import_module(m)\n"
            f"print(sorted(k for k in sys.modules if k.split('.')[0] in {sorted(packages)!r}))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_importing_every_engine_module_loads_no_qt():
    assert _loaded_by_importing_the_engine(QT_MODULES) == "[]"


def test_importing_every_engine_module_loads_no_torch():
    """torch (the `learned` extra) is imported only when a learned feature is asked for."""
    assert _loaded_by_importing_the_engine({"torch", "kornia"}) == "[]"
