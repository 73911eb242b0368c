"""mkdocs hooks of the documentation site (``mkdocs.yml``): pages generated at build time.

* ``methods.md`` / ``operators.md``: one section per registered method (with its shipped
  settings from ``configs/method/NAME.yaml`` when there is one) and per exported operator,
  each the class docstring (equation, paper) through mkdocstrings;
* ``gallery/``: the tutorial notebooks, executed now (their committed copies have no
  outputs), rendered as pages. ``LIT_IP_DOCS_NOTEBOOKS`` (comma-separated stems) limits which
  notebooks run (the docs build test runs one, to stay fast); ``none`` runs none.
"""
from __future__ import annotations

import base64
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parents[1]


def _methods_page() -> str:
    from lit_ip.methods.registry import METHODS

    out = ["# Methods\n", "Every method of the registry (`lit_ip/methods/registry.py`): its docstring states the "
           "update with its equation and the paper (title, arXiv number); shipped settings are the "
           "per-method config files `configs/method/NAME.yaml` (compose them with `--config`, see "
           "[Configs](configs.md)).\n"]
    seen = set()
    for case in METHODS.values():
        cls = case.cls
        if cls in seen:
            continue
        seen.add(cls)
        out.append(f"## {cls.__name__}\n")
        for cfg in sorted((REPO / "configs" / "method").glob("*.yaml")):
            text = cfg.read_text()
            if re.search(rf"\b{re.escape(cls.__module__ + '.' + cls.__name__)}\b", text):
                out.append(f"Shipped settings (`configs/method/{cfg.name}`):\n\n```yaml\n{text.strip()}\n```\n")
        out.append(f"::: {cls.__module__}.{cls.__name__}\n    options:\n      members: false\n      show_root_heading: false\n")
    return "\n".join(out)


def _operators_page() -> str:
    import lit_ip.operators as ops

    out = ["# Operators\n", "Every exported operator and noise model (`lit_ip.operators`). Linear operators give "
           "`adjoint`, `pinv` and the shared linear solves; `SVDOperator`s give them in closed form. Images "
           "in [0, 1]; noise `sigma` in [0, 1] units ([Units](units.md)).\n"]
    for name in ops.__all__:
        obj = getattr(ops, name)
        if isinstance(obj, type):
            out.append(f"## {name}\n\n::: {obj.__module__}.{name}\n    options:\n      members: false\n"
                       f"      show_root_heading: false\n")
    return "\n".join(out)


def _kernel_dir() -> str:
    root = Path(tempfile.mkdtemp(prefix="lit_ip_docs_kernel_"))
    spec = root / "kernels" / "lit_ip_docs"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "lit_ip (docs)", "language": "python",
        "env": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "MPLBACKEND": "module://matplotlib_inline.backend_inline"}}))
    return str(root)


def _render(nb) -> str:
    parts = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source)
        elif cell.cell_type == "code":
            parts.append(f"```python\n{cell.source}\n```")
            for o in cell.get("outputs", []):
                data = o.get("data", {})
                if o.output_type == "stream":
                    parts.append(f"```text\n{o.text.rstrip()}\n```")
                elif "image/png" in data:
                    parts.append(f'<img alt="output" src="data:image/png;base64,{data["image/png"].strip()}">')
                elif "text/plain" in data:
                    parts.append(f"```text\n{data['text/plain'].rstrip()}\n```")
                elif o.output_type == "error":
                    raise RuntimeError(f"notebook cell failed: {o.ename}: {o.evalue}")
    return "\n\n".join(parts) + "\n"


def _gallery(config, files) -> None:
    import nbclient
    import nbformat

    wanted = os.environ.get("LIT_IP_DOCS_NOTEBOOKS", "")
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    if wanted:
        keep = set(wanted.split(",")) if wanted != "none" else set()
        notebooks = [p for p in notebooks if p.stem in keep]
    index = ["# Gallery\n", "The tutorial notebooks of `notebooks/`, executed when this site was built "
             "(the committed notebooks carry no outputs).\n"]
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = _kernel_dir()
    try:
        for path in notebooks:
            nb = nbformat.read(str(path), as_version=4)
            with tempfile.TemporaryDirectory() as work:
                nbclient.NotebookClient(nb, timeout=600, kernel_name="lit_ip_docs",
                                        resources={"metadata": {"path": work}}).execute()
            title = next((c.source.splitlines()[0].lstrip("# ") for c in nb.cells
                          if c.cell_type == "markdown" and c.source.strip()), path.stem)
            files.append(File.generated(config, f"gallery/{path.stem}.md", content=_render(nb)))
            index.append(f"- [{title}]({path.stem}.md)")
    finally:
        if old is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old
    if not notebooks:
        index.append("(no notebooks executed in this build)")
    files.append(File.generated(config, "gallery/index.md", content="\n".join(index) + "\n"))


def on_files(files, config):
    files.append(File.generated(config, "methods.md", content=_methods_page()))
    files.append(File.generated(config, "operators.md", content=_operators_page()))
    _gallery(config, files)
    return files
