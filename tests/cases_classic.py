"""Contract cases for ``tabattn/layers/classic.py``."""

from contract import Case, floats, rng

import tabattn.layers as L


def _mask(*shape):
    """A random boolean mask whose first key is always allowed (no fully masked rows)."""
    mask = rng.random(shape) > 0.4
    mask[..., 0] = True
    return mask


CASES = [
    Case("MultiHeadAttention/self", lambda: L.MultiHeadAttention(2, 8, dropout=0.1),
         (floats(4, 5, 6),), returns_scores=True),
    Case("MultiHeadAttention/cross+mask", lambda: L.MultiHeadAttention(4, 8),
         (floats(4, 3, 6), floats(4, 5, 7), floats(4, 5, 9)),
         {"attention_mask": rng.random((4, 3, 5)) > 0.3}, returns_scores=True),
    Case("DotProductAttention/rank2-query+padding", lambda: L.DotProductAttention(),
         (floats(4, 6), floats(4, 5, 6)), {"mask": _mask(4, 5)}, returns_scores=True),
    Case("DotProductAttention/rank3+scale+dropout",
         lambda: L.DotProductAttention(use_scale=True, dropout=0.1),
         (floats(4, 3, 6), floats(4, 5, 6), floats(4, 5, 7)), {"mask": _mask(4, 3, 5)},
         returns_scores=True),
    Case("RelativePositionalAttention/heads+clipping",
         lambda: L.RelativePositionalAttention(8, max_relative_position=2, num_heads=2,
                                               dropout=0.1),
         (floats(4, 6, 5),), returns_scores=True),
    Case("RelativePositionalAttention/padding-mask", lambda: L.RelativePositionalAttention(6),
         (floats(4, 5, 6),), {"mask": _mask(4, 5)}, returns_scores=True),
    Case("RelativePositionalAttention/cross+mask",
         lambda: L.RelativePositionalAttention(8, max_relative_position=2, num_heads=2),
         (floats(4, 3, 6), floats(4, 5, 7), floats(4, 5, 9)), {"mask": _mask(4, 5)},
         returns_scores=True),
    # Bahdanau and Luong always return (context, weights); their weights are checked in
    # test_classic_mechanisms.py.
    Case("BahdanauAttention/mask", lambda: L.BahdanauAttention(8),
         (floats(4, 6), floats(4, 5, 7)), {"mask": _mask(4, 5)}),
    Case("LuongAttention/dot", lambda: L.LuongAttention("dot"),
         (floats(4, 6), floats(4, 5, 6)), {"mask": _mask(4, 5)}),
    Case("LuongAttention/general", lambda: L.LuongAttention("general"),
         (floats(4, 6), floats(4, 5, 7))),
    Case("LuongAttention/concat", lambda: L.LuongAttention("concat", units=8),
         (floats(4, 6), floats(4, 5, 7)), {"mask": _mask(4, 5)}),
]
