"""Contract cases for ``tabattn/layers/embeddings.py`` and the FT-Transformer block."""

from contract import Case, floats, rng

import tabattn.layers as L
from tabattn.models import FTTransformerBlock

CASES = [
    Case("FeatureTokenizer/mixed", lambda: L.FeatureTokenizer(8, (3, 4)),
         ({"numeric": floats(6, 2), "categorical": rng.integers(0, 4, (6, 2)).astype("int32")},)),
    Case("FeatureTokenizer/numeric", lambda: L.FeatureTokenizer(8), (floats(6, 3),)),
    Case("CLSToken", lambda: L.CLSToken(8), (floats(4, 5, 8),)),
    Case("FTTransformerBlock", lambda: FTTransformerBlock(8, 2, 12, 0.1, 0.1, 0.1),
         (floats(4, 5, 8),), returns_scores=True),
    Case("FTTransformerBlock/cls_only",
         lambda: FTTransformerBlock(8, 2, 12, attention_norm=False, cls_only=True),
         (floats(4, 5, 8),), returns_scores=True),
]
