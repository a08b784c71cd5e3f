"""Attention and selection across columns (features): which features matter for each row."""

__all__ = ["ColumnAttention", "GatedResidualNetwork", "VariableSelection"]

import keras
from keras import ops

from tabattn.layers import _checks


# keras.layers.LayerNormalization's default, shared by GatedResidualNetwork's layer norm
# and the per-feature one in _FeatureWiseGRN.
_LAYER_NORM_EPSILON = 1e-3


def _boolean(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
    return value


def _is_shape_list(shape):
    """True for a list of shapes ``[features_shape, context_shape]``, False for one shape."""
    if not isinstance(shape, (list, tuple)) or not shape:
        return False
    return isinstance(shape[0], (list, tuple))


def _dense(units, name, policy, use_bias=True):
    return keras.layers.Dense(units, use_bias=use_bias, name=name, dtype=policy)


@keras.saving.register_keras_serializable(package="tabattn")
class ColumnAttention(keras.layers.Layer):
    """Column (feature) attention: reweights the features of each row by a learned softmax.

    A small network looks at the whole row and scores every feature:
    ``scores = softmax(W2 relu(W1 x + b1) + b2)`` over the feature axis, so each row's scores
    are positive and sum to 1. The output is ``x * scores * num_features``: the weights
    ``scores * num_features`` average 1 over the features, so a row whose features are all
    equally important passes through unchanged and the output keeps the scale of the input.
    The softmax runs in float32 under mixed precision.

    Unlike KerasFactory's ``ColumnAttention``, which returns ``x * softmax(...)`` (outputs
    shrink by a factor of about ``num_features``) and puts a ``BatchNormalization`` between
    the two dense layers, this layer rescales by ``num_features`` and has no batch
    normalization, so each row is computed on its own: the output for one row does not
    depend on the other rows in the batch, in training or in inference.

    Args:
        input_dim: number of features, a positive integer, or ``None`` (the default) to infer
            it from the input. When given, it is checked against the input.
        hidden_dim: size of the hidden layer of the scoring network, a positive integer.
            Default ``None``: ``max(num_features // 2, 1)``, as in KerasFactory.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor ``(batch_size, num_features)``.
        return_attention_scores: if ``True``, also return the feature scores.

    Returns:
        ``outputs`` of shape ``(batch_size, num_features)``; with
        ``return_attention_scores=True``, ``(outputs, scores)`` where ``scores`` has shape
        ``(batch_size, num_features)``, dtype float32, and sums to 1 over the features.

    Raises:
        ValueError: if ``input_dim`` or ``hidden_dim`` is neither ``None`` nor a positive
            integer, if the input is not of rank 2, or if its number of features differs
            from ``input_dim``.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> layer = ColumnAttention(hidden_dim=4)
    >>> rows = np.random.rand(8, 6).astype("float32")
    >>> outputs, scores = layer(rows, return_attention_scores=True)
    >>> tuple(outputs.shape), tuple(scores.shape)
    ((8, 6), (8, 6))
    >>> bool(np.allclose(keras.ops.convert_to_numpy(scores).sum(axis=-1), 1.0, atol=1e-5))
    True

    Reference:
        KerasFactory's ``ColumnAttention`` (UnicoLab; no paper), with the rescaling described
        above. The same per-row softmax over features weights the variables of the Temporal
        Fusion Transformer (Lim et al., International Journal of Forecasting 2021, §4.2; see
        :class:`VariableSelection`).
    """

    def __init__(self, input_dim=None, hidden_dim=None, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = _checks.positive_int("input_dim", input_dim, allow_none=True)
        self.hidden_dim = _checks.positive_int("hidden_dim", hidden_dim, allow_none=True)

    def build(self, input_shape):
        name = type(self).__name__
        _checks.rank("inputs", input_shape, 2, name)
        num_features = input_shape[-1]
        if num_features is None:
            raise ValueError(
                f"{name} needs a known number of features. Received: "
                f"inputs.shape={tuple(input_shape)}"
            )
        _checks.dim_matches("input_dim", self.input_dim, num_features, name, "features")
        self.num_features = num_features
        hidden = self.hidden_dim or max(num_features // 2, 1)
        self.hidden_dense = keras.layers.Dense(
            hidden, activation="relu", name="hidden", dtype=self.dtype_policy
        )
        self.score_dense = _dense(num_features, "score", self.dtype_policy)
        self.hidden_dense.build(input_shape)
        self.score_dense.build((input_shape[0], hidden))

    def call(self, inputs, return_attention_scores=False):
        logits = self.score_dense(self.hidden_dense(inputs))
        scores = ops.softmax(ops.cast(logits, "float32"), axis=-1)
        weights = ops.cast(scores * float(self.num_features), self.compute_dtype)
        outputs = inputs * weights
        if return_attention_scores:
            return outputs, scores
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs, return_attention_scores=False):
        outputs = keras.KerasTensor(tuple(inputs.shape), dtype=self.compute_dtype)
        if not return_attention_scores:
            return outputs
        return outputs, keras.KerasTensor(tuple(inputs.shape), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(input_dim=self.input_dim, hidden_dim=self.hidden_dim)
        return config


@keras.saving.register_keras_serializable(package="tabattn")
class GatedResidualNetwork(keras.layers.Layer):
    """Gated residual network (GRN) of the Temporal Fusion Transformer.

    For an input ``a`` and an optional context ``c``:

    - ``η2 = ELU(W2 a + W3 c + b2)`` (the ``W3 c`` term only when a context is passed),
    - ``η1 = W1 η2 + b1``,
    - ``GLU(η1) = σ(W4 η1 + b4) ⊙ (W5 η1 + b5)``,
    - ``output = LayerNorm(skip(a) + GLU(dropout(η1)))``,

    where ``skip`` is the identity when ``a`` already has ``units`` features and a learned
    linear projection to ``units`` otherwise. All of ``η1``, ``η2`` and the gate have
    ``units`` features. The gate lets the network shut off its non-linear branch and fall
    back to the (projected) input. The layer applies to the last axis, so inputs of rank 2
    and 3 both work.

    Whether a context is used is decided by the first call: a layer built with a context
    needs one on every call, and a layer built without one refuses it.

    Each row is computed on its own: the output for one row does not depend on the other rows
    in the batch.

    Args:
        units: size of the hidden layers and of the output, a positive integer.
        dropout: dropout rate on ``η1`` during training, in [0, 1). Default 0.0.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor ``(batch_size, input_dim)`` or
            ``(batch_size, steps, input_dim)``.
        context: optional float tensor ``(batch_size, context_dim)``, broadcast over ``steps``
            for inputs of rank 3, or ``(batch_size, steps, context_dim)``.
        training: whether dropout is applied.

    Returns:
        A tensor with the shape of ``inputs`` except for the last axis, which is ``units``.

    Raises:
        ValueError: if ``units`` is not a positive integer or ``dropout`` is outside [0, 1);
            if ``inputs`` is not of rank 2 or 3 or ``context`` has a rank other than 2 or the
            rank of ``inputs``; or if a context is passed to a layer built without one, or
            left out for a layer built with one.

    Example:

    >>> import numpy as np
    >>> grn = GatedResidualNetwork(units=8)
    >>> rows = np.random.rand(4, 5).astype("float32")
    >>> context = np.random.rand(4, 3).astype("float32")
    >>> tuple(grn(rows, context=context).shape)
    (4, 8)
    >>> steps = np.random.rand(4, 7, 5).astype("float32")
    >>> tuple(GatedResidualNetwork(units=8)(steps).shape)
    (4, 7, 8)

    Reference:
        Lim et al., "Temporal Fusion Transformers for Interpretable Multi-horizon Time Series
        Forecasting", International Journal of Forecasting 37(4), 2021, §4.1 (Gating
        mechanisms), equations (2) to (5).
    """

    def __init__(self, units, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = _checks.positive_int("units", units)
        self.dropout = _checks.rate("dropout", dropout)

    def build(self, inputs_shape, context_shape=None):
        name = type(self).__name__
        _checks.rank("inputs", inputs_shape, (2, 3), name)
        if inputs_shape[-1] is None:
            raise ValueError(
                f"{name} needs a known input size on the last axis. Received: "
                f"inputs.shape={tuple(inputs_shape)}"
            )
        if context_shape is not None:
            _checks.rank("context", context_shape, sorted({2, len(inputs_shape)}), name)
        policy = self.dtype_policy
        hidden_shape = tuple(inputs_shape[:-1]) + (self.units,)
        self.hidden_dense = _dense(self.units, "hidden", policy)  # W2, b2
        self.hidden_dense.build(inputs_shape)
        self.context_dense = None
        if context_shape is not None:
            # No bias: b2 already shifts the same pre-activation.
            self.context_dense = _dense(self.units, "context", policy, use_bias=False)  # W3
            self.context_dense.build(context_shape)
        self.intermediate_dense = _dense(self.units, "intermediate", policy)  # W1, b1
        self.gate_dense = _dense(self.units, "gate", policy)  # W4, b4
        self.value_dense = _dense(self.units, "value", policy)  # W5, b5
        for layer in (self.intermediate_dense, self.gate_dense, self.value_dense):
            layer.build(hidden_shape)
        self.skip_dense = None
        if inputs_shape[-1] != self.units:
            self.skip_dense = _dense(self.units, "skip", policy)
            self.skip_dense.build(inputs_shape)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy)
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=_LAYER_NORM_EPSILON, name="layer_norm", dtype=policy
        )
        self.layer_norm.build(hidden_shape)

    def call(self, inputs, context=None, training=None):
        if context is None and self.context_dense is not None:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' was built with a context, so every call "
                "needs one. Received: context=None"
            )
        if context is not None and self.context_dense is None:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' was built without a context, so it "
                f"cannot take one. Received: context.shape={tuple(context.shape)}"
            )
        hidden = self.hidden_dense(inputs)
        if context is not None:
            projected = self.context_dense(context)
            if len(projected.shape) < len(hidden.shape):
                projected = ops.expand_dims(projected, axis=1)  # the same context at each step
            hidden = hidden + projected
        eta1 = self.intermediate_dense(ops.elu(hidden))
        # TFT applies dropout to η1, before the gate and the layer normalization.
        eta1 = self.dropout_layer(eta1, training=training)
        gated = ops.sigmoid(self.gate_dense(eta1)) * self.value_dense(eta1)
        skip = inputs if self.skip_dense is None else self.skip_dense(inputs)
        return self.layer_norm(skip + gated)

    def compute_output_shape(self, inputs_shape, context_shape=None):
        return tuple(inputs_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, dropout=self.dropout)
        return config


def _glorot_uniform(fan_in, fan_out):
    # Dense's default for each feature's own (fan_in, fan_out) kernel; Keras's glorot on a
    # stacked (features, fan_in, fan_out) kernel would count the features in the fans.
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    return keras.initializers.RandomUniform(-limit, limit)


class _FeatureWiseGRN(keras.layers.Layer):
    """One independent :class:`GatedResidualNetwork` per feature, with stacked weights.

    The maths of ``[GatedResidualNetwork(units) for each feature]`` applied to
    ``inputs[:, j, :]`` (no context), computed with one einsum per step for all features
    instead of one small layer per feature, which keeps compile and run times flat in the
    number of features. Input ``(batch_size, num_features, feature_dim)``, output
    ``(batch_size, num_features, units)``.
    """

    def __init__(self, units, dropout, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dropout = dropout

    def build(self, input_shape):
        num_features, feature_dim = input_shape[1], input_shape[2]
        units = self.units

        def dense(name, fan_in):
            # A (kernel, bias) pair per feature, named after GatedResidualNetwork's sublayers.
            kernel = self.add_weight(
                name=f"{name}_kernel",
                shape=(num_features, fan_in, units),
                initializer=_glorot_uniform(fan_in, units),
            )
            bias = self.add_weight(
                name=f"{name}_bias", shape=(num_features, units), initializer="zeros"
            )
            return kernel, bias

        self.hidden_kernel, self.hidden_bias = dense("hidden", feature_dim)  # W2, b2
        self.intermediate_kernel, self.intermediate_bias = dense("intermediate", units)  # W1
        self.gate_kernel, self.gate_bias = dense("gate", units)  # W4, b4
        self.value_kernel, self.value_bias = dense("value", units)  # W5, b5
        self.skip_kernel = self.skip_bias = None
        if feature_dim != units:
            self.skip_kernel, self.skip_bias = dense("skip", feature_dim)
        self.gamma = self.add_weight(name="gamma", shape=(num_features, units), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(num_features, units), initializer="zeros")
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def call(self, inputs, training=None):
        def dense(x, kernel, bias):
            return ops.einsum("bfi,fio->bfo", x, kernel) + bias

        hidden = ops.elu(dense(inputs, self.hidden_kernel, self.hidden_bias))
        eta1 = dense(hidden, self.intermediate_kernel, self.intermediate_bias)
        eta1 = self.dropout_layer(eta1, training=training)
        gated = ops.sigmoid(dense(eta1, self.gate_kernel, self.gate_bias)) * dense(
            eta1, self.value_kernel, self.value_bias
        )
        skip = inputs
        if self.skip_kernel is not None:
            skip = dense(inputs, self.skip_kernel, self.skip_bias)
        # A layer normalization per feature, each with its own gamma and beta; in float32 so
        # that mixed precision keeps the variance accurate.
        z = ops.cast(skip + gated, "float32")
        mean, variance = ops.moments(z, axes=[-1], keepdims=True)
        normed = (z - mean) * ops.rsqrt(variance + _LAYER_NORM_EPSILON)
        outputs = normed * ops.cast(self.gamma, "float32") + ops.cast(self.beta, "float32")
        return ops.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable(package="tabattn")
class VariableSelection(keras.layers.Layer):
    """Variable selection network of the Temporal Fusion Transformer.

    Each of the ``nr_features`` features ``ξ_j`` (a vector of size ``feature_dim``, e.g. an
    embedding) goes through its own gated residual network (see
    :class:`GatedResidualNetwork`; no weights are shared), ``ξ̃_j = GRN_j(ξ_j)`` of size
    ``units``. These per-feature GRNs are computed together, with their weights stacked
    along a feature axis, so the cost of compiling the layer does not grow with the number of
    features. Another GRN reads all the features at once, flattened to
    ``Ξ = [ξ_1, ..., ξ_n]``, and, with ``use_context=True``, a context vector ``c``; a softmax
    over its ``nr_features`` outputs gives the selection weights
    ``v = softmax(GRN_v(Ξ, c))``. The output is the weighted sum ``Σ_j v_j ξ̃_j``. The softmax
    runs in float32 under mixed precision, and the weights are returned in float32.

    Inputs of rank 2, ``(batch_size, nr_features)``, are read as one scalar per feature
    (``feature_dim = 1``), as in KerasFactory.

    Each row is computed on its own: the output for one row does not depend on the other rows
    in the batch.

    Args:
        nr_features: number of features, a positive integer, or ``None`` (the default) to
            infer it from the input. When given, it is checked against the input. This is the
            first positional argument, as in KerasFactory: ``VariableSelection(10, 32)``.
        units: size of every GRN's hidden layers and of the selected output, a positive
            integer. Required: ``VariableSelection(nr_features, units)`` or
            ``VariableSelection(units=...)``.
        dropout_rate: dropout rate inside every GRN during training, in [0, 1). Default 0.1.
        use_context: whether the selection weights are conditioned on a context vector (TFT's
            static covariate context ``c_s``). Default ``False``.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor ``(batch_size, nr_features, feature_dim)`` or
            ``(batch_size, nr_features)``. With ``use_context=True``, either the list
            ``[features, context]`` (KerasFactory's way) or the features alone with
            ``context`` passed as a keyword.
        context: float tensor ``(batch_size, context_dim)``; only with ``use_context=True``,
            and only when ``inputs`` is not already a ``[features, context]`` list.
        training: whether dropout is applied.

    Returns:
        The tuple ``(selected, weights)``: ``selected`` of shape ``(batch_size, units)`` and
        ``weights`` of shape ``(batch_size, nr_features)``, dtype float32, summing to 1 over
        the features.

    Raises:
        ValueError: if ``nr_features`` is neither ``None`` nor a positive integer, ``units``
            is missing or not a positive integer, ``dropout_rate`` is outside [0, 1),
            ``use_context`` is not a bool; if the features are not of rank 2 or 3 or their
            number differs from ``nr_features``; or if a context is missing with
            ``use_context=True`` or passed with ``use_context=False``.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> features = np.random.rand(4, 5, 3).astype("float32")
    >>> selected, weights = VariableSelection(5, 8)(features)
    >>> tuple(selected.shape), tuple(weights.shape)
    ((4, 8), (4, 5))
    >>> context = np.random.rand(4, 2).astype("float32")
    >>> layer = VariableSelection(units=8, use_context=True)
    >>> selected, weights = layer([features, context])
    >>> bool(np.allclose(keras.ops.convert_to_numpy(weights).sum(axis=-1), 1.0, atol=1e-5))
    True

    Reference:
        Lim et al., "Temporal Fusion Transformers for Interpretable Multi-horizon Time Series
        Forecasting", International Journal of Forecasting 37(4), 2021, §4.2 (Variable
        selection networks), equations (6) to (8).
    """

    def __init__(self, nr_features=None, units=None, dropout_rate=0.1, use_context=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.nr_features = _checks.positive_int("nr_features", nr_features, allow_none=True)
        if units is None:
            raise ValueError(
                "`units` is required: pass VariableSelection(nr_features, units) or "
                f"VariableSelection(units=...). Received: units=None, nr_features={nr_features!r}"
            )
        self.units = _checks.positive_int("units", units)
        self.dropout_rate = _checks.rate("dropout_rate", dropout_rate)
        self.use_context = _boolean("use_context", use_context)

    def _split(self, inputs, context, is_list):
        """Return ``(features, context)`` from the two ways of passing a context."""
        if is_list:
            if len(inputs) != 2 or context is not None:
                also = " and `context=...`" if context is not None else ""
                raise ValueError(
                    "VariableSelection takes its context either in a [features, context] list "
                    "or as `context=...`, not both. "
                    f"Received: a list of {len(inputs)} inputs{also}"
                )
            inputs, context = inputs
        if self.use_context and context is None:
            raise ValueError(
                "VariableSelection was created with use_context=True but no context was "
                "passed. Pass [features, context] or context=..."
            )
        if not self.use_context and context is not None:
            raise ValueError(
                "VariableSelection received a context but was created with "
                "use_context=False. Create it with use_context=True to use the context."
            )
        return inputs, context

    def build(self, inputs_shape, context_shape=None):
        name = type(self).__name__
        features_shape, context_shape = self._split(
            inputs_shape, context_shape, _is_shape_list(inputs_shape)
        )
        _checks.rank("features", features_shape, (2, 3), name)
        nr_features = features_shape[1]
        feature_dim = features_shape[2] if len(features_shape) == 3 else 1
        if nr_features is None or feature_dim is None:
            raise ValueError(
                f"{name} needs a known number and size of features. Received: "
                f"features.shape={tuple(features_shape)}"
            )
        _checks.dim_matches("nr_features", self.nr_features, nr_features, name, "features")
        if context_shape is not None:
            _checks.rank("context", context_shape, 2, name)
        self.num_features, self.feature_dim = nr_features, feature_dim
        self.feature_grns = _FeatureWiseGRN(
            self.units, self.dropout_rate, name="feature_grns", dtype=self.dtype_policy
        )
        self.feature_grns.build((None, nr_features, feature_dim))
        self.weight_grn = GatedResidualNetwork(
            nr_features, self.dropout_rate, name="weight_grn", dtype=self.dtype_policy
        )
        self.weight_grn.build((None, nr_features * feature_dim), context_shape)

    def call(self, inputs, context=None, training=None):
        features, context = self._split(inputs, context, isinstance(inputs, (list, tuple)))
        if len(features.shape) == 2:
            features = ops.expand_dims(features, axis=-1)
        flat = ops.reshape(features, (-1, self.num_features * self.feature_dim))
        logits = self.weight_grn(flat, context=context, training=training)
        weights = ops.softmax(ops.cast(logits, "float32"), axis=-1)
        transformed = self.feature_grns(features, training=training)  # (batch, features, units)
        selected = ops.sum(transformed * ops.cast(weights, transformed.dtype)[..., None], axis=1)
        return selected, weights

    def compute_output_shape(self, inputs_shape, context_shape=None):
        features_shape = inputs_shape[0] if _is_shape_list(inputs_shape) else inputs_shape
        batch, nr_features = features_shape[0], features_shape[1]
        return (batch, self.units), (batch, nr_features)

    def compute_output_spec(self, inputs, context=None, training=None):
        features = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        batch, nr_features = features.shape[0], features.shape[1]
        return (
            keras.KerasTensor((batch, self.units), dtype=self.compute_dtype),
            keras.KerasTensor((batch, nr_features), dtype="float32"),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            nr_features=self.nr_features,
            units=self.units,
            dropout_rate=self.dropout_rate,
            use_context=self.use_context,
        )
        return config
