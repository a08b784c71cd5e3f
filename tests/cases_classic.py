"""Contract cases for ``tabattn/layers/classic.py``."""

from contract import Case, floats, rng

import tabattn.layers as L

CASES = [
    Case("MultiHeadAttention/self", lambda: L.MultiHeadAttention(2, 8, dropout=0.1),
         (floats(4, 5, 6),), returns_scores=True),
    Case("MultiHeadAttention/cross+mask", lambda: L.MultiHeadAttention(4, 8),
         (floats(4, 3, 6), floats(4, 5, 7), floats(4, 5, 9)),
         {"attention_mask": rng.random((4, 3, 5)) > 0.3}, returns_scores=True),
]
