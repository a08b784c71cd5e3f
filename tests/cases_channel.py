"""Contract cases for ``tabattn/layers/channel.py``."""

from contract import Case, floats

import tabattn.layers as L

CASES = [
    Case("ChannelAttention/channels_last", lambda: L.ChannelAttention(4),
         (floats(4, 6, 5),), returns_scores=True),
    Case("ChannelAttention/channels_first+num_channels",
         lambda: L.ChannelAttention(8, num_channels=5, data_format="channels_first"),
         (floats(4, 5, 6),), returns_scores=True),
    Case("MultiHeadChannelAttention/channels_last", lambda: L.MultiHeadChannelAttention(8, 2),
         (floats(4, 6, 5),), returns_scores=True),
    Case("MultiHeadChannelAttention/channels_first",
         lambda: L.MultiHeadChannelAttention(6, 3, num_channels=4, data_format="channels_first"),
         (floats(4, 4, 7),), returns_scores=True),
    Case("SqueezeExcitation1D/channels_last", lambda: L.SqueezeExcitation1D(reduction_ratio=2),
         (floats(4, 6, 8),)),
    Case("SqueezeExcitation1D/channels_first", lambda: L.SqueezeExcitation1D(
        reduction_ratio=4, data_format="channels_first"), (floats(4, 8, 6),)),
    # 5 channels < the default reduction_ratio=16: a one-unit bottleneck.
    Case("ConvChannelAttention/few_channels", lambda: L.ConvChannelAttention(),
         (floats(8, 6, 5),)),
]
