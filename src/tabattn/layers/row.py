"""Attention across rows (samples): row weighting and inter-sample attention."""

__all__ = ["IntersampleAttention", "RowAttention"]

import math

import keras
from keras import ops

from tabattn.layers import _checks
from tabattn.layers.classic import MultiHeadAttention


def _attend_across_rows(
    attention, rows, context=None, training=None, return_attention_scores=False
):
    """Let the rows of each group attend to each other, or to ``context`` and themselves.

    ``rows`` is ``(groups, n_rows, dim)``: ``attention`` (a ``MultiHeadAttention``) runs over
    the rows axis, one group at a time. With ``context`` ``(groups, n_context, dim)``, the
    keys and values are the context rows followed by the rows themselves, and a mask lets each
    row see the context and its own copy only, so no row depends on another row of the
    batch. Scores come back as ``(groups, heads, n_rows, n_keys)`` with ``n_keys = n_rows``
    without context and ``n_context + 1`` with it (the last column is the row itself).
    """
    if context is None:
        return attention(
            rows, training=training, return_attention_scores=return_attention_scores
        )
    groups, n_rows, n_context = rows.shape[0], ops.shape(rows)[1], ops.shape(context)[1]
    index = ops.arange(n_rows)
    itself = ops.equal(index[:, None], index[None, :])
    mask = ops.concatenate([ops.ones((n_rows, n_context), dtype="bool"), itself], axis=1)
    mask = ops.broadcast_to(mask[None], (groups, n_rows, n_context + n_rows))
    keys = ops.concatenate([ops.cast(context, rows.dtype), rows], axis=1)
    result = attention(
        rows,
        keys,
        keys,
        attention_mask=mask,
        training=training,
        return_attention_scores=return_attention_scores,
    )
    if not return_attention_scores:
        return result
    outputs, scores = result
    # Only the diagonal of the rows block is non-zero: summing it keeps each row's own weight.
    own = ops.sum(scores[..., n_context:], axis=-1, keepdims=True)
    return outputs, ops.concatenate([scores[..., :n_context], own], axis=-1)


@keras.saving.register_keras_serializable(package="tabattn")
class RowAttention(keras.layers.Layer):
    """Row (sample) attention: scale each row by a learned, batch-normalised weight.

    A small network ``attention_net`` (``Dense(hidden_dim, relu)`` then ``Dense(1,
    sigmoid)``) gives each row a score ``s_i`` in (0, 1); its logit is
    ``l_i = s_i / temperature``. In training the weight of row ``i`` is
    ``w_i = exp(l_i) / mean_j exp(l_j)``, that is ``batch_size * softmax(l)_i``: the weights
    average 1, so the output keeps the input's scale at any batch size. The layer keeps a
    moving average of the normaliser ``mean_j exp(l_j)`` over training batches (stored in log
    space as the non-trainable ``moving_log_normalizer``, updated with ``momentum`` like
    ``BatchNormalization``'s statistics); in inference ``w_i = exp(l_i) /
    moving_normalizer``. The output is ``inputs * w``.

    In training the output depends on the other rows of the batch (through the normaliser);
    in inference it does not: a row gives the same output in a batch of any size or
    composition. Before any training the normaliser is that of a batch whose scores are all
    0.5 (``log normaliser = 0.5 / temperature``), so untrained weights stay near 1. A frozen
    layer (``trainable=False``) runs in inference mode, as ``BatchNormalization`` does.

    This departs on purpose from KerasFactory's ``RowAttention``, whose weights are a plain
    softmax over the batch in training and inference alike: they sum to 1, so its output
    shrinks as 1 / batch size and a row's output changes with the rows batched beside it.

    Args:
        feature_dim: number of features; optional, inferred from the input and checked
            against it when given.
        hidden_dim: units of the hidden layer of ``attention_net``, a positive integer.
            Default ``None``: ``max(num_features // 2, 1)``.
        temperature: divides the scores before the softmax, a finite number > 0; smaller
            values give sharper weights. Default 0.2.
        momentum: momentum of the moving normaliser, in [0, 1): after each training batch
            ``moving = momentum * moving + (1 - momentum) * batch_normaliser``. Default 0.99.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor ``(batch_size, num_features)``.
        training: whether to use (and update) the batch normaliser rather than the moving
            one (ignored when the layer is frozen).
        return_attention_scores: if ``True``, also return the row weights ``w``.

    Returns:
        ``outputs`` of shape ``(batch_size, num_features)``; with
        ``return_attention_scores=True``, ``(outputs, weights)`` where ``weights`` has shape
        ``(batch_size, 1)``, dtype float32, and averages 1 over the batch in training (the
        weights do not sum to 1).

    Raises:
        ValueError: if ``feature_dim`` or ``hidden_dim`` is given and not a positive
            integer, ``temperature`` is not a finite number > 0, ``momentum`` is outside
            [0, 1), the input is not of rank 2, or ``feature_dim`` differs from the input's
            number of features.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> layer = RowAttention(temperature=0.5)
    >>> x = np.random.rand(6, 4).astype("float32")
    >>> outputs, weights = layer(x, training=True, return_attention_scores=True)
    >>> tuple(outputs.shape), tuple(weights.shape)
    ((6, 4), (6, 1))
    >>> round(float(ops.convert_to_numpy(weights).mean()), 4)
    1.0

    Reference:
        The row-weighting layer of KerasFactory (``RowAttention``), with the weights rescaled
        to mean 1 and a moving normaliser for inference in the manner of Ioffe & Szegedy,
        "Batch Normalization", ICML 2015, §3.1.
    """

    def __init__(
        self, feature_dim=None, hidden_dim=None, temperature=0.2, momentum=0.99, **kwargs
    ):
        super().__init__(**kwargs)
        self.feature_dim = _checks.positive_int("feature_dim", feature_dim, allow_none=True)
        self.hidden_dim = _checks.positive_int("hidden_dim", hidden_dim, allow_none=True)
        self.temperature = _checks.positive_float("temperature", temperature)
        self.momentum = _checks.rate("momentum", momentum)

    def build(self, input_shape):
        name = type(self).__name__
        _checks.rank("inputs", input_shape, 2, name)
        num_features = input_shape[-1]
        _checks.dim_matches("feature_dim", self.feature_dim, num_features, name, "features")
        hidden_dim = self.hidden_dim or max(num_features // 2, 1)
        policy = self.dtype_policy
        self.attention_net = keras.Sequential(
            [
                keras.layers.Dense(hidden_dim, activation="relu", name="hidden", dtype=policy),
                keras.layers.Dense(1, activation="sigmoid", name="score", dtype=policy),
            ],
            name="attention_net",
        )
        self.attention_net.build((None, num_features))
        self.moving_log_normalizer = self.add_weight(
            name="moving_log_normalizer",
            shape=(),
            initializer=keras.initializers.Constant(0.5 / self.temperature),
            trainable=False,
            dtype="float32",
        )

    def call(self, inputs, training=None, return_attention_scores=False):
        scores = ops.cast(self.attention_net(inputs), "float32")  # (batch, 1)
        logits = scores / self.temperature
        if training and self.trainable:
            # log(mean_j exp(l_j)), stable for any temperature.
            batch_size = ops.cast(ops.shape(logits)[0], "float32")
            log_normalizer = ops.logsumexp(logits) - ops.log(batch_size)
            self._update_moving_normalizer(ops.stop_gradient(log_normalizer))
        else:
            log_normalizer = self.moving_log_normalizer
        weights = ops.exp(logits - log_normalizer)
        outputs = inputs * ops.cast(weights, self.compute_dtype)
        if return_attention_scores:
            return outputs, weights
        return outputs

    def _update_moving_normalizer(self, log_normalizer):
        # moving = momentum * moving + (1 - momentum) * batch, computed in log space.
        new = log_normalizer + math.log1p(-self.momentum)
        if self.momentum > 0:
            new = ops.logaddexp(self.moving_log_normalizer + math.log(self.momentum), new)
        self.moving_log_normalizer.assign(new)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs, training=None, return_attention_scores=False):
        outputs = keras.KerasTensor(tuple(inputs.shape), dtype=self.compute_dtype)
        if not return_attention_scores:
            return outputs
        return outputs, keras.KerasTensor((inputs.shape[0], 1), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            feature_dim=self.feature_dim,
            hidden_dim=self.hidden_dim,
            temperature=self.temperature,
            momentum=self.momentum,
        )
        return config


@keras.saving.register_keras_serializable(package="tabattn")
class IntersampleAttention(keras.layers.Layer):
    """Inter-sample attention (SAINT): each row attends to the other rows of the batch.

    Each row's tokens ``(n_tokens, d)`` are flattened to one vector of size
    ``n_tokens * d``; the rows of the batch form the sequence of a multi-head attention with
    ``num_heads`` heads of ``key_dim`` units (queries, keys and values projected from the
    flattened rows, softmax(Q Kᵀ / √key_dim) V per head), whose output is projected back to
    ``n_tokens * d`` and reshaped to ``(n_tokens, d)``. The kernel is
    ``tabattn.layers.MultiHeadAttention``'s (fused unless scores or dropout need the
    probabilities).

    Without ``context``, the output of a row depends on every other row of the batch, in
    training and inference: predictions then change with the batch size and composition.
    With ``context`` (stored rows, for example a sample of the training set), each row
    attends to the context rows and to itself only, so its output does not depend on the
    other rows of the batch: use this for batch-invariant inference. The context may have
    any number of rows; it is used as given, so if it holds the row itself (a training row
    whose copy is in the context), that row sees itself twice.

    Args:
        num_heads: number of attention heads, a positive integer.
        key_dim: size of each head's queries, keys and values, a positive integer.
        dropout: dropout rate on the attention probabilities during training, in [0, 1).
            Default 0.0.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor ``(batch_size, n_tokens, d)``.
        context: optional float tensor ``(n_context, n_tokens, d)`` of stored rows. Being a
            separate batch of rows, it is best passed as an array or tensor to a layer
            called directly (a functional model's inputs must share one batch size).
        training: whether dropout is applied.
        return_attention_scores: if ``True``, also return the attention probabilities.

    Returns:
        ``outputs`` of shape ``(batch_size, n_tokens, d)``; with
        ``return_attention_scores=True``, ``(outputs, scores)`` where ``scores`` has shape
        ``(batch_size, num_heads, n_keys)``, dtype float32, summing to 1 over the last axis:
        ``n_keys = batch_size`` (the rows of the batch) without context, and
        ``n_context + 1`` with it (the context rows, then the row itself).

    Raises:
        ValueError: if ``num_heads`` or ``key_dim`` is not a positive integer, ``dropout`` is
            outside [0, 1), the input is not of rank 3 with known ``n_tokens`` and ``d``, or
            ``context`` does not have the input's ``(n_tokens, d)``.

    Example:

    >>> import numpy as np
    >>> layer = IntersampleAttention(num_heads=2, key_dim=4)
    >>> x = np.random.rand(5, 3, 8).astype("float32")
    >>> outputs, scores = layer(x, return_attention_scores=True)
    >>> tuple(outputs.shape), tuple(scores.shape)
    ((5, 3, 8), (5, 2, 5))
    >>> context = np.random.rand(10, 3, 8).astype("float32")
    >>> outputs, scores = layer(x, context=context, return_attention_scores=True)
    >>> tuple(outputs.shape), tuple(scores.shape)
    ((5, 3, 8), (5, 2, 11))

    Reference:
        Somepalli et al., "SAINT: Improved Neural Networks for Tabular Data via Row Attention
        and Contrastive Pre-Training", arXiv:2106.01342, 2021, §3 (intersample attention).
    """

    def __init__(self, num_heads, key_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = _checks.positive_int("num_heads", num_heads)
        self.key_dim = _checks.positive_int("key_dim", key_dim)
        self.dropout = _checks.rate("dropout", dropout)

    def build(self, input_shape):
        name = type(self).__name__
        _checks.rank("inputs", input_shape, 3, name)
        if None in tuple(input_shape[1:]):
            raise ValueError(
                f"{name} flattens each row, so it needs a known `(n_tokens, d)`. "
                f"Received: inputs.shape={tuple(input_shape)}"
            )
        self.row_dim = input_shape[1] * input_shape[2]
        self.attention = MultiHeadAttention(
            self.num_heads,
            self.num_heads * self.key_dim,  # heads of key_dim units, as in Keras
            dropout=self.dropout,
            output_dim=self.row_dim,
            name="attention",
            dtype=self.dtype_policy,
        )
        self.attention.build((1, None, self.row_dim))

    def call(self, inputs, context=None, training=None, return_attention_scores=False):
        n_tokens, d = inputs.shape[1], inputs.shape[2]
        rows = ops.reshape(inputs, (1, -1, self.row_dim))  # the batch as one sequence
        if context is not None:
            context = ops.convert_to_tensor(context)
            if tuple(context.shape[1:]) != (n_tokens, d):
                raise ValueError(
                    f"{type(self).__name__} expects `context` of shape (n_context, {n_tokens}, "
                    f"{d}), like the input's rows. Received: context.shape={context.shape}"
                )
            context = ops.reshape(context, (1, -1, self.row_dim))
        outputs = _attend_across_rows(
            self.attention, rows, context, training, return_attention_scores
        )
        if return_attention_scores:
            outputs, scores = outputs
        outputs = ops.reshape(outputs, (-1, n_tokens, d))
        if return_attention_scores:
            # (1, heads, batch, n_keys) -> (batch, heads, n_keys)
            return outputs, ops.transpose(scores[0], (1, 0, 2))
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(
        self, inputs, context=None, training=None, return_attention_scores=False
    ):
        outputs = keras.KerasTensor(tuple(inputs.shape), dtype=self.compute_dtype)
        if not return_attention_scores:
            return outputs
        batch_size = inputs.shape[0]
        n_keys = batch_size
        if context is not None:
            n_keys = None if context.shape[0] is None else context.shape[0] + 1
        scores = keras.KerasTensor((batch_size, self.num_heads, n_keys), dtype="float32")
        return outputs, scores

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, key_dim=self.key_dim, dropout=self.dropout)
        return config
