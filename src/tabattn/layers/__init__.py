"""Public tabattn layers, grouped by family (one module each)."""

from tabattn.layers.classic import MultiHeadAttention
from tabattn.layers.embeddings import CLSToken, FeatureTokenizer

__all__ = ["CLSToken", "FeatureTokenizer", "MultiHeadAttention"]
