"""The tutorial notebooks: committed without outputs, and executed end to end so they cannot rot.

Each notebook runs in a fresh kernel of this interpreter (a kernelspec written to a temporary
``JUPYTER_PATH``, so no kernel needs to be installed), single-threaded, with a per-cell timeout.
Notebooks that load a shipped prior are skipped while that prior is not in the package.
"""
from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from lit_ip.priors.pretrained import shipped_priors  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ("01_quick_tour", "02_exact_posteriors", "03_notebook_to_config")
CELL_TIMEOUT = 300      # seconds per cell (the slowest cell takes ~25 s on a loaded 2-core machine)
KERNEL = "lit_ip_notebook_test"


def _strip_tool():
    spec = importlib.util.spec_from_file_location("strip_notebooks", REPO / "tools" / "strip_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _source(nb) -> str:
    return "\n".join(c.source for c in nb.cells)


def test_the_tutorial_notebooks_exist():
    assert set(EXPECTED) <= {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs(path):
    found = _strip_tool().problems(nbformat.read(str(path), as_version=4))
    assert not found, f"{path.name} holds outputs; run `python tools/strip_notebooks.py`: {found}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_uses_public_api_only(path):
    """Tutorials import what users can: no ``_private`` names, no test helpers."""
    src = _source(nbformat.read(str(path), as_version=4))
    private = re.findall(r"(?:from\s+lit_ip[\w.]*\s+import\s+[^\n]*\b_\w+|lit_ip(?:\.\w+)*\._\w+)", src)
    assert not private, f"{path.name} uses private names: {private}"
    assert "conftest" not in src and "tests." not in src


def test_strip_tool_strips(tmp_path):
    tool = _strip_tool()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("1 + 1")])
    nb.cells[1].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nb.cells[1].execution_count = 1
    nb.cells[1].metadata["execution"] = {"iopub.status.busy": "2024-01-01"}
    nb.metadata.update(kernelspec={"name": "python3", "display_name": "Python 3", "language": "python"},
                       language_info={"name": "python", "version": "3.11.0"}, widgets={})
    f = tmp_path / "n.ipynb"
    nbformat.write(nb, str(f))
    assert tool.main(["--check", str(f)]) == 1
    assert tool.main([str(f)]) == 0
    clean = nbformat.read(str(f), as_version=4)
    assert tool.problems(clean) == [] and tool.main(["--check", str(f)]) == 0
    assert clean.cells[1].outputs == [] and clean.cells[1].execution_count is None
    assert clean.cells[1].source == "1 + 1" and clean.metadata["kernelspec"]["name"] == "python3"


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
    """A kernelspec for this interpreter in a temporary JUPYTER_PATH (nothing is installed)."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "lit_ip (tests)", "language": "python",
        "env": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    }))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, kernel_dir, monkeypatch, tmp_path):
    nb = nbformat.read(str(path), as_version=4)
    needed = sorted(set(re.findall(r"PretrainedPrior\(\s*[\"'](\w+)[\"']", _source(nb))))
    missing = [n for n in needed if n not in shipped_priors()]
    if missing:
        pytest.skip(f"shipped priors {missing} are not in lit_ip/assets/priors yet")
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=KERNEL,
                                     resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    elapsed = time.perf_counter() - start
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    figures = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert figures >= 1, f"{path.name} drew no figure"
    print(f"{path.name}: {elapsed:.1f} s, {figures} figures")
