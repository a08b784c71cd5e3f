"""FT-Transformer (Gorishniy et al. 2021) as a Keras functional model."""

import keras
import numpy as np
from keras import ops

from tabattn.layers import _checks
from tabattn.layers.classic import MultiHeadAttention
from tabattn.layers.embeddings import CLSToken, FeatureTokenizer
from tabattn.models._optim import adamw_without_decay_on


@keras.saving.register_keras_serializable(package="tabattn")
class FTTransformerBlock(keras.layers.Layer):
    """One pre-norm Transformer block of FT-Transformer: attention, then a ReGLU FFN.

    ``x = x + drop(MHA(LN(x)))``, then ``x = x + drop(W2 · drop_ffn(ReGLU(W1 · LN(x))))``,
    with ``ReGLU(a, b) = a * relu(b)``.

    Args:
        d_token: token size, a positive integer.
        num_heads: attention heads; ``d_token % num_heads == 0``.
        ffn_hidden: hidden size of the feed-forward network (before the ReGLU halving).
        attention_dropout: dropout on attention probabilities.
        ffn_dropout: dropout on the FFN hidden activations.
        residual_dropout: dropout on each branch before it is added to the residual.
        attention_norm: whether to LayerNorm the input of the attention branch. The paper
            drops it in the first block (the tokenizer's output is used as is).
        cls_only: compute the output of the last token only (the [CLS] token). The paper
            does this in the last block, whose other outputs the head never reads.

    Call arguments:
        inputs: ``(batch_size, n_tokens, d_token)``.
        training: whether dropout is applied.
        return_attention_scores: also return ``(batch_size, num_heads, n_query, n_tokens)``.

    Returns:
        ``(batch_size, n_tokens, d_token)``, or ``(batch_size, 1, d_token)`` when
        ``cls_only``. Rows do not depend on each other.

    Reference:
        Gorishniy et al., "Revisiting Deep Learning Models for Tabular Data", NeurIPS 2021,
        §3.3 and Appendix (FT-Transformer architecture).
    """

    def __init__(
        self,
        d_token,
        num_heads,
        ffn_hidden,
        attention_dropout=0.0,
        ffn_dropout=0.0,
        residual_dropout=0.0,
        attention_norm=True,
        cls_only=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.d_token = _checks.positive_int("d_token", d_token)
        self.num_heads = _checks.positive_int("num_heads", num_heads)
        self.ffn_hidden = _checks.positive_int("ffn_hidden", ffn_hidden)
        self.attention_dropout = _checks.rate("attention_dropout", attention_dropout)
        self.ffn_dropout = _checks.rate("ffn_dropout", ffn_dropout)
        self.residual_dropout = _checks.rate("residual_dropout", residual_dropout)
        self.attention_norm = bool(attention_norm)
        self.cls_only = bool(cls_only)

    def build(self, input_shape):
        _checks.rank("inputs", input_shape, 3, type(self).__name__)
        policy = self.dtype_policy
        self.attention = MultiHeadAttention(
            self.num_heads, self.d_token, dropout=self.attention_dropout, name="attention",
            dtype=policy,
        )
        query_shape = (input_shape[0], 1, self.d_token) if self.cls_only else input_shape
        self.attention.build(query_shape, input_shape, input_shape)
        if self.attention_norm:
            self.attention_layer_norm = keras.layers.LayerNormalization(
                epsilon=1e-5, name="attention_norm", dtype=policy
            )
            self.attention_layer_norm.build(input_shape)
        self.ffn_layer_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, name="ffn_norm", dtype=policy
        )
        self.ffn_layer_norm.build(query_shape)
        self.ffn_in = keras.layers.Dense(2 * self.ffn_hidden, name="ffn_in", dtype=policy)
        self.ffn_in.build(query_shape)
        self.ffn_out = keras.layers.Dense(self.d_token, name="ffn_out", dtype=policy)
        self.ffn_out.build(tuple(query_shape[:-1]) + (self.ffn_hidden,))
        self.ffn_dropout_layer = keras.layers.Dropout(self.ffn_dropout, dtype=policy)
        self.residual_dropout_layer = keras.layers.Dropout(self.residual_dropout, dtype=policy)

    def call(self, inputs, training=None, return_attention_scores=False):
        x = inputs
        h = self.attention_layer_norm(x) if self.attention_norm else x
        query, residual = (h[:, -1:], x[:, -1:]) if self.cls_only else (h, x)
        attended = self.attention(
            query, h, h, training=training, return_attention_scores=return_attention_scores
        )
        if return_attention_scores:
            attended, scores = attended
        x = residual + self.residual_dropout_layer(attended, training=training)
        h = self.ffn_in(self.ffn_layer_norm(x))
        a, b = ops.split(h, 2, axis=-1)
        h = self.ffn_dropout_layer(a * ops.relu(b), training=training)
        x = x + self.residual_dropout_layer(self.ffn_out(h), training=training)
        if return_attention_scores:
            return x, scores
        return x

    def compute_output_shape(self, input_shape):
        if self.cls_only:
            return (input_shape[0], 1, self.d_token)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            d_token=self.d_token,
            num_heads=self.num_heads,
            ffn_hidden=self.ffn_hidden,
            attention_dropout=self.attention_dropout,
            ffn_dropout=self.ffn_dropout,
            residual_dropout=self.residual_dropout,
            attention_norm=self.attention_norm,
            cls_only=self.cls_only,
        )
        return config


@keras.saving.register_keras_serializable(package="tabattn")
class FTTransformer(keras.Model):
    """FT-Transformer: a Transformer over feature tokens, read out from a [CLS] token.

    ``FeatureTokenizer`` → ``CLSToken`` → ``n_blocks`` pre-norm Transformer blocks
    (multi-head attention and a ReGLU feed-forward network) → ``LayerNorm`` → ``ReLU`` →
    ``Dense(d_out)`` on the [CLS] token. The output is raw logits (or the standardised
    regression value): apply a sigmoid/softmax yourself or train with ``from_logits=True``.

    Departures from the paper's code, on purpose: the [CLS] token is appended last rather
    than first (the same model up to a permutation of tokens).

    Args:
        n_num_features: number of numeric input columns (may be 0).
        categorical_cardinalities: known categories per categorical column, excluding the
            reserved code 0 for missing/unseen (see ``FeatureTokenizer``). Default ``()``.
        d_out: output size: 1 for regression or binary classification, the number of
            classes for multiclass classification.
        n_blocks: number of Transformer blocks. Paper default 3.
        d_token: token size. Paper default 192.
        num_heads: attention heads. Paper default 8.
        attention_dropout: paper default 0.2.
        ffn_dropout: paper default 0.1.
        residual_dropout: paper default 0.0.
        ffn_factor: FFN hidden size as a multiple of ``d_token``. Paper default 4/3.
        numeric_embedding: how numeric features become tokens: ``"linear"`` (the paper's
            feature tokenizer), ``"periodic"`` or ``"piecewise"`` (Gorishniy et al. 2022;
            see ``FeatureTokenizer``).
        bins: bin edges per numeric feature for ``"piecewise"`` (``compute_bins``).
        n_frequencies, frequency_init_scale: the ``"periodic"`` embedding's settings.
        **kwargs: passed to ``keras.Model`` (e.g. ``name``).

    Call arguments:
        inputs: dict with ``"numeric"`` (float32, ``(batch_size, n_num_features)``; omitted
            when ``n_num_features == 0``) and ``"categorical"`` (int32 codes,
            ``(batch_size, n_cat)``; omitted when there are no categorical columns).

    Returns:
        ``(batch_size, d_out)`` logits. Rows do not depend on each other.

    Raises:
        ValueError: for non-positive sizes, rates outside [0, 1), ``d_token % num_heads !=
            0``, or no input features at all.

    Example:

    >>> import numpy as np
    >>> model = FTTransformer(n_num_features=3, categorical_cardinalities=(4,), d_out=1,
    ...                       n_blocks=1, d_token=16, num_heads=2)
    >>> inputs = {"numeric": np.random.rand(5, 3).astype("float32"),
    ...           "categorical": np.array([[0], [1], [2], [3], [4]], dtype="int32")}
    >>> tuple(model(inputs).shape)
    (5, 1)

    Reference:
        Gorishniy, Rubachev, Khrulkov & Babenko, "Revisiting Deep Learning Models for Tabular
        Data", NeurIPS 2021. Defaults: Table 13 (FT-Transformer default configuration).
    """

    def __init__(
        self,
        n_num_features,
        categorical_cardinalities=(),
        d_out=1,
        n_blocks=3,
        d_token=192,
        num_heads=8,
        attention_dropout=0.2,
        ffn_dropout=0.1,
        residual_dropout=0.0,
        ffn_factor=4 / 3,
        numeric_embedding="linear",
        bins=None,
        n_frequencies=48,
        frequency_init_scale=0.01,
        **kwargs,
    ):
        if isinstance(n_num_features, bool) or int(n_num_features) != n_num_features or (
            n_num_features < 0
        ):
            raise ValueError(
                "`n_num_features` must be a non-negative integer. "
                f"Received: n_num_features={n_num_features!r}"
            )
        n_num_features = int(n_num_features)
        categorical_cardinalities = tuple(int(c) for c in categorical_cardinalities or ())
        if n_num_features + len(categorical_cardinalities) == 0:
            raise ValueError("FTTransformer needs at least one numeric or categorical feature.")
        _checks.positive_int("d_out", d_out)
        _checks.positive_int("n_blocks", n_blocks)
        _checks.positive_float("ffn_factor", ffn_factor)
        ffn_hidden = max(1, int(d_token * ffn_factor))

        # === Layers ===
        tokenizer = FeatureTokenizer(
            d_token, categorical_cardinalities, numeric_embedding=numeric_embedding, bins=bins,
            n_frequencies=n_frequencies, frequency_init_scale=frequency_init_scale,
            name="tokenizer",
        )
        cls_token = CLSToken(d_token, name="cls_token")
        blocks = [
            FTTransformerBlock(
                d_token,
                num_heads,
                ffn_hidden,
                attention_dropout=attention_dropout,
                ffn_dropout=ffn_dropout,
                residual_dropout=residual_dropout,
                attention_norm=i > 0,  # paper: no pre-norm in the first block
                cls_only=i == n_blocks - 1,  # paper: the head only reads [CLS]
                name=f"block_{i}",
            )
            for i in range(n_blocks)
        ]
        head_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="head_norm")
        head = keras.layers.Dense(d_out, name="head")

        # === Functional model ===
        inputs = {}
        if n_num_features:
            inputs["numeric"] = keras.Input((n_num_features,), name="numeric")
        if categorical_cardinalities:
            inputs["categorical"] = keras.Input(
                (len(categorical_cardinalities),), dtype="int32", name="categorical"
            )
        x = cls_token(tokenizer(inputs))
        for block in blocks:
            x = block(x)
        outputs = head(ops.relu(head_norm(x[:, -1])))
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.n_num_features = n_num_features
        self.categorical_cardinalities = categorical_cardinalities
        self.d_out = int(d_out)
        self.n_blocks = int(n_blocks)
        self.d_token = int(d_token)
        self.num_heads = int(num_heads)
        self.attention_dropout = float(attention_dropout)
        self.ffn_dropout = float(ffn_dropout)
        self.residual_dropout = float(residual_dropout)
        self.ffn_factor = float(ffn_factor)
        self.numeric_embedding = numeric_embedding
        self.bins = tokenizer.get_config()["bins"]
        self.n_frequencies = int(n_frequencies)
        self.frequency_init_scale = float(frequency_init_scale)
        self.tokenizer = tokenizer
        self.cls_token = cls_token
        self.blocks = blocks
        self.head_norm = head_norm

    @classmethod
    def default_config(cls):
        """The paper's default architecture (Gorishniy et al. 2021, Table 13).

        Returns a dict of constructor arguments: ``n_blocks=3``, ``d_token=192``,
        ``num_heads=8``, ``attention_dropout=0.2``, ``ffn_dropout=0.1``,
        ``residual_dropout=0.0``, ``ffn_factor=4/3``. The paper trains it with AdamW,
        learning rate 1e-4 and weight decay 1e-5 (not applied to norms, biases and
        embeddings): see ``default_optimizer_config`` and ``make_optimizer``.
        """
        return dict(
            n_blocks=3,
            d_token=192,
            num_heads=8,
            attention_dropout=0.2,
            ffn_dropout=0.1,
            residual_dropout=0.0,
            ffn_factor=4 / 3,
        )

    @classmethod
    def default_optimizer_config(cls):
        """The paper's optimiser settings: ``learning_rate=1e-4``, ``weight_decay=1e-5``."""
        return dict(learning_rate=1e-4, weight_decay=1e-5)

    def make_optimizer(self, learning_rate=1e-4, weight_decay=1e-5, **kwargs):
        """AdamW with weight decay on every weight except norms, biases and embeddings.

        The exclusions follow the paper's code (rtdl): the feature tokenizer, the [CLS]
        token, LayerNorm parameters and biases are not decayed. ``kwargs`` go to
        ``keras.optimizers.AdamW`` (e.g. ``use_ema=True``).
        """
        excluded = list(self.tokenizer.weights) + list(self.cls_token.weights)
        return adamw_without_decay_on(self, excluded, learning_rate, weight_decay, **kwargs)

    def attention_maps(self, inputs, batch_size=1024):
        """[CLS]-row attention of every block, averaged over heads.

        Args:
            inputs: the model's input dict (NumPy arrays).
            batch_size: rows per forward pass.

        Returns:
            NumPy float32 array ``(n_rows, n_blocks, n_features + 1)``: how much the [CLS]
            token attends to each feature token (and, last, to itself) in each block.
        """
        n_rows = len(next(iter(inputs.values())))
        maps = []
        for start in range(0, n_rows, batch_size):
            batch = {k: v[start : start + batch_size] for k, v in inputs.items()}
            x = self.cls_token(self.tokenizer(batch))
            per_block = []
            for block in self.blocks:
                x, scores = block(x, training=False, return_attention_scores=True)
                cls_row = ops.mean(scores[:, :, -1, :], axis=1)  # (batch, n_tokens)
                per_block.append(ops.convert_to_numpy(cls_row))
            maps.append(np.stack(per_block, axis=1))
        return np.concatenate(maps, axis=0).astype("float32")

    def feature_importances(self, inputs, batch_size=1024):
        """The paper's attention-map feature importance, one value per input feature token.

        ``p_j = mean over rows, blocks and heads of the [CLS] token's attention to token j``
        (Gorishniy et al. 2021, §5.3). The [CLS] token's attention to itself is dropped and
        the rest renormalised, so the values are non-negative and sum to 1.

        Args:
            inputs: the model's input dict (NumPy arrays), e.g. a validation or test set.
            batch_size: rows per forward pass.

        Returns:
            NumPy float64 array ``(n_num_features + n_cat,)``, numeric features first, then
            categorical ones, in column order.
        """
        maps = self.attention_maps(inputs, batch_size=batch_size)[..., :-1]
        importance = maps.astype("float64").mean(axis=(0, 1))
        return importance / importance.sum()

    def get_config(self):
        return dict(
            name=self.name,
            n_num_features=self.n_num_features,
            categorical_cardinalities=list(self.categorical_cardinalities),
            d_out=self.d_out,
            n_blocks=self.n_blocks,
            d_token=self.d_token,
            num_heads=self.num_heads,
            attention_dropout=self.attention_dropout,
            ffn_dropout=self.ffn_dropout,
            residual_dropout=self.residual_dropout,
            ffn_factor=self.ffn_factor,
            numeric_embedding=self.numeric_embedding,
            bins=self.bins,
            n_frequencies=self.n_frequencies,
            frequency_init_scale=self.frequency_init_scale,
        )

    @classmethod
    def from_config(cls, config):
        return cls(**config)
