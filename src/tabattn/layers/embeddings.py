"""Feature tokenizers: turn the columns of a table into tokens for attention layers."""

__all__ = ["CLSToken", "FeatureTokenizer"]

import math

import keras
from keras import ops

from tabattn.layers import _checks


def _uniform(d_token):
    # rtdl's initialisation for tokenizer weights and biases: U(-1/sqrt(d), 1/sqrt(d)).
    limit = 1.0 / math.sqrt(d_token)
    return keras.initializers.RandomUniform(-limit, limit)


def _split_inputs(inputs):
    """Return ``(numeric, categorical)`` from a tensor or a dict; either may be ``None``."""
    if isinstance(inputs, dict):
        unknown = set(inputs) - {"numeric", "categorical"}
        if unknown:
            raise ValueError(
                "FeatureTokenizer expects a dict with keys 'numeric' and/or 'categorical'. "
                f"Received unknown keys: {sorted(unknown)}"
            )
        return inputs.get("numeric"), inputs.get("categorical")
    return inputs, None


@keras.saving.register_keras_serializable(package="tabattn")
class FeatureTokenizer(keras.layers.Layer):
    """Feature tokenizer: one ``d_token`` token per column of a table.

    A numeric feature ``x_j`` becomes ``x_j * W_j + b_j`` (``W_j``, ``b_j`` learned vectors of
    size ``d_token``); a categorical feature with integer code ``c`` becomes ``E_j[c] + b_j``,
    a row of its own learned embedding table. Numeric tokens come first, then categorical
    ones, in column order.

    Code 0 of every categorical feature is reserved for "missing or unseen": a feature with
    cardinality ``n`` accepts codes ``0..n`` (``n + 1`` embedding rows), where ``1..n`` are
    the known categories.

    Each row is tokenized on its own: the output does not depend on other rows of the batch.

    Args:
        d_token: size of each token, a positive integer.
        categorical_cardinalities: number of known categories of each categorical feature
            (excluding the reserved code 0), a sequence of positive integers. Default ``()``:
            numeric features only.
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: either a float tensor of numeric features ``(batch_size, n_num)``, or a dict
            with keys ``"numeric"`` (float, ``(batch_size, n_num)``) and/or
            ``"categorical"`` (integer codes, ``(batch_size, n_cat)``). Float-typed codes are
            accepted and cast to int32.

    Returns:
        Tokens of shape ``(batch_size, n_num + n_cat, d_token)``.

    Raises:
        ValueError: if ``d_token`` or a cardinality is not a positive integer; if the
            categorical input's width differs from ``len(categorical_cardinalities)``; if
            categorical cardinalities are given but no categorical input is passed; if an
            input is not of rank 2; or if there are no features at all.

    Example:

    >>> import numpy as np
    >>> tokenizer = FeatureTokenizer(d_token=8, categorical_cardinalities=(3, 5))
    >>> numeric = np.random.rand(4, 2).astype("float32")
    >>> codes = np.array([[0, 1], [3, 5], [2, 0], [1, 4]], dtype="int32")
    >>> tuple(tokenizer({"numeric": numeric, "categorical": codes}).shape)
    (4, 4, 8)

    Reference:
        Gorishniy et al., "Revisiting Deep Learning Models for Tabular Data", NeurIPS 2021,
        §3.3 (Feature Tokenizer).
    """

    def __init__(self, d_token, categorical_cardinalities=(), **kwargs):
        super().__init__(**kwargs)
        self.d_token = _checks.positive_int("d_token", d_token)
        cardinalities = tuple(categorical_cardinalities or ())
        for j, n in enumerate(cardinalities):
            _checks.positive_int(f"categorical_cardinalities[{j}]", n)
        self.categorical_cardinalities = tuple(int(n) for n in cardinalities)

    def build(self, input_shape):
        numeric_shape, categorical_shape = _split_inputs(input_shape)
        name = type(self).__name__
        self.n_num = 0
        if numeric_shape is not None:
            _checks.rank("numeric", numeric_shape, 2, name)
            self.n_num = numeric_shape[-1]
        n_cat = len(self.categorical_cardinalities)
        if categorical_shape is not None:
            _checks.rank("categorical", categorical_shape, 2, name)
            if categorical_shape[-1] != n_cat:
                raise ValueError(
                    f"{name} was given categorical_cardinalities for {n_cat} features, but "
                    f"the categorical input has {categorical_shape[-1]} columns. "
                    f"Received: categorical.shape={tuple(categorical_shape)}"
                )
        elif n_cat:
            raise ValueError(
                f"{name} has categorical_cardinalities={self.categorical_cardinalities} but "
                "no categorical input was passed. Pass a dict with a 'categorical' entry."
            )
        if self.n_num + n_cat == 0:
            raise ValueError(f"{name} needs at least one numeric or categorical feature.")
        init = _uniform(self.d_token)
        if self.n_num:
            self.numeric_weight = self.add_weight(
                name="numeric_weight", shape=(self.n_num, self.d_token), initializer=init
            )
            self.numeric_bias = self.add_weight(
                name="numeric_bias", shape=(self.n_num, self.d_token), initializer=init
            )
        if n_cat:
            rows = [n + 1 for n in self.categorical_cardinalities]
            offsets = [0]
            for r in rows[:-1]:
                offsets.append(offsets[-1] + r)
            self._offsets = offsets
            self.categorical_embeddings = self.add_weight(
                name="categorical_embeddings", shape=(sum(rows), self.d_token), initializer=init
            )
            self.categorical_bias = self.add_weight(
                name="categorical_bias", shape=(n_cat, self.d_token), initializer=init
            )

    def call(self, inputs):
        numeric, categorical = _split_inputs(inputs)
        tokens = []
        if self.n_num:
            numeric = ops.cast(numeric, self.compute_dtype)
            tokens.append(numeric[..., None] * self.numeric_weight + self.numeric_bias)
        if self.categorical_cardinalities:
            codes = ops.cast(categorical, "int32") + ops.convert_to_tensor(
                self._offsets, dtype="int32"
            )
            embedded = ops.take(self.categorical_embeddings, codes, axis=0)
            tokens.append(ops.cast(embedded + self.categorical_bias, self.compute_dtype))
        return tokens[0] if len(tokens) == 1 else ops.concatenate(tokens, axis=1)

    def compute_output_shape(self, input_shape):
        numeric_shape, categorical_shape = _split_inputs(input_shape)
        batch = (numeric_shape if numeric_shape is not None else categorical_shape)[0]
        n_num = numeric_shape[-1] if numeric_shape is not None else 0
        return (batch, n_num + len(self.categorical_cardinalities), self.d_token)

    def get_config(self):
        config = super().get_config()
        config.update(
            d_token=self.d_token,
            categorical_cardinalities=list(self.categorical_cardinalities),
        )
        return config


@keras.saving.register_keras_serializable(package="tabattn")
class CLSToken(keras.layers.Layer):
    """Append a learned [CLS] token to a sequence of feature tokens.

    The same learned vector is appended to every row; a head reading the last token then
    sees a summary that attention layers wrote into it.

    Args:
        d_token: size of the token, a positive integer; must match the input's last axis.
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: float tensor ``(batch_size, n_tokens, d_token)``.

    Returns:
        ``(batch_size, n_tokens + 1, d_token)``; the [CLS] token is the last one. Rows do not
        depend on each other.

    Raises:
        ValueError: if ``d_token`` is not a positive integer, or the input is not of rank 3
            with last axis ``d_token``.

    Example:

    >>> import numpy as np
    >>> tuple(CLSToken(8)(np.zeros((2, 3, 8), "float32")).shape)
    (2, 4, 8)

    Reference:
        Devlin et al., "BERT", NAACL 2019; Gorishniy et al., NeurIPS 2021, §3.3.
    """

    def __init__(self, d_token, **kwargs):
        super().__init__(**kwargs)
        self.d_token = _checks.positive_int("d_token", d_token)

    def build(self, input_shape):
        _checks.rank("inputs", input_shape, 3, type(self).__name__)
        _checks.dim_matches("d_token", self.d_token, input_shape[-1], "CLSToken", "channels")
        self.cls = self.add_weight(
            name="cls", shape=(self.d_token,), initializer=_uniform(self.d_token)
        )

    def call(self, inputs):
        cls = ops.cast(self.cls, inputs.dtype)
        cls = ops.broadcast_to(cls, (ops.shape(inputs)[0], 1, self.d_token))
        return ops.concatenate([inputs, cls], axis=1)

    def compute_output_shape(self, input_shape):
        n = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], n, self.d_token)

    def get_config(self):
        config = super().get_config()
        config.update(d_token=self.d_token)
        return config
