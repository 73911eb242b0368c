"""The package is typed (py.typed) and its public packages list their names in ``__all__``."""
import importlib

import pytest

from conftest import REPO

PACKAGES = ["lit_ip", "lit_ip.priors", "lit_ip.operators", "lit_ip.methods", "lit_ip.sampling",
            "lit_ip.metrics", "lit_ip.models", "lit_ip.data", "lit_ip.lightning"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_resolve(name):
    mod = importlib.import_module(name)
    assert mod.__all__ and len(set(mod.__all__)) == len(mod.__all__), name
    for public in mod.__all__:
        assert getattr(mod, public, None) is not None or importlib.import_module(f"{name}.{public}"), public


def test_py_typed_is_shipped():
    assert (REPO / "lit_ip" / "py.typed").is_file()
    assert '"py.typed"' in (REPO / "pyproject.toml").read_text()


def test_demo_installs_without_test_extras():
    make = (REPO / "Makefile").read_text()
    demo = next(line for line in make.splitlines() if line.startswith("demo:"))
    assert ".installed" not in demo and "$(VENV)/.base" in demo
    assert "$(PY) -m pip install -q -e .\n" in make  # the package alone, no extras
