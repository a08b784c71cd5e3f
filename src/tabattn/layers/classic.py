"""Classic attention mechanisms: scaled dot-product and multi-head attention."""

__all__ = ["MultiHeadAttention"]

import math

import keras
from keras import ops

from tabattn.layers import _checks

# Logit given to masked positions before the softmax: large enough to vanish, small enough
# to stay finite in float32 (so a fully masked row has no inf - inf = NaN).
_MASK_LOGIT = -1e9


def _as_attention_mask(mask, query_len):
    """Turn a boolean mask broadcastable to (batch, Tq, Tv) into (batch, 1, Tq, Tv)."""
    mask = ops.cast(mask, "bool")
    if len(mask.shape) == 2:  # (batch, Tv): a key padding mask
        mask = ops.expand_dims(mask, axis=1)
    mask = ops.expand_dims(mask, axis=1)  # heads axis
    # Make the Tq axis explicit: fused kernels need it, and it is cheap.
    return ops.logical_and(mask, ops.ones((1, 1, query_len, 1), dtype="bool"))


@keras.saving.register_keras_serializable(package="tabattn")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention with a fused kernel.

    Queries, keys and values are projected to ``num_heads`` heads of size
    ``head_dim = embedding_dim // num_heads``; each head computes
    ``softmax(Q Kᵀ / √head_dim) V``; the heads are concatenated and projected back to
    ``embedding_dim``. The kernel is ``keras.ops.dot_product_attention`` (fused on every
    backend) unless attention scores are requested or attention dropout is active in
    training, which need the probabilities themselves; then an explicit float32 softmax is
    used. Both paths agree to 1e-5. Under mixed precision the logits and softmax are computed
    in float32 and the result is cast back to the compute dtype.

    Each row of the batch is computed on its own: the output for one row does not depend on
    the other rows in the batch.

    Args:
        num_heads: number of attention heads, a positive integer.
        embedding_dim: size of the projected queries, keys and values and of the output; a
            positive integer divisible by ``num_heads``.
        dropout: dropout rate on the attention probabilities during training, in [0, 1).
            Default 0.0.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        query: float tensor ``(batch_size, query_len, query_dim)``.
        key: float tensor ``(batch_size, value_len, key_dim)``; defaults to ``value``, then to
            ``query`` (self-attention).
        value: float tensor ``(batch_size, value_len, value_dim)``; defaults to ``key``.
        attention_mask: optional boolean tensor broadcastable to
            ``(batch_size, query_len, value_len)``, or ``(batch_size, value_len)`` for a key
            padding mask. ``True`` means "may attend". A query whose every key is masked gets
            a zero attention context (its output is the output projection's bias), not NaN.
        training: whether dropout is applied.
        return_attention_scores: if ``True``, also return the attention probabilities.

    Returns:
        ``outputs`` of shape ``(batch_size, query_len, embedding_dim)``; with
        ``return_attention_scores=True``, ``(outputs, attention_scores)`` where
        ``attention_scores`` has shape ``(batch_size, num_heads, query_len, value_len)``,
        dtype float32, and sums to 1 over the last axis (0 for fully masked queries).

    Raises:
        ValueError: if ``num_heads`` or ``embedding_dim`` is not a positive integer,
            ``embedding_dim % num_heads != 0``, ``dropout`` is outside [0, 1), or the
            inputs are not of rank 3.

    Example:

    >>> import numpy as np
    >>> layer = MultiHeadAttention(num_heads=2, embedding_dim=8)
    >>> tokens = np.random.rand(4, 5, 8).astype("float32")
    >>> outputs, scores = layer(tokens, return_attention_scores=True)
    >>> tuple(outputs.shape), tuple(scores.shape)
    ((4, 5, 8), (4, 2, 5, 5))

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, §3.2.
    """

    def __init__(self, num_heads, embedding_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = _checks.positive_int("num_heads", num_heads)
        self.embedding_dim = _checks.positive_int("embedding_dim", embedding_dim)
        if self.embedding_dim % self.num_heads:
            raise ValueError(
                "`embedding_dim` must be divisible by `num_heads`. "
                f"Received: embedding_dim={embedding_dim}, num_heads={num_heads}"
            )
        self.dropout = _checks.rate("dropout", dropout)
        self.head_dim = self.embedding_dim // self.num_heads

    def build(self, query_shape, key_shape=None, value_shape=None):
        value_shape = value_shape or key_shape or query_shape
        key_shape = key_shape or value_shape
        for name, shape in (("query", query_shape), ("key", key_shape), ("value", value_shape)):
            _checks.rank(name, shape, 3, type(self).__name__)
        heads = (None, self.num_heads, self.head_dim)
        kwargs = dict(equation="btd,dhk->bthk", output_shape=heads, dtype=self.dtype_policy)
        self.query_dense = keras.layers.EinsumDense(name="query", bias_axes="hk", **kwargs)
        # No key bias: it adds the same q·b to every logit of a query, which the softmax
        # cancels, so it would never receive a gradient.
        self.key_dense = keras.layers.EinsumDense(name="key", **kwargs)
        self.value_dense = keras.layers.EinsumDense(name="value", bias_axes="hk", **kwargs)
        self.output_dense = keras.layers.EinsumDense(
            "bthk,hkd->btd",
            output_shape=(None, self.embedding_dim),
            bias_axes="d",
            name="output",
            dtype=self.dtype_policy,
        )
        self.query_dense.build(query_shape)
        self.key_dense.build(key_shape)
        self.value_dense.build(value_shape)
        self.output_dense.build((None, None, self.num_heads, self.head_dim))
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def call(
        self,
        query,
        key=None,
        value=None,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
    ):
        if value is None:
            value = key if key is not None else query
        if key is None:
            key = value
        q = self.query_dense(query)  # (batch, Tq, heads, head_dim)
        k = self.key_dense(key)
        v = self.value_dense(value)
        mask = None
        if attention_mask is not None:
            mask = _as_attention_mask(attention_mask, ops.shape(q)[1])
        dropout_active = self.dropout > 0 and training
        if return_attention_scores or dropout_active:
            context, scores = self._explicit_attention(q, k, v, mask, training)
        else:
            context, scores = self._fused_attention(q, k, v, mask), None
        outputs = self.output_dense(context)
        if return_attention_scores:
            return outputs, scores
        return outputs

    def _fused_attention(self, q, k, v, mask):
        compute_dtype = q.dtype
        if compute_dtype in ("float16", "bfloat16"):
            # Keep the logits and the softmax in float32 under mixed precision.
            q, k, v = (ops.cast(t, "float32") for t in (q, k, v))
        context = ops.dot_product_attention(
            q, k, v, mask=mask, scale=1.0 / math.sqrt(self.head_dim)
        )
        if mask is not None:
            # Fused kernels average the values of a fully masked row; we want zeros.
            any_key = ops.any(mask, axis=-1)  # (batch, 1, Tq)
            any_key = ops.transpose(any_key, (0, 2, 1))[..., None]  # (batch, Tq, 1, 1)
            context = ops.where(any_key, context, ops.zeros_like(context))
        return ops.cast(context, compute_dtype)

    def _explicit_attention(self, q, k, v, mask, training):
        compute_dtype = q.dtype
        logits = ops.einsum(
            "bqhd,bkhd->bhqk", ops.cast(q, "float32"), ops.cast(k, "float32")
        ) / math.sqrt(self.head_dim)
        if mask is not None:
            logits = ops.where(mask, logits, _MASK_LOGIT)
        scores = ops.softmax(logits, axis=-1)
        if mask is not None:
            scores = ops.where(ops.any(mask, axis=-1, keepdims=True), scores, 0.0)
        probs = self.dropout_layer(ops.cast(scores, compute_dtype), training=training)
        context = ops.einsum("bhqk,bkhd->bqhd", probs, v)
        return context, scores

    def compute_output_shape(self, query_shape, key_shape=None, value_shape=None):
        return tuple(query_shape[:-1]) + (self.embedding_dim,)

    def compute_output_spec(
        self,
        query,
        key=None,
        value=None,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
    ):
        value = value if value is not None else (key if key is not None else query)
        out_shape = tuple(query.shape[:-1]) + (self.embedding_dim,)
        outputs = keras.KerasTensor(out_shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return outputs
        scores_shape = (query.shape[0], self.num_heads, query.shape[1], value.shape[1])
        return outputs, keras.KerasTensor(scores_shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads, embedding_dim=self.embedding_dim, dropout=self.dropout
        )
        return config
