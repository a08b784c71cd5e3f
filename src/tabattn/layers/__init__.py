"""Public tabattn layers, grouped by family (one module each).

- ``classic``: dot-product, multi-head, relative-position, Bahdanau and Luong attention.
- ``embeddings``: feature tokenizers that turn table columns into tokens.
- ``ensemble``: BatchEnsemble layers (one network holding ``k`` ensemble members).
- ``row``: attention across rows (samples), including retrieval over stored rows.
- ``column``: attention and selection across columns (features).
- ``tabular``: inter-feature plus inter-sample attention blocks.
- ``mixing``: weighting of several branches.
- ``channel``: channel attention for 1D CNNs over features.
"""

from tabattn.layers.channel import (
    ChannelAttention,
    ConvChannelAttention,
    MultiHeadChannelAttention,
    SqueezeExcitation1D,
)
from tabattn.layers.classic import (
    BahdanauAttention,
    DotProductAttention,
    LuongAttention,
    MultiHeadAttention,
    RelativePositionalAttention,
)
from tabattn.layers.column import ColumnAttention, GatedResidualNetwork, VariableSelection
# compute_bins is a function, not a layer: importable here, but kept out of __all__ (a list of
# layers, each with a contract case).
from tabattn.layers.embeddings import (
    CLSToken,
    FeatureTokenizer,
    PeriodicEmbedding,
    PiecewiseLinearEmbedding,
    PiecewiseLinearEncoding,
    compute_bins,
)
from tabattn.layers.ensemble import BatchEnsembleDense, EnsembleDense, EnsembleView
from tabattn.layers.mixing import SparseAttentionWeighting
from tabattn.layers.row import IntersampleAttention, RetrievalAttention, RowAttention
from tabattn.layers.tabular import TabularAttention

__all__ = [
    "BahdanauAttention",
    "BatchEnsembleDense",
    "CLSToken",
    "ChannelAttention",
    "ColumnAttention",
    "ConvChannelAttention",
    "DotProductAttention",
    "EnsembleDense",
    "EnsembleView",
    "FeatureTokenizer",
    "GatedResidualNetwork",
    "IntersampleAttention",
    "LuongAttention",
    "MultiHeadAttention",
    "MultiHeadChannelAttention",
    "PeriodicEmbedding",
    "PiecewiseLinearEmbedding",
    "PiecewiseLinearEncoding",
    "RelativePositionalAttention",
    "RetrievalAttention",
    "RowAttention",
    "SparseAttentionWeighting",
    "SqueezeExcitation1D",
    "TabularAttention",
    "VariableSelection",
]
