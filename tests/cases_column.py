"""Contract cases for ``tabattn/layers/column.py``."""

from contract import Case, floats, rng  # noqa: F401

import tabattn.layers as L  # noqa: F401

CASES = []
