"""Tabular attention blocks: attention across the features of a row, then across rows."""

__all__ = ["TabularAttention"]

import keras
from keras import ops

from tabattn.layers import _checks
from tabattn.layers.classic import MultiHeadAttention
from tabattn.layers.embeddings import FeatureTokenizer
from tabattn.layers.row import _attend_across_rows

# Hidden size of each feed-forward network, as a multiple of d_model (Vaswani et al., §3.3).
_FFN_FACTOR = 4


@keras.saving.register_keras_serializable(package="tabattn")
class TabularAttention(keras.layers.Layer):
    """Inter-feature then inter-sample attention, each with a feed-forward network.

    The input becomes one ``d_model`` token per feature: a ``(batch_size, num_features)``
    table through a per-feature linear embedding ``x_j * W_j + b_j`` (``FeatureTokenizer``);
    ``(batch_size, num_features, d)`` tokens through one ``Dense(d_model)`` shared by all
    features, or as they are when ``d == d_model``. Then four pre-norm residual sublayers,
    ``x = x + dropout(f(LayerNorm(x)))``, each with its own LayerNorm:

    1. feature attention: multi-head self-attention among the features of each row;
    2. a feed-forward network ``Dense(4 * d_model, relu) → Dense(d_model)`` on each token;
    3. sample attention: multi-head self-attention among the rows, for each feature on its
       own (the tokens of feature ``j`` in every row attend to each other, with weights
       shared by all features);
    4. a second feed-forward network of the same form.

    The attentions are ``tabattn.layers.MultiHeadAttention`` with ``num_heads`` heads of
    ``d_model // num_heads`` units.

    On ``(batch_size, num_features, d)`` tokens the whole block is permutation-equivariant
    over features: permuting the input's features permutes the output's the same way. On a
    ``(batch_size, num_features)`` table it is not, on purpose: the columns of a table are not
    interchangeable, and a projection shared by all columns would give two columns holding
    the same value the same token, leaving attention no way to tell them apart.

    Sample attention here runs per feature rather than over whole flattened rows as in SAINT
    (for that, see ``IntersampleAttention``): it keeps the block equivariant over features
    and its cost does not grow with ``num_features * d_model``. KerasFactory's
    ``TabularAttention`` attends over the wrong axes and cannot be reloaded from a
    ``.keras`` file; this one can.

    Without ``context``, the output of a row depends on every other row of the batch (in
    training and inference) through sample attention. With ``context`` (stored rows), each
    row attends, for each feature, to the context rows and to itself only: its output no
    longer depends on the rest of the batch.

    Args:
        num_heads: number of attention heads of both attentions, a positive integer.
        d_model: size of the tokens and of the output, a positive integer divisible by
            ``num_heads``.
        dropout_rate: dropout rate in [0, 1) on the attention probabilities and on the
            output of each sublayer before the residual sum, during training. Default 0.1.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor ``(batch_size, num_features)`` (a table of numeric features) or
            ``(batch_size, num_features, d)`` (feature tokens).
        context: optional float tensor ``(n_context, ...)`` of stored rows in the same form
            as ``inputs``. They go through the same embedding and feature sublayers, then
            serve as keys and values of sample attention. Being a separate batch of rows, it
            is best passed as an array or tensor to a layer called directly (a functional
            model's inputs must share one batch size).
        training: whether dropout is applied.
        return_attention_scores: if ``True``, also return the attention probabilities.

    Returns:
        ``outputs`` of shape ``(batch_size, num_features, d_model)``; with
        ``return_attention_scores=True``, ``(outputs, scores)`` where ``scores`` is a dict of
        float32 tensors summing to 1 over the last axis: ``"feature"``
        ``(batch_size, num_heads, num_features, num_features)`` and ``"sample"``
        ``(batch_size, num_heads, num_features, n_keys)``, with ``n_keys = batch_size``
        without context and ``n_context + 1`` with it (the context rows, then the row
        itself).

    Raises:
        ValueError: if ``num_heads`` or ``d_model`` is not a positive integer,
            ``d_model % num_heads != 0``, ``dropout_rate`` is outside [0, 1), the input is
            not of rank 2 or 3, or ``context`` does not have the input's trailing shape.

    Example:

    >>> import numpy as np
    >>> layer = TabularAttention(num_heads=2, d_model=8)
    >>> table = np.random.rand(5, 3).astype("float32")
    >>> outputs, scores = layer(table, return_attention_scores=True)
    >>> tuple(outputs.shape), tuple(scores["feature"].shape), tuple(scores["sample"].shape)
    ((5, 3, 8), (5, 2, 3, 3), (5, 2, 3, 5))
    >>> stored = np.random.rand(20, 3).astype("float32")
    >>> tuple(layer(table, context=stored).shape)
    (5, 3, 8)

    Reference:
        Somepalli et al., "SAINT: Improved Neural Networks for Tabular Data via Row Attention
        and Contrastive Pre-Training", arXiv:2106.01342, 2021, §3 (self-attention and
        intersample attention blocks); the tokenizer and pre-norm residuals follow Gorishniy
        et al., "Revisiting Deep Learning Models for Tabular Data", NeurIPS 2021, §3.3.
    """

    def __init__(self, num_heads, d_model, dropout_rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = _checks.positive_int("num_heads", num_heads)
        self.d_model = _checks.positive_int("d_model", d_model)
        if self.d_model % self.num_heads:
            raise ValueError(
                "`d_model` must be divisible by `num_heads`. "
                f"Received: d_model={d_model}, num_heads={num_heads}"
            )
        self.dropout_rate = _checks.rate("dropout_rate", dropout_rate)

    def build(self, input_shape):
        _checks.rank("inputs", input_shape, (2, 3), type(self).__name__)
        policy = self.dtype_policy
        num_features = input_shape[1]
        self.tokenizer = self.input_projection = None
        if len(input_shape) == 2:
            self.tokenizer = FeatureTokenizer(self.d_model, name="tokenizer", dtype=policy)
            self.tokenizer.build(input_shape)
        elif input_shape[-1] != self.d_model:
            self.input_projection = keras.layers.Dense(
                self.d_model, name="input_projection", dtype=policy
            )
            self.input_projection.build(input_shape)
        tokens = (None, num_features, self.d_model)
        columns = (num_features, None, self.d_model)  # one sequence of rows per feature
        self.feature_norm = self._layer_norm("feature_norm", tokens)
        self.feature_attention = self._attention("feature_attention", tokens)
        self.feature_ffn_norm = self._layer_norm("feature_ffn_norm", tokens)
        self.feature_ffn = self._feed_forward("feature_ffn", tokens)
        self.sample_norm = self._layer_norm("sample_norm", columns)
        self.sample_attention = self._attention("sample_attention", columns)
        self.sample_ffn_norm = self._layer_norm("sample_ffn_norm", tokens)
        self.sample_ffn = self._feed_forward("sample_ffn", tokens)
        self.dropout_layer = keras.layers.Dropout(self.dropout_rate, dtype=policy)

    def _layer_norm(self, name, shape):
        norm = keras.layers.LayerNormalization(
            epsilon=1e-5, name=name, dtype=self.dtype_policy
        )
        norm.build(shape)
        return norm

    def _attention(self, name, shape):
        attention = MultiHeadAttention(
            self.num_heads,
            self.d_model,
            dropout=self.dropout_rate,
            name=name,
            dtype=self.dtype_policy,
        )
        attention.build(shape)
        return attention

    def _feed_forward(self, name, shape):
        policy = self.dtype_policy
        ffn = keras.Sequential(
            [
                keras.layers.Dense(
                    _FFN_FACTOR * self.d_model, activation="relu", name="hidden", dtype=policy
                ),
                keras.layers.Dense(self.d_model, name="output", dtype=policy),
            ],
            name=name,
        )
        ffn.build(shape)
        return ffn

    def _tokens(self, inputs):
        if self.tokenizer is not None:
            return self.tokenizer(inputs)
        if self.input_projection is not None:
            return self.input_projection(inputs)
        return ops.cast(inputs, self.compute_dtype)

    def _residual(self, x, branch, training):
        return x + self.dropout_layer(branch, training=training)

    def _feature_sublayers(self, x, training, return_attention_scores):
        attended = self.feature_attention(
            self.feature_norm(x),
            training=training,
            return_attention_scores=return_attention_scores,
        )
        scores = None
        if return_attention_scores:
            attended, scores = attended
        x = self._residual(x, attended, training)
        x = self._residual(x, self.feature_ffn(self.feature_ffn_norm(x)), training)
        return x, scores

    def call(self, inputs, context=None, training=None, return_attention_scores=False):
        x, feature_scores = self._feature_sublayers(
            self._tokens(inputs), training, return_attention_scores
        )
        columns_context = None
        if context is not None:
            context = ops.convert_to_tensor(context)
            if tuple(context.shape[1:]) != tuple(inputs.shape[1:]):
                raise ValueError(
                    f"{type(self).__name__} expects `context` rows shaped like the input's: "
                    f"(n_context, {', '.join(str(s) for s in inputs.shape[1:])}). "
                    f"Received: context.shape={tuple(context.shape)}"
                )
            context, _ = self._feature_sublayers(self._tokens(context), training, False)
            columns_context = self.sample_norm(ops.transpose(context, (1, 0, 2)))
        columns = self.sample_norm(ops.transpose(x, (1, 0, 2)))  # (features, batch, d)
        attended = _attend_across_rows(
            self.sample_attention, columns, columns_context, training, return_attention_scores
        )
        if return_attention_scores:
            attended, sample_scores = attended
        x = self._residual(x, ops.transpose(attended, (1, 0, 2)), training)
        x = self._residual(x, self.sample_ffn(self.sample_ffn_norm(x)), training)
        if return_attention_scores:
            # (features, heads, batch, n_keys) -> (batch, heads, features, n_keys)
            sample_scores = ops.transpose(sample_scores, (2, 1, 0, 3))
            return x, {"feature": feature_scores, "sample": sample_scores}
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.d_model)

    def compute_output_spec(
        self, inputs, context=None, training=None, return_attention_scores=False
    ):
        batch_size, num_features = inputs.shape[0], inputs.shape[1]
        outputs = keras.KerasTensor(
            (batch_size, num_features, self.d_model), dtype=self.compute_dtype
        )
        if not return_attention_scores:
            return outputs
        n_keys = batch_size
        if context is not None:
            n_keys = None if context.shape[0] is None else context.shape[0] + 1
        heads = (batch_size, self.num_heads, num_features)
        return outputs, {
            "feature": keras.KerasTensor(heads + (num_features,), dtype="float32"),
            "sample": keras.KerasTensor(heads + (n_keys,), dtype="float32"),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads, d_model=self.d_model, dropout_rate=self.dropout_rate
        )
        return config
