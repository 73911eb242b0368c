"""Every method's output on fixed seeds is what it was before the method layer was reshaped
(``tests/pins/method_pins.safetensors``, written by ``tests/pins/make_method_pins.py`` from the code
before the change). A difference made on purpose is listed in :data:`CHANGED_ON_PURPOSE` with why."""
import pathlib
import sys

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(pathlib.Path(__file__).parent / "pins"))
import make_method_pins as pins  # noqa: E402

REFERENCE = load_file(str(pins.OUT))

#: pinned cases whose outputs changed on purpose, with the reason
CHANGED_ON_PURPOSE: dict = {}


def test_every_case_is_pinned():
    assert set(REFERENCE) == set(pins.cases())


@pytest.mark.parametrize("name", sorted(set(pins.cases()) - set(CHANGED_ON_PURPOSE)))
def test_output_matches_pin(name):
    out = pins.run(name)
    ref = REFERENCE[name]
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, rtol=1e-7, atol=1e-9), (name, float((out - ref).abs().max()))
