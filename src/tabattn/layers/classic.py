"""Classic attention mechanisms: dot-product, multi-head, relative-position, Bahdanau, Luong.

All masks are boolean and ``True`` means "may attend". A query whose every key is masked
gets all-zero attention weights and a zero context, never NaN. Softmaxes run in float32
under mixed precision and attention weights are returned in float32.
"""

__all__ = [
    "BahdanauAttention",
    "DotProductAttention",
    "LuongAttention",
    "MultiHeadAttention",
    "RelativePositionalAttention",
]

import math

import keras
from keras import ops

from tabattn.layers import _checks
from tabattn.layers._attention import (
    as_attention_mask,
    explicit_attention,
    fused_attention,
    masked_softmax,
)



@keras.saving.register_keras_serializable(package="tabattn")
class DotProductAttention(keras.layers.Layer):
    """Dot-product attention without weights: ``softmax(Q Kᵀ [/ √d]) V``.

    Each query is compared with every key by a dot product (divided by ``√d`` when
    ``use_scale=True``, ``d`` being the query and key size); the softmax of these logits over
    the keys weights the values. A query of rank 2 ``(batch_size, d)`` is one query per row,
    the usual "decoder state attends over encoder states" form. The layer has no weights;
    put projections in front of it (or use ``MultiHeadAttention``) to learn what to compare.

    The kernel is ``keras.ops.dot_product_attention`` (fused on every backend) unless scores
    are requested or attention dropout is active in training; then an explicit float32
    softmax is used. Both paths agree to 1e-5. Values of another size than the keys are
    zero-padded for the fused kernel (JAX's needs equal sizes), which leaves the result
    unchanged. Under mixed precision the logits and softmax are computed
    in float32 and the result is cast back to the compute dtype.

    Unlike ``keras.layers.Attention(use_scale=True)``, whose scale is a learned scalar, the
    scale here is the fixed ``1 / √d`` of Vaswani et al.

    Each row of the batch is computed on its own: the output for one row does not depend on
    the other rows in the batch.

    Args:
        use_scale: if ``True``, divide the logits by ``√d``. Default ``False`` (plain dot
            product, as in Luong et al.).
        dropout: dropout rate on the attention probabilities during training, in [0, 1).
            Default 0.0.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        query: float tensor ``(batch_size, query_len, d)``, or ``(batch_size, d)`` for a
            single query per row.
        key: float tensor ``(batch_size, value_len, d)``.
        value: float tensor ``(batch_size, value_len, value_dim)``; defaults to ``key``.
        mask: optional boolean tensor broadcastable to ``(batch_size, query_len, value_len)``,
            or ``(batch_size, value_len)`` for a key padding mask (the natural mask for a
            rank-2 query). ``True`` means "may attend". A query whose every key is masked
            gets zeros, not NaN.
        training: whether dropout is applied.
        return_attention_scores: if ``True``, also return the attention probabilities.

    Returns:
        ``outputs`` of shape ``(batch_size, query_len, value_dim)``, or
        ``(batch_size, value_dim)`` for a rank-2 query; with
        ``return_attention_scores=True``, ``(outputs, attention_scores)`` where
        ``attention_scores`` has shape ``(batch_size, query_len, value_len)``, or
        ``(batch_size, value_len)`` for a rank-2 query, dtype float32, summing to 1 over
        the last axis (0 for fully masked queries).

    Raises:
        ValueError: if ``use_scale`` is not a bool or ``dropout`` is outside [0, 1); if the
            query is not of rank 2 or 3, the key or value not of rank 3, or the query and
            key sizes differ.

    Example:

    >>> import numpy as np
    >>> layer = DotProductAttention(use_scale=True)
    >>> state = np.random.rand(4, 8).astype("float32")  # one query per row
    >>> memory = np.random.rand(4, 5, 8).astype("float32")
    >>> context, scores = layer(state, memory, return_attention_scores=True)
    >>> tuple(context.shape), tuple(scores.shape)
    ((4, 8), (4, 5))
    >>> queries = np.random.rand(4, 3, 8).astype("float32")
    >>> values = np.random.rand(4, 5, 2).astype("float32")
    >>> tuple(layer(queries, memory, values, mask=np.ones((4, 3, 5), bool)).shape)
    (4, 3, 2)

    Reference:
        Luong et al., "Effective Approaches to Attention-based Neural Machine Translation",
        EMNLP 2015, §3.1 (dot score); Vaswani et al., "Attention Is All You Need",
        NeurIPS 2017, §3.2.1 (the ``1 / √d`` scale).
    """

    def __init__(self, use_scale=False, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(use_scale, bool):
            raise ValueError(f"`use_scale` must be True or False. Received: {use_scale=!r}")
        self.use_scale = use_scale
        self.dropout = _checks.rate("dropout", dropout)

    def build(self, query_shape, key_shape, value_shape=None):
        value_shape = value_shape or key_shape
        name = type(self).__name__
        _checks.rank("query", query_shape, (2, 3), name)
        _checks.rank("key", key_shape, 3, name)
        _checks.rank("value", value_shape, 3, name)
        d_query, d_key = query_shape[-1], key_shape[-1]
        if d_query is not None and d_key is not None and d_query != d_key:
            raise ValueError(
                f"{name} compares queries and keys by a dot product, so they need the same "
                f"last dimension. Received: query.shape={tuple(query_shape)}, "
                f"key.shape={tuple(key_shape)}"
            )
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def call(
        self, query, key, value=None, mask=None, training=None, return_attention_scores=False
    ):
        if value is None:
            value = key
        single_query = len(query.shape) == 2
        if single_query:
            query = ops.expand_dims(query, axis=1)
        # A heads axis of 1: the (batch, T, heads, d) layout of the shared kernels.
        q, k, v = (ops.expand_dims(t, axis=2) for t in (query, key, value))
        if mask is not None:
            mask = as_attention_mask(mask, ops.shape(q)[1])
        scale = 1.0 / math.sqrt(query.shape[-1]) if self.use_scale else 1.0
        dropout_active = self.dropout > 0 and training
        if return_attention_scores or dropout_active:
            context, scores = explicit_attention(
                q, k, v, mask, scale, self.dropout_layer, training
            )
            scores = scores[:, 0]  # (batch, Tq, Tv)
        else:
            context, scores = fused_attention(q, k, v, mask, scale), None
        outputs = context[:, :, 0]  # (batch, Tq, d_v)
        if single_query:
            outputs = outputs[:, 0]
            scores = None if scores is None else scores[:, 0]
        if return_attention_scores:
            return outputs, scores
        return outputs

    def compute_mask(self, inputs, mask=None):
        # Defining compute_mask lets Keras take an explicit `mask` without warning that it
        # is dropped; an attention mask marks no steps of the output.
        return None

    def compute_output_shape(self, query_shape, key_shape, value_shape=None):
        value_shape = value_shape or key_shape
        return tuple(query_shape[:-1]) + (value_shape[-1],)

    def compute_output_spec(
        self, query, key, value=None, mask=None, training=None, return_attention_scores=False
    ):
        value = key if value is None else value
        out_shape = self.compute_output_shape(query.shape, key.shape, value.shape)
        outputs = keras.KerasTensor(out_shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return outputs
        scores_shape = tuple(query.shape[:-1]) + (key.shape[1],)
        return outputs, keras.KerasTensor(scores_shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(use_scale=self.use_scale, dropout=self.dropout)
        return config


@keras.saving.register_keras_serializable(package="tabattn")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention with a fused kernel.

    Queries, keys and values are projected to ``num_heads`` heads of size
    ``head_dim = embedding_dim // num_heads``; each head computes
    ``softmax(Q Kᵀ / √head_dim) V``; the heads are concatenated and projected to
    ``output_dim`` (default ``embedding_dim``). The kernel is
    ``keras.ops.dot_product_attention`` (fused on every
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
        output_dim: size of the output projection, a positive integer; default ``None``
            means ``embedding_dim`` (Keras's ``output_shape``).
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
        ``outputs`` of shape ``(batch_size, query_len, output_dim)``; with
        ``return_attention_scores=True``, ``(outputs, attention_scores)`` where
        ``attention_scores`` has shape ``(batch_size, num_heads, query_len, value_len)``,
        dtype float32, and sums to 1 over the last axis (0 for fully masked queries).

    Raises:
        ValueError: if ``num_heads``, ``embedding_dim`` or ``output_dim`` is not a positive
            integer, ``embedding_dim % num_heads != 0``, ``dropout`` is outside [0, 1), or
            the inputs are not of rank 3.

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

    def __init__(self, num_heads, embedding_dim, dropout=0.0, output_dim=None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = _checks.positive_int("num_heads", num_heads)
        self.embedding_dim = _checks.positive_int("embedding_dim", embedding_dim)
        if self.embedding_dim % self.num_heads:
            raise ValueError(
                "`embedding_dim` must be divisible by `num_heads`. "
                f"Received: embedding_dim={embedding_dim}, num_heads={num_heads}"
            )
        self.dropout = _checks.rate("dropout", dropout)
        self.output_dim = _checks.positive_int("output_dim", output_dim, allow_none=True)
        self.head_dim = self.embedding_dim // self.num_heads

    @property
    def _output_size(self):
        return self.output_dim or self.embedding_dim

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
            output_shape=(None, self._output_size),
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
            mask = as_attention_mask(attention_mask, ops.shape(q)[1])
        scale = 1.0 / math.sqrt(self.head_dim)
        dropout_active = self.dropout > 0 and training
        if return_attention_scores or dropout_active:
            context, scores = explicit_attention(
                q, k, v, mask, scale, self.dropout_layer, training
            )
        else:
            context, scores = fused_attention(q, k, v, mask, scale), None
        outputs = self.output_dense(context)
        if return_attention_scores:
            return outputs, scores
        return outputs

    def compute_output_shape(self, query_shape, key_shape=None, value_shape=None):
        return tuple(query_shape[:-1]) + (self._output_size,)

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
        out_shape = tuple(query.shape[:-1]) + (self._output_size,)
        outputs = keras.KerasTensor(out_shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return outputs
        scores_shape = (query.shape[0], self.num_heads, query.shape[1], value.shape[1])
        return outputs, keras.KerasTensor(scores_shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            embedding_dim=self.embedding_dim,
            dropout=self.dropout,
            output_dim=self.output_dim,
        )
        return config


@keras.saving.register_keras_serializable(package="tabattn")
class RelativePositionalAttention(keras.layers.Layer):
    """Multi-head attention with learned relative position representations.

    Self-attention as ``layer(inputs)``; attention from a query sequence to a key/value
    sequence as ``layer(query, key, value)`` (the classic call; ``value`` defaults to ``key``,
    and the two sequences may differ in length). The tokens are projected to queries, keys
    and values of ``num_heads`` heads of size ``head_dim = embedding_dim // num_heads``. The
    distance ``j - i`` from query position ``i`` to key position ``j`` is clipped to ``[-max_relative_position, max_relative_position]`` and looks up two
    learned vectors of size ``head_dim``, ``a^K_ij`` and ``a^V_ij``, shared by all heads. Each
    head computes ``e_ij = q_i · (k_j + a^K_ij) / √head_dim``, ``α_i = softmax_j(e_ij)`` and
    ``z_i = Σ_j α_ij (v_j + a^V_ij)``; the heads are concatenated and projected back to
    ``embedding_dim`` by an output projection (as in Vaswani et al., on which Shaw et al.
    build). The relative terms need the attention probabilities themselves, so the softmax
    is always explicit, in float32 under mixed precision.

    On tables, the token order is the column order: unlike plain self-attention, the output
    is not equivariant to permuting the features (two columns are related through their
    distance in that order). Each row of the batch is computed on its own: the output for one row does not
    depend on the other rows in the batch.

    Args:
        embedding_dim: size of the projected queries, keys and values and of the output; a
            positive integer divisible by ``num_heads``.
        max_relative_position: the clipping distance ``k``, a positive integer; distances
            beyond ``k`` share one representation, so ``2k + 1`` are learned. Default 10.
        num_heads: number of attention heads, a positive integer. Default 1.
        dropout: dropout rate on the attention probabilities during training, in [0, 1).
            Default 0.0.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: the queries, float tensor ``(batch_size, seq_len, input_dim)``; without
            ``key`` the layer attends within it (self-attention).
        key: optional float tensor ``(batch_size, key_len, key_dim)`` to attend to.
        value: optional float tensor ``(batch_size, key_len, value_dim)``; default ``key``.
        mask: optional boolean tensor, either a padding mask ``(batch_size, key_len)`` over
            the keys or a full mask broadcastable to ``(batch_size, seq_len, key_len)``.
            ``True`` means "may attend". A query whose every key is masked gets a zero
            attention context (its output is the output projection's bias), not NaN. In
            self-attention a Keras mask carried by ``inputs`` (e.g. from
            ``Embedding(mask_zero=True)``) is used as the padding mask and passed on to the
            output.
        training: whether dropout is applied.
        return_attention_scores: if ``True``, also return the attention probabilities.

    Returns:
        ``outputs`` of shape ``(batch_size, seq_len, embedding_dim)``; with
        ``return_attention_scores=True``, ``(outputs, attention_scores)`` where
        ``attention_scores`` has shape ``(batch_size, num_heads, seq_len, key_len)``, dtype
        float32, and sums to 1 over the last axis (0 for fully masked queries).

    Raises:
        ValueError: if ``embedding_dim``, ``max_relative_position`` or ``num_heads`` is not a
            positive integer, ``embedding_dim % num_heads != 0``, ``dropout`` is outside
            [0, 1), an input is not of rank 3, or ``value`` is given without ``key``.

    Example:

    >>> import numpy as np
    >>> layer = RelativePositionalAttention(embedding_dim=8, max_relative_position=2,
    ...                                     num_heads=2)
    >>> tokens = np.random.rand(4, 6, 5).astype("float32")
    >>> padding = np.array([[True] * 6, [True] * 4 + [False] * 2] * 2)
    >>> outputs, scores = layer(tokens, mask=padding, return_attention_scores=True)
    >>> tuple(outputs.shape), tuple(scores.shape)
    ((4, 6, 8), (4, 2, 6, 6))

    Reference:
        Shaw, Uszkoreit and Vaswani, "Self-Attention with Relative Position Representations",
        NAACL 2018, §3.
    """

    def __init__(
        self, embedding_dim, max_relative_position=10, num_heads=1, dropout=0.0, **kwargs
    ):
        super().__init__(**kwargs)
        self.embedding_dim = _checks.positive_int("embedding_dim", embedding_dim)
        self.max_relative_position = _checks.positive_int(
            "max_relative_position", max_relative_position
        )
        self.num_heads = _checks.positive_int("num_heads", num_heads)
        if self.embedding_dim % self.num_heads:
            raise ValueError(
                "`embedding_dim` must be divisible by `num_heads`. "
                f"Received: embedding_dim={embedding_dim}, num_heads={num_heads}"
            )
        self.dropout = _checks.rate("dropout", dropout)
        self.head_dim = self.embedding_dim // self.num_heads
        self._cross_call = False

    def build(self, inputs_shape, key_shape=None, value_shape=None):
        name = type(self).__name__
        input_shape = inputs_shape
        _checks.rank("inputs", input_shape, 3, name)
        if key_shape is None and value_shape is not None:
            raise ValueError(f"{name}: `value` was given without `key`; pass both or neither")
        key_shape = input_shape if key_shape is None else key_shape
        value_shape = key_shape if value_shape is None else value_shape
        _checks.rank("key", key_shape, 3, name)
        _checks.rank("value", value_shape, 3, name)
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
        self.query_dense.build(input_shape)
        self.key_dense.build(key_shape)
        self.value_dense.build(value_shape)
        self.output_dense.build((None, None, self.num_heads, self.head_dim))
        num_distances = 2 * self.max_relative_position + 1
        self.relative_key_embeddings = self.add_weight(
            shape=(num_distances, self.head_dim), name="relative_key_embeddings"
        )
        self.relative_value_embeddings = self.add_weight(
            shape=(num_distances, self.head_dim), name="relative_value_embeddings"
        )
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def _relative_indices(self, query_len, key_len):
        """``(query_len, key_len)`` rows of the embedding tables: ``clip(j - i, ±k) + k``."""
        distance = ops.arange(key_len)[None, :] - ops.arange(query_len)[:, None]
        k = self.max_relative_position
        return ops.clip(distance, -k, k) + k

    def call(self, inputs, key=None, value=None, mask=None, training=None,
             return_attention_scores=False):
        if key is None and value is not None:
            raise ValueError(
                f"{type(self).__name__}: `value` was given without `key`; pass both or neither"
            )
        self._cross_call = key is not None
        if mask is not None:
            # A tensor without the Keras mask that `inputs` may carry: the mask is handled
            # here, and the projections would warn that they drop it.
            inputs = ops.copy(inputs)
        key = inputs if key is None else key
        value = key if value is None else value
        q = self.query_dense(inputs)  # (batch, Tq, heads, head_dim)
        k = self.key_dense(key)  # (batch, Tk, heads, head_dim)
        v = self.value_dense(value)
        length = ops.shape(inputs)[1]
        indices = self._relative_indices(length, ops.shape(key)[1])
        rel_k = ops.take(self.relative_key_embeddings, indices, axis=0)  # (T, T, head_dim)
        rel_v = ops.take(self.relative_value_embeddings, indices, axis=0)
        q32 = ops.cast(q, "float32")
        logits = ops.einsum("bqhd,bkhd->bhqk", q32, ops.cast(k, "float32"))
        logits += ops.einsum("bqhd,qkd->bhqk", q32, ops.cast(rel_k, "float32"))
        if mask is not None:
            mask = as_attention_mask(mask, length)
        scores = masked_softmax(logits / math.sqrt(self.head_dim), mask)
        probs = self.dropout_layer(ops.cast(scores, v.dtype), training=training)
        context = ops.einsum("bhqk,bkhd->bqhd", probs, v)
        context += ops.einsum("bhqk,qkd->bqhd", probs, ops.cast(rel_v, v.dtype))
        outputs = self.output_dense(context)
        if return_attention_scores:
            return outputs, scores
        return outputs

    def compute_mask(self, inputs, mask=None):
        # In self-attention a padding mask still marks the padded tokens of the output; a
        # full mask, or a mask over another sequence's keys, does not. (Keras passes only
        # the first input here, so the call records which kind it was.)
        if mask is None or self._cross_call or len(mask.shape) != 2:
            return None
        return mask

    def compute_output_shape(self, inputs_shape, key_shape=None, value_shape=None):
        return tuple(inputs_shape[:-1]) + (self.embedding_dim,)

    def compute_output_spec(
        self, inputs, key=None, value=None, mask=None, training=None,
        return_attention_scores=False,
    ):
        outputs = keras.KerasTensor(
            self.compute_output_shape(inputs.shape), dtype=self.compute_dtype
        )
        if not return_attention_scores:
            return outputs
        key_len = (inputs if key is None else key).shape[1]
        scores_shape = (inputs.shape[0], self.num_heads, inputs.shape[1], key_len)
        return outputs, keras.KerasTensor(scores_shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            embedding_dim=self.embedding_dim,
            max_relative_position=self.max_relative_position,
            num_heads=self.num_heads,
            dropout=self.dropout,
        )
        return config


def _additive_context(values, logits, mask):
    """Weights ``(batch, T, 1)`` (float32 softmax over T) and the context ``(batch, d_v)``."""
    if mask is not None:
        mask = ops.expand_dims(ops.cast(mask, "bool"), axis=-1)
    weights = masked_softmax(logits, mask, axis=1)
    context = ops.sum(ops.cast(weights, values.dtype) * values, axis=1)
    return context, weights


def _check_query_and_values(layer, query_shape, values_shape):
    name = type(layer).__name__
    _checks.rank("query", query_shape, 2, name)
    _checks.rank("values", values_shape, 3, name)


def _context_spec(layer, query, values):
    context_shape = (query.shape[0], values.shape[-1])
    weights_shape = tuple(values.shape[:2]) + (1,)
    return (
        keras.KerasTensor(context_shape, dtype=layer.compute_dtype),
        keras.KerasTensor(weights_shape, dtype="float32"),
    )


@keras.saving.register_keras_serializable(package="tabattn")
class BahdanauAttention(keras.layers.Layer):
    """Additive (Bahdanau) attention of one query over a sequence of values.

    Each value ``h_t`` is scored against the query ``q`` by a one-hidden-layer network,
    ``e_t = vᵀ tanh(W1 q + W2 h_t + b)``; the weights ``α = softmax_t(e)`` (float32, over the
    ``T`` values) give the context ``Σ_t α_t h_t``. The call and return follow the classic
    TensorFlow NMT tutorial. The paper has no bias; the tutorial has one in each of ``W1``,
    ``W2`` and ``v``: we keep a single bias ``b`` inside the tanh, since two biases there
    are redundant and a bias on ``v`` is cancelled by the softmax (it would never learn).

    Each row of the batch is computed on its own: the output for one row does not depend on
    the other rows in the batch.

    Args:
        units: size of the hidden layer of the scoring network, a positive integer.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        query: float tensor ``(batch_size, query_dim)``, e.g. a decoder state.
        values: float tensor ``(batch_size, T, value_dim)``, e.g. encoder states or feature
            tokens.
        mask: optional boolean tensor ``(batch_size, T)``; ``True`` means "may attend". A
            row whose every value is masked gets zero weights and a zero context, not NaN.

    Returns:
        ``(context, attention_weights)``: ``context`` of shape ``(batch_size, value_dim)``
        in the compute dtype, and ``attention_weights`` of shape ``(batch_size, T, 1)``,
        dtype float32, summing to 1 over ``T`` (0 for fully masked rows). Both are always
        returned.

    Raises:
        ValueError: if ``units`` is not a positive integer, or ``query`` is not of rank 2 or
            ``values`` not of rank 3.

    Example:

    >>> import numpy as np
    >>> attention = BahdanauAttention(units=16)
    >>> state = np.random.rand(4, 8).astype("float32")
    >>> tokens = np.random.rand(4, 5, 6).astype("float32")
    >>> context, weights = attention(state, tokens)
    >>> tuple(context.shape), tuple(weights.shape)
    ((4, 6), (4, 5, 1))

    Reference:
        Bahdanau, Cho and Bengio, "Neural Machine Translation by Jointly Learning to Align
        and Translate", ICLR 2015, §3.1 and Appendix A.1.2.
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = _checks.positive_int("units", units)

    def build(self, query_shape, values_shape):
        _check_query_and_values(self, query_shape, values_shape)
        self.query_dense = keras.layers.Dense(
            self.units, use_bias=False, name="query", dtype=self.dtype_policy
        )
        self.values_dense = keras.layers.Dense(self.units, name="values", dtype=self.dtype_policy)
        # No bias: it would shift every score of a row alike, which the softmax cancels.
        self.score_dense = keras.layers.Dense(
            1, use_bias=False, name="score", dtype=self.dtype_policy
        )
        self.query_dense.build(query_shape)
        self.values_dense.build(values_shape)
        self.score_dense.build(tuple(values_shape[:-1]) + (self.units,))

    def call(self, query, values, mask=None):
        hidden = ops.tanh(
            ops.expand_dims(self.query_dense(query), axis=1) + self.values_dense(values)
        )  # (batch, T, units)
        return _additive_context(values, self.score_dense(hidden), mask)

    def compute_mask(self, inputs, mask=None):
        # Defined so that Keras takes an explicit `mask` without warning that it is
        # dropped: the mask is over the values, which the context sums away.
        return None

    def compute_output_shape(self, query_shape, values_shape):
        return (query_shape[0], values_shape[-1]), tuple(values_shape[:2]) + (1,)

    def compute_output_spec(self, query, values, mask=None):
        return _context_spec(self, query, values)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units)
        return config


@keras.saving.register_keras_serializable(package="tabattn")
class LuongAttention(keras.layers.Layer):
    """Multiplicative (Luong) attention of one query over a sequence of values.

    Each value ``h_t`` is scored against the query ``q`` by one of the three functions of
    Luong et al.: ``"dot"``, ``e_t = qᵀ h_t`` (no weights; needs ``query_dim ==
    value_dim``); ``"general"``, ``e_t = qᵀ W h_t`` (``W`` of shape
    ``(query_dim, value_dim)``); ``"concat"``, ``e_t = vᵀ tanh(W [q; h_t] + b)`` (``W`` with
    ``units`` rows). The weights ``α = softmax_t(e)`` (float32, over the ``T`` values) give the
    context ``Σ_t α_t h_t``. The call and return match ``BahdanauAttention``. The scores
    are not scaled (use ``DotProductAttention(use_scale=True)`` for ``1/√d``).

    Each row of the batch is computed on its own: the output for one row does not depend on
    the other rows in the batch.

    Args:
        score: the score function, one of ``"dot"``, ``"general"`` and ``"concat"``.
            Default ``"dot"``.
        units: size of the hidden layer of the ``"concat"`` score, a positive integer;
            required for ``"concat"`` and unused by the others. Default ``None``.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        query: float tensor ``(batch_size, query_dim)``, e.g. a decoder state.
        values: float tensor ``(batch_size, T, value_dim)``, e.g. encoder states or feature
            tokens.
        mask: optional boolean tensor ``(batch_size, T)``; ``True`` means "may attend". A
            row whose every value is masked gets zero weights and a zero context, not NaN.

    Returns:
        ``(context, attention_weights)``: ``context`` of shape ``(batch_size, value_dim)``
        in the compute dtype, and ``attention_weights`` of shape ``(batch_size, T, 1)``,
        dtype float32, summing to 1 over ``T`` (0 for fully masked rows). Both are always
        returned.

    Raises:
        ValueError: if ``score`` is not one of the three names, ``units`` is not a positive
            integer (or is missing with ``score="concat"``), ``query`` is not of rank 2 or
            ``values`` not of rank 3, or, with ``score="dot"``, ``query_dim != value_dim``.

    Example:

    >>> import numpy as np
    >>> state = np.random.rand(4, 8).astype("float32")
    >>> tokens = np.random.rand(4, 5, 6).astype("float32")
    >>> context, weights = LuongAttention(score="general")(state, tokens)
    >>> tuple(context.shape), tuple(weights.shape)
    ((4, 6), (4, 5, 1))
    >>> context, weights = LuongAttention(score="concat", units=16)(state, tokens)
    >>> tuple(context.shape)
    (4, 6)

    Reference:
        Luong, Pham and Manning, "Effective Approaches to Attention-based Neural Machine
        Translation", EMNLP 2015, §3.1.
    """

    def __init__(self, score="dot", units=None, **kwargs):
        super().__init__(**kwargs)
        self.score = _checks.one_of("score", score, {"dot", "general", "concat"})
        self.units = _checks.positive_int("units", units, allow_none=True)
        if score == "concat" and units is None:
            raise ValueError(
                "`units` is required with score='concat' (the size of its hidden layer). "
                "Received: units=None"
            )

    def build(self, query_shape, values_shape):
        _check_query_and_values(self, query_shape, values_shape)
        d_query, d_values = query_shape[-1], values_shape[-1]
        if self.score == "dot":
            if d_query is not None and d_values is not None and d_query != d_values:
                raise ValueError(
                    "LuongAttention(score='dot') needs query_dim == value_dim. Received: "
                    f"query.shape={tuple(query_shape)}, values.shape={tuple(values_shape)}. "
                    "Use score='general' or 'concat' for different sizes."
                )
        elif self.score == "general":
            # No bias: qᵀ b is the same for every value of a row, and the softmax cancels it.
            self.values_dense = keras.layers.Dense(
                d_query, use_bias=False, name="general", dtype=self.dtype_policy
            )
            self.values_dense.build(values_shape)
        else:
            self.concat_dense = keras.layers.Dense(
                self.units, name="concat", dtype=self.dtype_policy
            )
            self.score_dense = keras.layers.Dense(
                1, use_bias=False, name="score", dtype=self.dtype_policy
            )
            self.concat_dense.build((None, None, d_query + d_values))
            self.score_dense.build((None, None, self.units))

    def call(self, query, values, mask=None):
        if self.score == "concat":
            steps = ops.shape(values)[:2]
            query_t = ops.broadcast_to(
                ops.expand_dims(query, axis=1), (*steps, query.shape[-1])
            )  # (batch, T, query_dim)
            hidden = ops.tanh(self.concat_dense(ops.concatenate([query_t, values], axis=-1)))
            logits = self.score_dense(hidden)
        else:
            keys = values if self.score == "dot" else self.values_dense(values)
            logits = ops.einsum("bd,btd->bt", query, keys)[..., None]
        return _additive_context(values, logits, mask)

    def compute_mask(self, inputs, mask=None):
        # Defined so that Keras takes an explicit `mask` without warning that it is
        # dropped: the mask is over the values, which the context sums away.
        return None

    def compute_output_shape(self, query_shape, values_shape):
        return (query_shape[0], values_shape[-1]), tuple(values_shape[:2]) + (1,)

    def compute_output_spec(self, query, values, mask=None):
        return _context_spec(self, query, values)

    def get_config(self):
        config = super().get_config()
        config.update(score=self.score, units=self.units)
        return config
