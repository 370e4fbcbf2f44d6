"""The package's shape: the layer contract in pyproject.toml holds, and no module imports,
even indirectly, a module that imports it back (function-level imports included)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports() -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is a dev dependency: make install"
    return subprocess.run(
        [exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_layer_contracts_are_kept():
    res = _lint_imports()
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "5 kept, 0 broken" in res.stdout


def test_no_module_is_part_of_an_import_cycle():
    graph = grimp.build_graph("segmint", cache_dir=None)
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if importer == "segmint" or imported == "segmint":
                continue  # the package's __init__ re-exports the API lazily
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                cycles.append(" -> ".join([importer, *back]))
    assert not cycles, "import cycles:\n" + "\n".join(cycles[:20])


@pytest.fixture
def upward_import():
    """A temporary upward import (data → pipeline), removed afterwards."""
    path = ROOT / "src" / "segmint" / "data" / "_layer_probe.py"
    path.write_text("from segmint.pipeline import segmentation  # noqa: F401\n")
    try:
        yield path
    finally:
        path.unlink()


def test_the_contract_catches_an_upward_import(upward_import):
    res = _lint_imports()
    assert res.returncode != 0
    assert "segmint.data._layer_probe -> segmint.pipeline.segmentation" in res.stdout
