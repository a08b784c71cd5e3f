"""Contract cases for ``tabattn/layers/embeddings.py`` and the FT-Transformer block."""

from contract import Case, floats, rng

import tabattn.layers as L
from tabattn.models import FTTransformerBlock

# Bins for 3 features with 4, 2 and 1 bins: padding and the single-bin rule are exercised.
BINS = [[-1.0, -0.3, 0.0, 0.4, 1.2], [-0.5, 0.0, 0.5], [-2.0, 2.0]]

CASES = [
    Case("FeatureTokenizer/mixed", lambda: L.FeatureTokenizer(8, (3, 4)),
         ({"numeric": floats(6, 2), "categorical": rng.integers(0, 4, (6, 2)).astype("int32")},)),
    Case("FeatureTokenizer/numeric", lambda: L.FeatureTokenizer(8), (floats(6, 3),)),
    Case("FeatureTokenizer/periodic",
         lambda: L.FeatureTokenizer(8, (3,), "periodic", n_frequencies=4,
                                    frequency_init_scale=0.5),
         ({"numeric": floats(6, 2), "categorical": rng.integers(0, 4, (6, 1)).astype("int32")},)),
    Case("FeatureTokenizer/piecewise",
         lambda: L.FeatureTokenizer(8, numeric_embedding="piecewise", bins=BINS),
         (floats(6, 3),)),
    Case("PeriodicEmbedding", lambda: L.PeriodicEmbedding(6, 4, 0.5), (floats(6, 3),)),
    Case("PeriodicEmbedding/lite", lambda: L.PeriodicEmbedding(6, 4, 0.5, lite=True),
         (floats(6, 3),)),
    Case("PeriodicEmbedding/no_activation",
         lambda: L.PeriodicEmbedding(6, 4, 0.5, activation=False), (floats(6, 3),)),
    Case("PiecewiseLinearEncoding", lambda: L.PiecewiseLinearEncoding(BINS), (floats(6, 3),)),
    Case("PiecewiseLinearEmbedding", lambda: L.PiecewiseLinearEmbedding(BINS, 5),
         (floats(6, 3),)),
    Case("PiecewiseLinearEmbedding/activation",
         lambda: L.PiecewiseLinearEmbedding(BINS, 5, activation=True), (floats(6, 3),)),
    Case("CLSToken", lambda: L.CLSToken(8), (floats(4, 5, 8),)),
    Case("FTTransformerBlock", lambda: FTTransformerBlock(8, 2, 12, 0.1, 0.1, 0.1),
         (floats(4, 5, 8),), returns_scores=True),
    Case("FTTransformerBlock/cls_only",
         lambda: FTTransformerBlock(8, 2, 12, attention_norm=False, cls_only=True),
         (floats(4, 5, 8),), returns_scores=True),
]
