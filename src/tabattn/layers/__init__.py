"""Public tabattn layers, grouped by family (one module each).

- ``classic``: dot-product, multi-head, relative-position, Bahdanau and Luong attention.
- ``embeddings``: feature tokenizers that turn table columns into tokens.
- ``row``: attention across rows (samples).
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
from tabattn.layers.embeddings import CLSToken, FeatureTokenizer
from tabattn.layers.mixing import SparseAttentionWeighting
from tabattn.layers.row import IntersampleAttention, RowAttention
from tabattn.layers.tabular import TabularAttention

__all__ = [
    "BahdanauAttention",
    "CLSToken",
    "ChannelAttention",
    "ColumnAttention",
    "ConvChannelAttention",
    "DotProductAttention",
    "FeatureTokenizer",
    "GatedResidualNetwork",
    "IntersampleAttention",
    "LuongAttention",
    "MultiHeadAttention",
    "MultiHeadChannelAttention",
    "RelativePositionalAttention",
    "RowAttention",
    "SparseAttentionWeighting",
    "SqueezeExcitation1D",
    "TabularAttention",
    "VariableSelection",
]
