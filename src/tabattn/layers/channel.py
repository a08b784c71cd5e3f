"""Channel attention for 1D CNNs over table features.

A 1D CNN over a table treats the features (or the positions a convolution produced from them)
as ``steps`` and its filters as ``channels``. Every layer here takes
``(batch_size, steps, channels)`` by default, or ``(batch_size, channels, steps)`` (the
PyTorch layout) with ``data_format="channels_first"``, and returns its output in the input's
layout and shape.
"""

__all__ = [
    "ChannelAttention",
    "ConvChannelAttention",
    "MultiHeadChannelAttention",
    "SqueezeExcitation1D",
]

import math

import keras
from keras import ops

from tabattn.layers import _checks
from tabattn.layers._attention import explicit_attention, fused_attention

_DATA_FORMATS = {"channels_last", "channels_first"}


def _check_input(layer, input_shape, num_channels=None):
    """Check a rank-3 input and return its number of channels."""
    _checks.rank("inputs", input_shape, 3, type(layer).__name__)
    axis = -1 if layer.data_format == "channels_last" else 1
    channels = input_shape[axis]
    if channels is None:
        raise ValueError(
            f"{type(layer).__name__} needs a known number of channels (axis {axis} for "
            f"data_format={layer.data_format!r}). Received: inputs.shape={tuple(input_shape)}"
        )
    _checks.dim_matches("num_channels", num_channels, channels, type(layer).__name__, "channels")
    return channels


def _channels_last(x, data_format):
    """``x`` in ``(batch, steps, channels)`` layout; the same transpose converts back."""
    return x if data_format == "channels_last" else ops.transpose(x, (0, 2, 1))


def _attention(q, k, v, return_attention_scores):
    """Scaled dot-product attention over steps, heads kept apart (no mask, no dropout).

    ``q``/``k`` ``(batch, steps, heads, depth)``, ``v`` ``(batch, steps, heads, depth_v)``.
    Returns ``(context (batch, steps, heads, depth_v), scores or None)``.
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    if return_attention_scores:
        return explicit_attention(q, k, v, None, scale)
    return fused_attention(q, k, v, None, scale), None


@keras.saving.register_keras_serializable(package="tabattn")
class ChannelAttention(keras.layers.Layer):
    """Single-head self-attention across the steps of a 1D feature map.

    Each step's channel vector is projected to a query and a key of size ``attention_dim``
    and to a value of size ``channels``; each step then takes the values of all steps,
    weighted by ``softmax(Q Kᵀ / √attention_dim)`` over steps. There is no residual
    connection and no output projection: the output has the input's channels. The kernel is
    ``keras.ops.dot_product_attention`` unless scores are requested, which uses an explicit
    float32 softmax; both agree to 1e-5. Under mixed precision the logits and softmax run in
    float32 and the result is cast back to the compute dtype.

    Each row of the batch is computed on its own: the output for one row does not depend on
    the other rows in the batch.

    Args:
        attention_dim: size of the queries and keys, a positive integer.
        num_channels: optional number of input channels, checked against the input; inferred
            when None (default).
        data_format: ``"channels_last"`` (default) for inputs ``(batch_size, steps,
            channels)`` or ``"channels_first"`` for ``(batch_size, channels, steps)``.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor ``(batch_size, steps, channels)``, or
            ``(batch_size, channels, steps)`` with ``data_format="channels_first"``.
        return_attention_scores: if ``True``, also return the attention probabilities.

    Returns:
        ``outputs`` of the input's shape and layout; with ``return_attention_scores=True``,
        ``(outputs, attention_scores)`` where ``attention_scores`` has shape
        ``(batch_size, steps, steps)`` (query step, key step), dtype float32, and sums to 1
        over the last axis.

    Raises:
        ValueError: if ``attention_dim`` is not a positive integer, ``data_format`` is
            unknown, the input is not of rank 3, its number of channels is unknown, or it
            differs from ``num_channels``.

    Example:

    >>> import numpy as np
    >>> layer = ChannelAttention(attention_dim=4)
    >>> feature_map = np.random.rand(2, 10, 8).astype("float32")  # (batch, steps, channels)
    >>> outputs, scores = layer(feature_map, return_attention_scores=True)
    >>> tuple(outputs.shape), tuple(scores.shape)
    ((2, 10, 8), (2, 10, 10))

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, §3.2.1 (scaled
        dot-product attention), applied across the steps of a 1D CNN feature map.
    """

    def __init__(self, attention_dim, num_channels=None, data_format="channels_last", **kwargs):
        super().__init__(**kwargs)
        self.attention_dim = _checks.positive_int("attention_dim", attention_dim)
        self.num_channels = _checks.positive_int("num_channels", num_channels, allow_none=True)
        self.data_format = _checks.one_of("data_format", data_format, _DATA_FORMATS)

    def build(self, input_shape):
        channels = _check_input(self, input_shape, self.num_channels)
        kwargs = dict(equation="btc,ca->bta", dtype=self.dtype_policy)
        attention = (None, self.attention_dim)
        self.query_dense = keras.layers.EinsumDense(
            output_shape=attention, bias_axes="a", name="query", **kwargs
        )
        # No key bias: it adds the same q·b to every logit of a query, which the softmax
        # cancels, so it would never receive a gradient.
        self.key_dense = keras.layers.EinsumDense(output_shape=attention, name="key", **kwargs)
        self.value_dense = keras.layers.EinsumDense(
            output_shape=(None, channels), bias_axes="a", name="value", **kwargs
        )
        for dense in (self.query_dense, self.key_dense, self.value_dense):
            dense.build((None, None, channels))

    def call(self, inputs, return_attention_scores=False):
        x = _channels_last(inputs, self.data_format)
        # A single head: (batch, steps, 1, depth), the layout the attention kernel takes.
        q = ops.expand_dims(self.query_dense(x), axis=2)
        k = ops.expand_dims(self.key_dense(x), axis=2)
        v = ops.expand_dims(self.value_dense(x), axis=2)
        context, scores = _attention(q, k, v, return_attention_scores)
        outputs = _channels_last(context[:, :, 0, :], self.data_format)
        if return_attention_scores:
            return outputs, scores[:, 0]
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs, return_attention_scores=False):
        outputs = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return outputs
        steps = inputs.shape[1 if self.data_format == "channels_last" else 2]
        return outputs, keras.KerasTensor((inputs.shape[0], steps, steps), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            attention_dim=self.attention_dim,
            num_channels=self.num_channels,
            data_format=self.data_format,
        )
        return config


@keras.saving.register_keras_serializable(package="tabattn")
class MultiHeadChannelAttention(keras.layers.Layer):
    """Multi-head self-attention across the steps of a 1D feature map.

    Each step's channel vector is projected to ``num_heads`` queries, keys and values of size
    ``head_dim = attention_dim // num_heads``; each head computes
    ``softmax(Q Kᵀ / √head_dim) V`` over steps; the heads are concatenated and projected back
    to ``channels``. There is no residual connection. The kernel is
    ``keras.ops.dot_product_attention`` unless scores are requested, which uses an explicit
    float32 softmax; both agree to 1e-5. Under mixed precision the logits and softmax run in
    float32 and the result is cast back to the compute dtype.

    Each row of the batch is computed on its own: the output for one row does not depend on
    the other rows in the batch.

    Args:
        attention_dim: total size of the queries, keys and values over all heads; a positive
            integer divisible by ``num_heads``.
        num_heads: number of attention heads, a positive integer.
        num_channels: optional number of input channels, checked against the input; inferred
            when None (default).
        data_format: ``"channels_last"`` (default) for inputs ``(batch_size, steps,
            channels)`` or ``"channels_first"`` for ``(batch_size, channels, steps)``.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor ``(batch_size, steps, channels)``, or
            ``(batch_size, channels, steps)`` with ``data_format="channels_first"``.
        return_attention_scores: if ``True``, also return the attention probabilities.

    Returns:
        ``outputs`` of the input's shape and layout; with ``return_attention_scores=True``,
        ``(outputs, attention_scores)`` where ``attention_scores`` has shape
        ``(batch_size, num_heads, steps, steps)``, dtype float32, and sums to 1 over the last
        axis.

    Raises:
        ValueError: if ``attention_dim`` or ``num_heads`` is not a positive integer,
            ``attention_dim % num_heads != 0``, ``data_format`` is unknown, the input is not
            of rank 3, its number of channels is unknown, or it differs from
            ``num_channels``.

    Example:

    >>> import numpy as np
    >>> layer = MultiHeadChannelAttention(attention_dim=8, num_heads=2,
    ...                                   data_format="channels_first")
    >>> feature_map = np.random.rand(2, 6, 10).astype("float32")  # (batch, channels, steps)
    >>> outputs, scores = layer(feature_map, return_attention_scores=True)
    >>> tuple(outputs.shape), tuple(scores.shape)
    ((2, 6, 10), (2, 2, 10, 10))

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, §3.2.2 (multi-head
        attention), applied across the steps of a 1D CNN feature map.
    """

    def __init__(
        self, attention_dim, num_heads, num_channels=None, data_format="channels_last", **kwargs
    ):
        super().__init__(**kwargs)
        self.attention_dim = _checks.positive_int("attention_dim", attention_dim)
        self.num_heads = _checks.positive_int("num_heads", num_heads)
        if self.attention_dim % self.num_heads:
            raise ValueError(
                "`attention_dim` must be divisible by `num_heads`. "
                f"Received: attention_dim={attention_dim}, num_heads={num_heads}"
            )
        self.num_channels = _checks.positive_int("num_channels", num_channels, allow_none=True)
        self.data_format = _checks.one_of("data_format", data_format, _DATA_FORMATS)
        self.head_dim = self.attention_dim // self.num_heads

    def build(self, input_shape):
        channels = _check_input(self, input_shape, self.num_channels)
        heads = (None, self.num_heads, self.head_dim)
        kwargs = dict(equation="btc,chk->bthk", output_shape=heads, dtype=self.dtype_policy)
        self.query_dense = keras.layers.EinsumDense(name="query", bias_axes="hk", **kwargs)
        # No key bias: the softmax cancels it (see ChannelAttention).
        self.key_dense = keras.layers.EinsumDense(name="key", **kwargs)
        self.value_dense = keras.layers.EinsumDense(name="value", bias_axes="hk", **kwargs)
        self.output_dense = keras.layers.EinsumDense(
            "bthk,hkc->btc",
            output_shape=(None, channels),
            bias_axes="c",
            name="output",
            dtype=self.dtype_policy,
        )
        for dense in (self.query_dense, self.key_dense, self.value_dense):
            dense.build((None, None, channels))
        self.output_dense.build((None, None, self.num_heads, self.head_dim))

    def call(self, inputs, return_attention_scores=False):
        x = _channels_last(inputs, self.data_format)
        q, k, v = self.query_dense(x), self.key_dense(x), self.value_dense(x)
        context, scores = _attention(q, k, v, return_attention_scores)
        outputs = _channels_last(self.output_dense(context), self.data_format)
        if return_attention_scores:
            return outputs, scores
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs, return_attention_scores=False):
        outputs = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return outputs
        steps = inputs.shape[1 if self.data_format == "channels_last" else 2]
        scores_shape = (inputs.shape[0], self.num_heads, steps, steps)
        return outputs, keras.KerasTensor(scores_shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            attention_dim=self.attention_dim,
            num_heads=self.num_heads,
            num_channels=self.num_channels,
            data_format=self.data_format,
        )
        return config


@keras.saving.register_keras_serializable(package="tabattn")
class SqueezeExcitation1D(keras.layers.Layer):
    """Squeeze-and-excitation: rescale each channel by a gate computed from all channels.

    The feature map is averaged over steps ("squeeze", one vector of ``channels`` per row),
    passed through ``Dense(max(1, channels // reduction_ratio), relu)`` and
    ``Dense(channels, sigmoid)`` ("excitation"), and each channel of the input is multiplied
    by its gate in (0, 1). The bottleneck has at least one unit, so ``channels <
    reduction_ratio`` works. Also exported as ``ConvChannelAttention``.

    Each row of the batch is computed on its own: the output for one row does not depend on
    the other rows in the batch.

    Args:
        reduction_ratio: how much the bottleneck shrinks the channels, a positive integer.
            Default 16.
        data_format: ``"channels_last"`` (default) for inputs ``(batch_size, steps,
            channels)`` or ``"channels_first"`` for ``(batch_size, channels, steps)``.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor ``(batch_size, steps, channels)``, or
            ``(batch_size, channels, steps)`` with ``data_format="channels_first"``.

    Returns:
        The rescaled input, of the input's shape and layout.

    Raises:
        ValueError: if ``reduction_ratio`` is not a positive integer, ``data_format`` is
            unknown, the input is not of rank 3, or its number of channels is unknown.

    Example:

    >>> import numpy as np
    >>> layer = SqueezeExcitation1D(reduction_ratio=4)
    >>> feature_map = np.random.rand(2, 10, 8).astype("float32")  # (batch, steps, channels)
    >>> tuple(layer(feature_map).shape)
    (2, 10, 8)

    Reference:
        Hu, Shen & Sun, "Squeeze-and-Excitation Networks", CVPR 2018, §3 (here over the
        steps of a 1D feature map instead of the pixels of an image).
    """

    def __init__(self, reduction_ratio=16, data_format="channels_last", **kwargs):
        super().__init__(**kwargs)
        self.reduction_ratio = _checks.positive_int("reduction_ratio", reduction_ratio)
        self.data_format = _checks.one_of("data_format", data_format, _DATA_FORMATS)

    def build(self, input_shape):
        channels = _check_input(self, input_shape)
        units = max(1, channels // self.reduction_ratio)
        self.squeeze_dense = keras.layers.Dense(
            units, activation="relu", name="squeeze", dtype=self.dtype_policy
        )
        self.excite_dense = keras.layers.Dense(
            channels, activation="sigmoid", name="excite", dtype=self.dtype_policy
        )
        self.squeeze_dense.build((None, channels))
        self.excite_dense.build((None, units))

    def call(self, inputs):
        steps_axis = 1 if self.data_format == "channels_last" else 2
        gates = self.excite_dense(self.squeeze_dense(ops.mean(inputs, axis=steps_axis)))
        return inputs * ops.expand_dims(gates, axis=steps_axis)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(reduction_ratio=self.reduction_ratio, data_format=self.data_format)
        return config


@keras.saving.register_keras_serializable(package="tabattn")
class ConvChannelAttention(SqueezeExcitation1D):
    """``SqueezeExcitation1D`` under the name KerasFactory users know.

    The same layer, with the same arguments, call and output; see ``SqueezeExcitation1D``.
    It is a registered subclass rather than a plain alias so that a model saved with either
    name reloads as the class it was built with.

    Example:

    >>> import numpy as np
    >>> layer = ConvChannelAttention(reduction_ratio=16)  # 8 channels: a 1-unit bottleneck
    >>> tuple(layer(np.random.rand(2, 10, 8).astype("float32")).shape)
    (2, 10, 8)
    """
