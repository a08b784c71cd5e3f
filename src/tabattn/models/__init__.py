"""Models built from tabattn layers."""

from tabattn.models.ft_transformer import FTTransformer, FTTransformerBlock
from tabattn.models.modernnca import ModernNCA
from tabattn.models.tabm import TabM
from tabattn.models.tabr import TabR

__all__ = ["FTTransformer", "FTTransformerBlock", "ModernNCA", "TabM", "TabR"]
