"""Contract cases for ``tabattn/layers/tabular.py``."""

from contract import Case, floats

import tabattn.layers as L

# Scores are a dict of feature and sample scores, checked in test_tabular.py; `context` is
# left out as for IntersampleAttention.
CASES = [
    Case("TabularAttention/table", lambda: L.TabularAttention(2, 8), (floats(6, 4),)),
    Case("TabularAttention/tokens", lambda: L.TabularAttention(2, 8, dropout_rate=0),
         (floats(6, 4, 5),)),
]
