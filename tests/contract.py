"""The row type of the shared layer contract table (see ``test_layer_contract.py``)."""

import dataclasses
from typing import Callable

import keras
import numpy as np

rng = np.random.default_rng(0)


def floats(*shape):
    """Standard-normal float32 test input of ``shape``."""
    return rng.normal(size=shape).astype("float32")


@dataclasses.dataclass
class Case:
    """One public layer configuration for the contract test.

    Attributes:
        id: test id, ``"LayerName/variant"``.
        make: factory returning a fresh, unbuilt layer.
        args: positional inputs: arrays, dicts of arrays or lists of arrays (batch first;
            every array in one case has the same batch size).
        kwargs: keyword tensor inputs (e.g. ``{"attention_mask": ...}``).
        options: keyword non-tensor call arguments (e.g. ``{"training": False}``).
        returns_scores: the layer accepts ``return_attention_scores=True`` and then returns
            ``(outputs, scores)`` whose scores sum to 1 over the last axis.
        scores_sum_to_one: set False where scores are not a distribution over the last axis.
    """

    id: str
    make: Callable[[], keras.layers.Layer]
    args: tuple
    kwargs: dict = dataclasses.field(default_factory=dict)
    options: dict = dataclasses.field(default_factory=dict)
    returns_scores: bool = False
    scores_sum_to_one: bool = True
