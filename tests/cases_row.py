"""Contract cases for ``tabattn/layers/row.py``."""

from contract import Case, floats, rng

import tabattn.layers as L

CASES = [
    # Row weights average 1 over the batch in training; they are not a distribution.
    Case("RowAttention/default", lambda: L.RowAttention(), (floats(8, 6),),
         returns_scores=True, scores_sum_to_one=False),
    Case("RowAttention/sized",
         lambda: L.RowAttention(feature_dim=6, hidden_dim=4, temperature=0.5, momentum=0.9),
         (floats(8, 6),), returns_scores=True, scores_sum_to_one=False),
    # `context` is left out: a functional model's inputs share one batch size (see
    # test_row.py for context).
    Case("IntersampleAttention", lambda: L.IntersampleAttention(2, 4, dropout=0.1),
         (floats(6, 3, 4),), returns_scores=True),
    # The context has the batch's size here only because a functional model's inputs share
    # one batch size; test_row.py covers other context sizes.
    Case("RetrievalAttention/classification",
         lambda: L.RetrievalAttention(num_neighbors=3, num_classes=3, dropout=0.1),
         (floats(8, 4), floats(8, 4), rng.integers(0, 3, (8,)).astype("int32")),
         returns_scores=True),
    Case("RetrievalAttention/regression",
         lambda: L.RetrievalAttention(num_neighbors=5, hidden_dim=6, value_dropout=0.1),
         (floats(8, 4), floats(8, 4), floats(8, 1)), returns_scores=True),
]
