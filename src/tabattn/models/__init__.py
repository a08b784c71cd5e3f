"""Models built from tabattn layers."""

from tabattn.models.ft_transformer import FTTransformer, FTTransformerBlock

__all__ = ["FTTransformer", "FTTransformerBlock"]
