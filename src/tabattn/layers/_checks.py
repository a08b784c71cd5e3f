"""Argument and shape checks shared by every tabattn layer.

Each check raises ``ValueError`` with one message pattern: the argument, what was expected,
and what was received.
"""

import math
import numbers


def positive_int(name, value, allow_none=False):
    """Return ``value`` as an ``int`` if it is a positive integer, else raise ``ValueError``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def rate(name, value):
    """Return ``value`` as a ``float`` if it lies in [0, 1), else raise ``ValueError``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or not 0 <= value < 1
    ):
        raise ValueError(f"`{name}` must be a number in [0, 1). Received: {name}={value!r}")
    return float(value)


def positive_float(name, value):
    """Return ``value`` as a ``float`` if it is finite and > 0, else raise ``ValueError``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"`{name}` must be a finite number > 0. Received: {name}={value!r}")
    return float(value)


def one_of(name, value, choices):
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError``."""
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {sorted(choices, key=repr)}. Received: {name}={value!r}"
        )
    return value


def rank(name, shape, expected, layer):
    """Raise ``ValueError`` unless ``len(shape)`` is in ``expected`` (an int or a tuple)."""
    expected = (expected,) if isinstance(expected, int) else tuple(expected)
    if len(shape) not in expected:
        described = " or ".join(str(r) for r in expected)
        raise ValueError(
            f"{layer} expects `{name}` of rank {described}. "
            f"Received: {name}.shape={tuple(shape)} (rank {len(shape)})"
        )


def dim_matches(name, declared, actual, layer, axis_name):
    """Raise ``ValueError`` if a declared size disagrees with the size found in the input."""
    if declared is not None and actual is not None and declared != actual:
        raise ValueError(
            f"{layer} was built with {name}={declared}, but the input has {actual} "
            f"{axis_name}. Pass {name}={actual} or leave it as None to infer it."
        )
