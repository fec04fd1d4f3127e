"""The package's layout: the layers contract holds and catches a wrong import, optional extras are
imported lazily, and the tree keeps to its size guidelines."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "siftdata"
LINT_IMPORTS = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))

needs_import_linter = pytest.mark.skipif(
    not Path(LINT_IMPORTS).exists(),
    reason="import-linter is not installed: pip install -e '.[dev]'",
)


def _lint(tree: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with ``tree``'s pyproject.toml, importing siftdata from ``tree/src``."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "COLUMNS": "300"}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=tree, env=env, capture_output=True, text=True
    )


def _copy_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(
        PACKAGE, tree / "src" / "siftdata", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


@needs_import_linter
def test_the_layers_contract_holds():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@needs_import_linter
@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("core/scores.py", "from ..training import loop", "Layers"),
        ("scoring/scorers.py", "from ..online import methods", "Layers"),
        ("core/sampling.py", "from .. import store", "The core is pure tensor math"),
        ("training/loop.py", "from ..bench import common", "never imports the benchmarks"),
        ("online/step.py", "import matplotlib", "Optional extras"),
    ],
)
def test_a_wrong_import_breaks_a_contract(tmp_path, module, line, contract):
    tree = _copy_tree(tmp_path)
    path = tree / "src" / "siftdata" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = _lint(tree)
    assert result.returncode != 0
    broken = [row for row in result.stdout.splitlines() if " BROKEN" in row]
    assert any(contract in row for row in broken), result.stdout


def test_optional_extras_are_imported_lazily():
    """Importing every module of siftdata loads none of the extras (matplotlib, pyarrow, scipy,
    transformers, lightning), but for the trainers' integrations, which subclass theirs."""
    code = (
        "import importlib, pkgutil, sys, siftdata\n"
        "own = ('siftdata.integrations.hf', 'siftdata.integrations.lightning')\n"
        "for m in pkgutil.walk_packages(siftdata.__path__, 'siftdata.'):\n"
        "    if m.name not in own:\n"
        "        importlib.import_module(m.name)\n"
        "extras = ('matplotlib', 'pyarrow', 'scipy', 'transformers', 'lightning')\n"
        "print(sorted(x for x in extras if x in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_modules_keep_to_the_size_guidelines():
    too_long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not too_long, f"modules over 400 lines: {too_long}"
    top = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert len(top) <= 12, f"{len(top)} modules directly under siftdata/: {sorted(top)}"
