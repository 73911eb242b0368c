"""The documentation site builds offline with warnings as errors (mkdocs --strict), with the
API reference from docstrings and a gallery notebook executed at build time."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")


@pytest.mark.slow
def test_docs_build_strict_with_an_executed_notebook(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", LIT_IP_DOCS_NOTEBOOKS="02_exact_posteriors")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    site = tmp_path / "site"
    for page in ("index", "architecture", "methods", "operators", "units", "scale", "api", "configs", "metrics"):
        assert (site / page / "index.html").is_file() or (page == "index" and (site / "index.html").is_file()), page
    from lit_ip.methods.registry import METHODS

    methods = (site / "methods" / "index.html").read_text()
    for case in METHODS.values():
        assert f'id="{case.cls.__name__.lower()}"' in methods or case.cls.__name__ in methods, case.cls.__name__
    assert "arXiv" in methods and "configs/method/dps.yaml" in methods
    api = (site / "api" / "index.html").read_text()
    assert "posterior_sample" in api and "DiffusersPrior" in api
    gallery = (site / "gallery" / "02_exact_posteriors" / "index.html").read_text()
    assert "data:image/png;base64," in gallery  # outputs produced by executing it now


@pytest.mark.slow
def test_docs_build_fails_on_a_broken_reference(tmp_path):
    """--strict is real: a page naming a missing object fails the build."""
    import shutil

    import yaml

    docs = tmp_path / "docs"
    shutil.copytree(REPO / "docs", docs)
    (docs / "broken.md").write_text("# Broken\n\n::: lit_ip.no_such_module\n")
    cfg = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    cfg.update(docs_dir=str(docs), site_dir=str(tmp_path / "site"), hooks=[str(REPO / "tools" / "docs_hooks.py")])
    cfg["nav"].append({"Broken": "broken.md"})
    cfg["plugins"][1]["mkdocstrings"]["handlers"]["python"]["paths"] = [str(REPO)]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1", LIT_IP_DOCS_NOTEBOOKS="none")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(tmp_path / "mkdocs.yml")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "no_such_module" in proc.stdout + proc.stderr
