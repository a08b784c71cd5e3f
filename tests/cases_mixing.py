"""Contract cases for ``tabattn/layers/mixing.py``."""

from contract import Case, floats

import tabattn.layers as L

# A single-branch mixture is left out here: one normalised logit is always 1, so its weight
# gets no gradient by construction (test_mixing.py checks that it works).
CASES = [
    Case("SparseAttentionWeighting/softmax", lambda: L.SparseAttentionWeighting(3),
         ([floats(4, 6), floats(4, 6), floats(4, 6)],)),
    Case("SparseAttentionWeighting/sparsemax+temperature",
         lambda: L.SparseAttentionWeighting(4, temperature=0.5, normalization="sparsemax"),
         ([floats(4, 3, 5) for _ in range(4)],)),
    Case("SparseAttentionWeighting/entmax15",
         lambda: L.SparseAttentionWeighting(2, normalization="entmax15"),
         ([floats(4, 6), floats(4, 6)],)),
]
