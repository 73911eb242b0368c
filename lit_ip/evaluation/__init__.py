"""Evaluation harnesses above the method layer (exact posteriors of analytic priors)."""
from .exact import *  # noqa: F401,F403
from .exact import __all__  # noqa: F401
