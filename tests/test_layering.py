"""Layering and randomness: nothing below ``lit_ip/lightning/`` imports Lightning, and per-sample
randomness comes from the one base module ``lit_ip/rng.py``."""
import json
import re
import subprocess
import sys
from pathlib import Path

LIT_IP = Path(__file__).resolve().parents[1] / "lit_ip"
#: packages (and modules) below the Lightning layer (docs/architecture.md, Layers)
BELOW_LIGHTNING = ("data", "metrics", "priors", "methods", "operators", "sampling", "models", "evaluation")

_IMPORT_ALL = """
import importlib, json, pkgutil, sys
import lit_ip, lit_ip.rng, lit_ip.api
names = []
for pkg in {pkgs!r}:
    mod = importlib.import_module("lit_ip." + pkg)
    names.append(mod.__name__)
    for info in pkgutil.walk_packages(mod.__path__, mod.__name__ + "."):
        importlib.import_module(info.name)
        names.append(info.name)
print(json.dumps({{"imported": names,
                  "lightning": sorted(m for m in sys.modules if m.split(".")[0] in ("lightning", "pytorch_lightning"))}}))
"""


def test_modules_below_the_lightning_layer_do_not_import_lightning():
    proc = subprocess.run([sys.executable, "-c", _IMPORT_ALL.format(pkgs=BELOW_LIGHTNING)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "lit_ip.data.shards" in out["imported"] and "lit_ip.metrics.memorization" in out["imported"]
    assert out["lightning"] == [], f"importing lit_ip.{{{','.join(BELOW_LIGHTNING)}}} loaded {out['lightning'][:5]}"


def _sources(*packages):
    for pkg in packages:
        yield from sorted((LIT_IP / pkg).rglob("*.py"))


def test_no_deferred_lightning_imports_below_the_lightning_layer():
    """Also imports inside functions (not seen by the subprocess test until they run)."""
    pattern = re.compile(r"^\s*(from|import)\s+(lightning|pytorch_lightning)\b|^\s*from\s+\.+lightning\b"
                         r"|^\s*(from|import)\s+lit_ip\.lightning\b", re.M)
    bad = [str(p.relative_to(LIT_IP)) for p in _sources(*BELOW_LIGHTNING) if pattern.search(p.read_text())]
    assert bad == [], f"modules below lit_ip/lightning/ importing Lightning: {bad}"


def test_datamodules_live_in_the_lightning_layer():
    pattern = re.compile(r"LightningDataModule\)")
    found = [str(p.relative_to(LIT_IP)) for p in sorted(LIT_IP.rglob("*.py")) if pattern.search(p.read_text())]
    assert found and all(f.startswith("lightning/") for f in found), found


def test_operators_and_methods_take_randomness_from_lit_ip_rng():
    """Per-sample randomness lives in one module, ``lit_ip.rng`` (no second copy or alias), and
    methods never seed their own generators (their randomness is the ``rng`` argument, a
    per-sample ``SampleRNG``)."""
    copies = [str(p.relative_to(LIT_IP)) for p in sorted(LIT_IP.rglob("rng.py"))]
    assert copies == ["rng.py"], f"randomness modules besides lit_ip/rng.py: {copies}"
    seeding = re.compile(r"torch\.Generator\(|manual_seed\(|np\.random\.")
    own = [str(p.relative_to(LIT_IP)) for p in _sources("methods") if seeding.search(p.read_text())]
    assert own == [], f"methods seeding their own generators: {own}"


def test_benchmarks_do_not_import_tests():
    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    pattern = re.compile(r"^\s*(from|import)\s+(test_\w+|tests\b|conftest)|sys\.path\.\w+\(.*tests", re.M)
    bad = [p.name for p in sorted(bench.glob("*.py")) if pattern.search(p.read_text())]
    assert bad == [], f"benchmarks importing test modules: {bad}"
