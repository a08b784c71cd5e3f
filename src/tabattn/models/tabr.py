"""TabR: a feed-forward model that retrieves the nearest training rows and reads their labels."""

__all__ = ["TabR"]

import math
import warnings

import keras
import numpy as np
from keras import ops

from tabattn.layers import _checks
from tabattn.layers.row import RetrievalAttention
from tabattn.models._inputs import (
    context_sample,
    known_codes,
    numeric_embedding_layer,
    numeric_embedding_options,
    stored_context,
    table_columns,
)
from tabattn.models._optim import adamw_without_decay_on

_REFRESH_MODES = ("epoch", "rolling", "step")
# Categorical columns with at most this many codes are embedded by a one-hot matmul (faster
# than a gather on CPU for small tables); larger ones by a gather.
_ONE_HOT_MAX_CATEGORIES = 64


def _linear_init(fan_in):
    # PyTorch's nn.Linear default, as in the paper's code: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    limit = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-limit, limit)


class _Block(keras.layers.Layer):
    """TabR's residual MLP block: ``x + Dropout(Dense(Dropout(ReLU(Dense(Norm(x))))))``."""

    def __init__(self, d_main, d_block, dropout0, dropout1, prenorm, **kwargs):
        super().__init__(**kwargs)
        self.norm = keras.layers.LayerNormalization(epsilon=1e-5, name="norm") if prenorm else None
        self.hidden = keras.layers.Dense(
            d_block, activation="relu", kernel_initializer=_linear_init(d_main),
            bias_initializer=_linear_init(d_main), name="hidden",
        )
        self.output_dense = keras.layers.Dense(
            d_main, kernel_initializer=_linear_init(d_block),
            bias_initializer=_linear_init(d_block), name="output",
        )
        self.dropout0 = keras.layers.Dropout(dropout0)
        self.dropout1 = keras.layers.Dropout(dropout1)
        self.d_main, self.d_block = d_main, d_block

    def build(self, input_shape):
        if self.norm is not None:
            self.norm.build(input_shape)
        self.hidden.build(input_shape)
        self.output_dense.build((None, self.d_block))

    def call(self, x, training=None):
        h = self.norm(x) if self.norm is not None else x
        h = self.dropout0(self.hidden(h), training=training)
        return x + self.dropout1(self.output_dense(h), training=training)


class _ContextKeyRefresh(keras.callbacks.Callback):
    """Recompute the stored rows' keys with the current weights.

    Before each epoch (the keys the training steps search under ``context_refresh="epoch"``;
    skipped when the previous epoch's validation already refreshed them with the same
    weights, which is not so when validation ran on a moving average of the weights), before
    each validation (so validation sees keys of the weights it evaluates) and at the end of
    training (after any callback that restored the best weights, as this one runs last).
    """

    def on_train_begin(self, logs=None):
        self._epoch, self._validated = -1, None

    def on_epoch_begin(self, epoch, logs=None):
        # Under "step" the training steps encode the context themselves.
        averaged = getattr(self.model.optimizer, "use_ema", False)
        if self.model.context_refresh == "epoch" and (averaged or self._validated != epoch - 1):
            self.model.refresh_context_keys()
        self._epoch = epoch

    def on_test_begin(self, logs=None):
        self.model.refresh_context_keys()
        self._validated = getattr(self, "_epoch", None)

    def on_train_end(self, logs=None):
        self.model.refresh_context_keys()


@keras.saving.register_keras_serializable(package="tabattn")
class TabR(keras.Model):
    """TabR (Gorishniy et al. 2024): an MLP whose rows read the labels of their nearest training rows.

    Each row is encoded by a linear layer (numeric features, optionally through a
    ``PeriodicEmbedding``, plus one-hot categorical features) and ``encoder_n_blocks``
    residual MLP blocks into ``x`` (size ``d_main``) and a key ``k = Dense(d_main)(x)``. A
    ``RetrievalAttention`` finds the ``num_neighbors`` stored rows ("the context": the
    training rows, set with ``set_context``) whose keys are nearest to ``k`` and adds the
    mix of their label embeddings and ``T(k - k_i)`` terms to ``x``; ``predictor_n_blocks``
    residual blocks and a head ``Dense(d_out)(ReLU(LayerNorm(x)))`` give the logits.

    **The context.** Before training or predicting, call ``set_context(inputs, labels)`` with
    the training rows. The rows, their labels, their keys and the keys' squared norms are
    non-trainable weights, so a ``.keras`` file holds them and a reloaded model predicts
    identically. A row's prediction depends only on that row and the context, never on the rest of its batch. During
    training, pass ``"row_index"`` (each row's index in the context) in the input dict so that
    a training row never retrieves itself (``fit`` of the tabattn estimators does this).

    **Keys during training.** With ``context_refresh="step"`` (default, the paper's way)
    each training step encodes every stored row with the current weights to search the
    neighbours (a forward pass, no gradient), then re-encodes only the neighbours found, so
    that gradients reach the encoder through their keys. This is the paper's
    "memory-efficient" mode: the same gradient as back-propagating through all stored rows
    (tested), but each step still encodes the whole context, so an epoch costs (rows /
    batch size) × stored rows. ``context_refresh="rolling"`` keeps that gradient at a cost
    that does not grow with the context: each step re-encodes only the next
    ``refresh_rows`` stored rows (cycling through them, so a stored key is at most
    ``context_rows / refresh_rows`` steps old), searches the stored keys, and re-encodes the
    neighbours found with gradients: with fresh stored keys the gradient is again the
    paper's (tested).
    BENCHMARKS.md ("Models") gives the training throughput of both modes. With
    ``context_refresh="epoch"`` the stored keys are
    recomputed only before each epoch and receive no gradient: cheaper, but on California
    housing (seed 0, 240 s on one core) the test RMSE was 0.455 against 0.416 with
    ``"step"``. ``num_candidates`` instead searches, at each step, only that many stored rows
    drawn at random (ModernNCA's sampling; see ``RetrievalAttention``): cheapest, but the
    neighbours seen in training are then farther than those found at prediction (Adult,
    seed 0, d_main 128 and 32 neighbours: accuracy 0.859 with 1,024 candidates, 0.872
    searching all 26,048 training rows).

    **Large tables.** ``max_context_rows`` stores a uniform random sample of at most that
    many training rows (``set_context`` returns which); the other training rows still train
    the model as queries. Prediction searches the stored rows in chunks
    (``RetrievalAttention``'s ``search_chunk_size``), so its memory does not grow with them.

    Predictions for rows that are themselves in the context (e.g. the training
    rows) retrieve those rows too, unless ``"row_index"`` is passed: scores on the training
    set are optimistic. Categorical features enter through a learned table per category,
    which equals the paper's one-hot input followed by its first linear layer. Call
    ``refresh_context_keys()`` after changing the weights outside ``fit``.

    Args:
        n_num_features: number of numeric input columns (>= 0).
        categorical_cardinalities: known categories per categorical column (code 0 is
            reserved for missing/unseen, as in ``FeatureTokenizer``).
        d_out: number of outputs (1 for regression and binary classification).
        num_classes: ``None`` for regression labels (floats), else the number of classes of
            the integer labels given to ``set_context`` (2 for binary classification).
        num_neighbors: rows retrieved per row (paper: ``context_size`` = 96).
        d_main: width of the representation and keys (paper default 265).
        d_multiplier: hidden width of each block and of ``T`` as a multiple of ``d_main``
            (paper default 2).
        encoder_n_blocks: residual blocks before retrieval (paper default 0).
        predictor_n_blocks: residual blocks after retrieval (paper default 1).
        mixer_normalization: ``"auto"`` (LayerNorm before the key layer only when
            ``encoder_n_blocks > 0``, as in the paper), ``True`` or ``False``.
        context_dropout: dropout on the retrieval attention probabilities (default 0.389).
        dropout0: dropout inside the blocks and ``T`` (default 0.389; in ``T`` one mask per
            row, see ``RetrievalAttention``).
        dropout1: dropout on each block's output (default 0).
        numeric_embedding: ``None`` (numeric values enter as they are), ``"periodic"``
            (``PeriodicEmbedding(lite=True)``, the paper's "PLR(lite)" used by its tuned TabR)
            or ``"piecewise"`` (``PiecewiseLinearEncoding(bins)``, flattened, into the first
            linear layer: the "MLP-Q"/"MLP-T" inputs of Gorishniy et al. 2022).
        bins: bin edges per numeric feature (``compute_bins`` on the training rows), needed
            by ``numeric_embedding="piecewise"`` and only by it.
        embedding_dim: output size per numeric feature of the periodic embedding.
        n_frequencies: frequencies per numeric feature of the periodic embedding.
        frequency_init_scale: initialisation scale sigma of the frequencies.
        context_refresh: ``"step"`` (default), ``"rolling"`` or ``"epoch"``; see above.
        num_candidates: stored rows searched per training step, drawn at random (``None``,
            default: all); see above.
        max_context_rows: most rows ``set_context`` stores (``None``, default: all).
        refresh_rows: stored rows re-encoded per step under ``context_refresh="rolling"``
            (default 2048).
        context_rows: number of stored rows; set by ``set_context`` (a saved model records
            it), rarely given by hand.
        **kwargs: passed to ``keras.Model`` (e.g. ``name``).

    Call arguments:
        inputs: dict with ``"numeric"`` (float32 ``(batch_size, n_num_features)``, when
            there are numeric features), ``"categorical"`` (int32 codes ``(batch_size,
            n_cat)``, when there are categorical features) and optionally ``"row_index"``
            (int32 ``(batch_size,)``: each row's index in the context, -1 for none).
        training: whether dropout is applied.

    Returns:
        ``(batch_size, d_out)`` logits (regression: predictions).

    Raises:
        ValueError: for non-positive sizes, rates outside [0, 1), unknown options, no input
            features, calling the model before ``set_context``, or a context whose size,
            columns or labels do not fit the model.

    Example:

    >>> import numpy as np
    >>> model = TabR(n_num_features=3, categorical_cardinalities=(4,), num_classes=2,
    ...              d_main=16, num_neighbors=4)
    >>> rows = {"numeric": np.random.rand(50, 3).astype("float32"),
    ...         "categorical": np.random.randint(0, 5, (50, 1)).astype("int32")}
    >>> stored = model.set_context(rows, np.random.randint(0, 2, 50))  # which rows: all 50
    >>> tuple(model({k: v[:5] for k, v in rows.items()}).shape)
    (5, 1)

    Reference:
        Gorishniy, Rubachev, Kartashev, Shlenskii, Kotelnikov & Babenko, "TabR: Tabular Deep
        Learning Meets Nearest Neighbors", ICLR 2024. Defaults: the "TabR-S" default
        configuration of its appendix (d = 265, attention dropout 0.38920071545944357, FFN
        dropout 0.38852797479169876, AdamW learning rate 0.0003121273641315169, weight decay
        1.2260352006404615e-06, 96 neighbours, no encoder block, one predictor block).
    """

    def __init__(
        self,
        n_num_features,
        categorical_cardinalities=(),
        d_out=1,
        num_classes=None,
        num_neighbors=96,
        d_main=265,
        d_multiplier=2.0,
        encoder_n_blocks=0,
        predictor_n_blocks=1,
        mixer_normalization="auto",
        context_dropout=0.38920071545944357,
        dropout0=0.38852797479169876,
        dropout1=0.0,
        numeric_embedding=None,
        bins=None,
        embedding_dim=16,
        n_frequencies=48,
        frequency_init_scale=0.01,
        context_refresh="step",
        num_candidates=None,
        max_context_rows=None,
        refresh_rows=2048,
        context_rows=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_num_features, self.categorical_cardinalities = table_columns(
            "TabR", n_num_features, categorical_cardinalities
        )
        self.d_out = _checks.positive_int("d_out", d_out)
        self.num_classes = _checks.positive_int("num_classes", num_classes, allow_none=True)
        self.num_neighbors = _checks.positive_int("num_neighbors", num_neighbors)
        self.d_main = _checks.positive_int("d_main", d_main)
        self.d_multiplier = _checks.positive_float("d_multiplier", d_multiplier)
        for name, value in (("encoder_n_blocks", encoder_n_blocks),
                            ("predictor_n_blocks", predictor_n_blocks)):
            if isinstance(value, bool) or int(value) != value or value < 0:
                raise ValueError(
                    f"`{name}` must be a non-negative integer. Received: {name}={value!r}"
                )
        self.encoder_n_blocks = int(encoder_n_blocks)
        self.predictor_n_blocks = int(predictor_n_blocks)
        _checks.one_of("mixer_normalization", mixer_normalization, ("auto", True, False))
        self.mixer_normalization = mixer_normalization
        self.context_dropout = _checks.rate("context_dropout", context_dropout)
        self.dropout0 = _checks.rate("dropout0", dropout0)
        self.dropout1 = _checks.rate("dropout1", dropout1)
        (self.numeric_embedding, self.embedding_dim, self.n_frequencies,
         self.frequency_init_scale) = numeric_embedding_options(
            numeric_embedding, bins, self.n_num_features, embedding_dim, n_frequencies,
            frequency_init_scale,
        )
        self.context_refresh = _checks.one_of("context_refresh", context_refresh, _REFRESH_MODES)
        self.num_candidates = _checks.positive_int(
            "num_candidates", num_candidates, allow_none=True
        )
        self.max_context_rows = _checks.positive_int(
            "max_context_rows", max_context_rows, allow_none=True
        )
        self.refresh_rows = _checks.positive_int("refresh_rows", refresh_rows)
        self.context_rows = _checks.positive_int("context_rows", context_rows, allow_none=True)

        # === Layers ===
        d_block = max(1, int(self.d_main * self.d_multiplier))
        self.periodic, self.piecewise, self.bins, d_numeric = numeric_embedding_layer(
            self.numeric_embedding, bins, self.n_num_features, self.embedding_dim,
            self.n_frequencies, self.frequency_init_scale,
        )
        self._d_numeric = d_numeric
        self._d_in = d_numeric + sum(c + 1 for c in self.categorical_cardinalities)
        self.linear = keras.layers.Dense(
            self.d_main, use_bias=True, kernel_initializer=_linear_init(self._d_in),
            bias_initializer=_linear_init(self._d_in), name="linear",
        ) if d_numeric else None
        self.encoder_blocks = [
            _Block(self.d_main, d_block, self.dropout0, self.dropout1, prenorm=i > 0,
                   name=f"encoder_block_{i}")
            for i in range(self.encoder_n_blocks)
        ]
        use_norm = (
            self.encoder_n_blocks > 0 if mixer_normalization == "auto" else mixer_normalization
        )
        self.mixer_norm = (
            keras.layers.LayerNormalization(epsilon=1e-5, name="mixer_norm") if use_norm else None
        )
        self.key = keras.layers.Dense(
            self.d_main, kernel_initializer=_linear_init(self.d_main),
            bias_initializer=_linear_init(self.d_main), name="key",
        )
        self.retrieval = RetrievalAttention(
            num_neighbors=self.num_neighbors, num_classes=self.num_classes, hidden_dim=d_block,
            dropout=self.context_dropout, value_dropout=self.dropout0,
            num_candidates=self.num_candidates, name="retrieval",
        )
        self.predictor_blocks = [
            _Block(self.d_main, d_block, self.dropout0, self.dropout1, prenorm=True,
                   name=f"predictor_block_{i}")
            for i in range(self.predictor_n_blocks)
        ]
        self.head_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="head_norm")
        self.head = keras.layers.Dense(
            self.d_out, kernel_initializer=_linear_init(self.d_main),
            bias_initializer=_linear_init(self.d_main), name="head",
        )
        if self.context_rows is not None:
            self.build()

    # --- building ----------------------------------------------------------------------------
    def build(self, input_shape=None):
        if self.built:
            return
        if self.context_rows is None:
            raise ValueError(
                "TabR needs its context (the stored training rows) before it can run: call "
                "`model.set_context(inputs, labels)` first."
            )
        d = self.d_main
        if self.periodic is not None:
            self.periodic.build((None, self.n_num_features))
        if self.piecewise is not None:
            self.piecewise.build((None, self.n_num_features))
        if self.linear is not None:
            self.linear.build((None, self._d_numeric))
        if self.categorical_cardinalities:
            offsets = np.cumsum([0] + [c + 1 for c in self.categorical_cardinalities[:-1]])
            self._offsets = [int(o) for o in offsets]
            small = [j for j, c in enumerate(self.categorical_cardinalities)
                     if c + 1 <= _ONE_HOT_MAX_CATEGORIES]
            self._one_hot_columns = small
            self._gathered_columns = [
                j for j in range(len(self.categorical_cardinalities)) if j not in small
            ]
            self._one_hot_rows = np.concatenate(
                [np.arange(self._offsets[j], self._offsets[j] + self.categorical_cardinalities[j]
                           + 1) for j in small] or [np.zeros(0, "int64")]
            ).astype("int32")
            init = _linear_init(self._d_in)
            # One row per category: the paper's one-hot columns of its first linear layer.
            self.categorical_weight = self.add_weight(
                name="categorical_weight",
                shape=(sum(c + 1 for c in self.categorical_cardinalities), d),
                initializer=init,
            )
            if self.linear is None:
                self.categorical_bias = self.add_weight(
                    name="categorical_bias", shape=(d,), initializer=init
                )
        for block in self.encoder_blocks + self.predictor_blocks:
            block.build((None, d))
        if self.mixer_norm is not None:
            self.mixer_norm.build((None, d))
        self.key.build((None, d))
        label_shape = (None,)
        self.retrieval.build((None, d), (None, d), label_shape)
        self.head_norm.build((None, d))
        self.head.build((None, d))
        n = self.context_rows
        self.context_numeric = self.add_weight(
            name="context_numeric", shape=(n, self.n_num_features), initializer="zeros",
            trainable=False, dtype="float32",
        )
        self.context_categorical = self.add_weight(
            name="context_categorical", shape=(n, len(self.categorical_cardinalities)),
            initializer="zeros", trainable=False, dtype="int32",
        )
        self.context_labels = self.add_weight(
            name="context_labels", shape=(n,), initializer="zeros", trainable=False,
            dtype="float32" if self.num_classes is None else "int32",
        )
        self.context_keys = self.add_weight(
            name="context_keys", shape=(n, d), initializer="zeros", trainable=False,
            dtype="float32",
        )
        self.refresh_offset = self.add_weight(
            name="refresh_offset", shape=(), initializer="zeros", trainable=False,
            dtype="int32",
        )
        # Kept with the keys so that a search need not recompute them (see
        # RetrievalAttention's `context_squared_norms`). Created last: see load_own_variables.
        self.context_squared_norms = self.add_weight(
            name="context_squared_norms", shape=(n,), initializer="zeros", trainable=False,
            dtype="float32",
        )
        self.built = True

    # --- the context -------------------------------------------------------------------------
    context_sample = staticmethod(context_sample)

    def set_context(self, inputs, labels, seed=None):
        """Store the rows to retrieve from (normally the training rows) and their labels.

        With ``max_context_rows`` set and more rows given, a uniform random sample of
        ``max_context_rows`` of them (drawn with ``seed``) is stored, in their order.

        Args:
            inputs: dict like the call's (NumPy arrays; ``"row_index"`` is ignored).
            labels: ``(n_rows,)`` or ``(n_rows, 1)``: floats for regression (in the units
                the model is trained on, e.g. standardised), class indices ``0..n-1`` for
                classification.
            seed: seed of the sample (int or ``None``).

        Returns:
            int64 ``(context_rows,)``: the positions in ``inputs`` of the stored rows, in
            context order (so a training row's ``"row_index"`` is its position here, and -1
            for rows not stored).

        Raises:
            ValueError: if the arrays do not have the model's columns, lengths differ,
                labels are not finite or not valid class indices, or the model already holds
                a context of another size.
        """
        numeric, categorical, labels, kept = stored_context(self, inputs, labels, seed)
        self.build()
        self.context_numeric.assign(numeric)
        self.context_categorical.assign(categorical)
        self.context_labels.assign(labels)
        self.refresh_context_keys()
        return kept

    def refresh_context_keys(self, batch_size=8192):
        """Recompute the stored rows' keys and their squared norms with the current weights
        (inference mode).

        Args:
            batch_size: stored rows encoded at a time.
        """
        numeric = ops.convert_to_tensor(self.context_numeric)
        categorical = ops.convert_to_tensor(self.context_categorical)
        keys = []
        for start in range(0, self.context_rows, batch_size):
            stop = start + batch_size
            _, k = self._encode(numeric[start:stop], categorical[start:stop], training=False)
            keys.append(ops.convert_to_numpy(k))
        keys = np.concatenate(keys, axis=0).astype("float32")
        self.context_keys.assign(keys)
        self.context_squared_norms.assign(np.square(keys).sum(axis=-1))

    # --- the forward pass --------------------------------------------------------------------
    def _embed_numeric(self, numeric):
        """The first linear layer's numeric input, ``(batch_size, d_numeric)``."""
        numeric = ops.cast(numeric, self.compute_dtype)
        embedding = self.periodic or self.piecewise
        if embedding is not None:
            numeric = ops.reshape(embedding(numeric), (-1, self._d_numeric))
        return numeric

    def _encode(self, numeric, categorical, training=None):
        """``(x, key)`` of rows."""
        x = None
        if self.linear is not None:
            x = self.linear(self._embed_numeric(numeric))
        if self.categorical_cardinalities:
            codes = known_codes(categorical, self.categorical_cardinalities)
            cat = None
            if self._one_hot_columns:
                # A one-hot matmul, not a gather: XLA's CPU gather copies rows one by one and
                # took 8x longer for the context pass of each training step (34,500 rows).
                one_hot = ops.concatenate([
                    ops.one_hot(codes[:, j], self.categorical_cardinalities[j] + 1,
                                dtype=self.compute_dtype)
                    for j in self._one_hot_columns
                ], axis=1)
                table = self.categorical_weight
                if self._gathered_columns:  # the one-hot columns' rows only
                    table = ops.take(table, self._one_hot_rows, axis=0)
                cat = ops.matmul(one_hot, table)
            for j in self._gathered_columns:
                rows = ops.take(self.categorical_weight, codes[:, j] + self._offsets[j], axis=0)
                cat = rows if cat is None else cat + rows
            x = cat + self.categorical_bias if x is None else x + cat
        for block in self.encoder_blocks:
            x = block(x, training=training)
        k = self.key(self.mixer_norm(x) if self.mixer_norm is not None else x)
        return x, k

    def call(self, inputs, training=None):
        if not isinstance(inputs, dict):
            raise ValueError(
                "TabR expects a dict with 'numeric' and/or 'categorical' (and optionally "
                f"'row_index'). Received: {type(inputs).__name__}"
            )
        numeric = inputs.get("numeric")
        categorical = inputs.get("categorical")
        x, k = self._encode(numeric, categorical, training=training)
        if training and self.context_refresh == "step":
            mixed = self._retrieve_with_current_keys(k, inputs.get("row_index"), training)
        elif training and self.context_refresh == "rolling":
            mixed = self._retrieve_rolling(k, inputs.get("row_index"), training)
        else:
            mixed = self.retrieval(
                k, self.context_keys, self.context_labels, query_index=inputs.get("row_index"),
                training=training, context_squared_norms=self.context_squared_norms,
            )
        x = x + mixed
        for block in self.predictor_blocks:
            x = block(x, training=training)
        return self.head(ops.relu(self.head_norm(x)))

    def _retrieve_rolling(self, k, row_index, training):
        # Refresh the keys of the next `refresh_rows` stored rows (cycling through the
        # context), then search all stored keys: at most context_rows / refresh_rows steps old.
        n, r = self.context_rows, min(self.refresh_rows, self.context_rows)
        start = ops.minimum(ops.convert_to_tensor(self.refresh_offset), n - r)
        numeric = ops.slice(
            ops.convert_to_tensor(self.context_numeric), (start, 0), (r, self.n_num_features)
        )
        categorical = ops.slice(
            ops.convert_to_tensor(self.context_categorical), (start, 0),
            (r, len(self.categorical_cardinalities)),
        )
        _, fresh = self._encode(numeric, categorical, training=False)
        fresh = ops.cast(ops.stop_gradient(fresh), "float32")
        keys = ops.slice_update(ops.convert_to_tensor(self.context_keys), (start, 0), fresh)
        norms = ops.slice_update(
            ops.convert_to_tensor(self.context_squared_norms), (start,),
            ops.sum(fresh * fresh, axis=-1),
        )
        self.context_keys.assign(keys)
        self.context_squared_norms.assign(norms)
        following = start + r
        self.refresh_offset.assign(ops.where(following >= n, 0, following))
        neighbors, valid = self.retrieval.search(
            k, keys, row_index, context_squared_norms=norms
        )
        # The neighbours' keys again, with gradients (the paper's).
        flat = ops.reshape(neighbors, (-1,))
        _, neighbor_keys = self._encode(
            ops.take(self.context_numeric, flat, axis=0),
            ops.take(self.context_categorical, flat, axis=0), training=training,
        )
        neighbor_keys = ops.reshape(neighbor_keys, (-1, ops.shape(neighbors)[1], self.d_main))
        labels = ops.take(self.context_labels, neighbors, axis=0)
        return self.retrieval.attend(k, neighbor_keys, labels, valid, training=training)

    def _retrieve_with_current_keys(self, k, row_index, training):
        candidates = self.retrieval.sample_candidates(self.context_rows)
        if candidates is not None:
            # A bounded sample of the stored rows: encoding it with gradients costs less than
            # re-encoding the batch's neighbours, and gives the same gradient.
            _, candidate_keys = self._encode(
                ops.take(self.context_numeric, candidates, axis=0),
                ops.take(self.context_categorical, candidates, axis=0), training=training,
            )
            neighbors, valid = self.retrieval.search(
                k, candidate_keys, row_index, context_index=candidates
            )
            labels = ops.take(
                self.context_labels, ops.take(candidates, neighbors, axis=0), axis=0
            )
            projections = ops.take(self.retrieval.project(candidate_keys), neighbors, axis=0)
            return self.retrieval.attend(
                k, ops.take(candidate_keys, neighbors, axis=0), labels, valid, training=training,
                neighbor_projections=projections,
            )
        # The search needs every stored row's key under the current weights, but no gradient:
        # a forward pass over the context. Gradients reach the encoder only through the
        # neighbours' keys, so re-encoding just those rows gives the paper's gradient at a
        # fraction of the cost of back-propagating through all stored rows (as the paper's
        # "memory_efficient" mode does).
        _, context_keys = self._encode(
            self.context_numeric, self.context_categorical, training=training
        )
        neighbors, valid = self.retrieval.search(k, ops.stop_gradient(context_keys), row_index)
        flat = ops.reshape(neighbors, (-1,))
        labels = ops.take(self.context_labels, neighbors, axis=0)
        _, neighbor_keys = self._encode(
            ops.take(self.context_numeric, flat, axis=0),
            ops.take(self.context_categorical, flat, axis=0), training=training,
        )
        neighbor_keys = ops.reshape(neighbor_keys, (-1, ops.shape(neighbors)[1], self.d_main))
        return self.retrieval.attend(k, neighbor_keys, labels, valid, training=training)

    def fit(self, x=None, *args, callbacks=None, **kwargs):
        """``keras.Model.fit`` that also keeps the stored rows' keys current (see class doc).

        Warns when ``x`` is a dict without ``"row_index"``: training rows stored in the
        context would then retrieve themselves and read their own labels.
        """
        if isinstance(x, dict) and "row_index" not in x:
            warnings.warn(
                "TabR.fit got no 'row_index' in its inputs: rows that are also in the context "
                "will retrieve themselves and see their own label. Pass "
                "row_index=np.arange(n) when training on the context rows.",
                stacklevel=2,
            )
        callbacks = list(callbacks or []) + [_ContextKeyRefresh()]
        return super().fit(x, *args, callbacks=callbacks, **kwargs)

    # --- training defaults --------------------------------------------------------------------
    @classmethod
    def default_config(cls):
        """TabR-S defaults of the paper's appendix (see the class docstring)."""
        return dict(
            num_neighbors=96,
            d_main=265,
            d_multiplier=2.0,
            encoder_n_blocks=0,
            predictor_n_blocks=1,
            context_dropout=0.38920071545944357,
            dropout0=0.38852797479169876,
            dropout1=0.0,
        )

    @classmethod
    def default_optimizer_config(cls):
        """TabR-S's AdamW settings: learning rate 3.12e-4, weight decay 1.23e-6."""
        return dict(learning_rate=0.0003121273641315169, weight_decay=1.2260352006404615e-06)

    def make_optimizer(self, learning_rate=0.0003121273641315169,
                       weight_decay=1.2260352006404615e-06, **kwargs):
        """AdamW without weight decay on norms, biases, the label and numeric embeddings.

        The exclusions follow the paper's code (its ``zero_weight_decay_condition``).
        ``kwargs`` go to ``keras.optimizers.AdamW``: e.g. ``use_ema=True,
        ema_momentum=0.99`` for an exponential moving average of the weights (the
        estimators' choice for TabR), evaluated with ``keras.callbacks.SwapEMAWeights``.
        """
        excluded = list(self.retrieval.label_embedding.weights)
        if self.periodic is not None:
            excluded.extend(self.periodic.weights)
        return adamw_without_decay_on(self, excluded, learning_rate, weight_decay, **kwargs)

    def load_own_variables(self, store):
        """Keras's loading of the model's own weights, which also reads files saved before
        TabR kept its stored keys' squared norms: they lack that last entry, computed here
        from the loaded keys."""
        own = self._trainable_variables + self._non_trainable_variables
        if len(store.keys()) == len(own) - 1 and own[-1] is self.context_squared_norms:
            for i, variable in enumerate(own[:-1]):
                variable.assign(store[f"{i}"])
            position = next(i for i, v in enumerate(own) if v is self.context_keys)
            keys = np.asarray(store[f"{position}"], dtype="float32")
            self.context_squared_norms.assign(np.square(keys).sum(axis=-1))
            return
        super().load_own_variables(store)

    def stored_labels(self):
        """The stored rows' labels as ``set_context`` got them, in context order.

        Returns:
            NumPy ``(context_rows,)``: int32 class indices, or float32 values for regression.

        Raises:
            ValueError: if the model has no context.
        """
        self.build()
        return ops.convert_to_numpy(self.context_labels)

    def neighbors(self, inputs, batch_size=4096):
        """The stored rows each row retrieves, and their attention weights.

        The same search and weights as the prediction's (``RetrievalAttention.search`` over
        the stored keys, then ``softmax(-||q - c_i||^2)`` over the neighbours found).

        Args:
            inputs: dict like the call's (NumPy arrays; ``"row_index"`` is ignored, so a
                stored row finds itself).
            batch_size: rows searched at a time (a positive integer).

        Returns:
            ``(indices, weights)``: int64 and float32 NumPy arrays ``(n_rows, k)`` with
            ``k = min(num_neighbors, context_rows)``, nearest first; ``indices`` index the
            context given to ``set_context``; each row's weights sum to 1.

        Raises:
            ValueError: ``batch_size`` is not a positive integer, or the model has no
                context.
        """
        batch_size = _checks.positive_int("batch_size", batch_size)
        self.build()
        context = ops.convert_to_tensor(self.context_keys)
        norms = ops.convert_to_tensor(self.context_squared_norms)
        n_rows = len(next(iter(inputs.values())))
        indices, weights = [], []
        for start in range(0, n_rows, batch_size):
            batch = {k: v[start : start + batch_size] for k, v in inputs.items()}
            _, keys = self._encode(batch.get("numeric"), batch.get("categorical"), training=False)
            keys = ops.cast(keys, "float32")
            nearest, _ = self.retrieval.search(keys, context, context_squared_norms=norms)
            difference = keys[:, None, :] - ops.take(context, nearest, axis=0)
            shares = ops.softmax(-ops.sum(difference * difference, axis=-1), axis=1)
            indices.append(ops.convert_to_numpy(nearest).astype("int64"))
            weights.append(ops.convert_to_numpy(shares).astype("float32"))
        return np.concatenate(indices), np.concatenate(weights)

    def get_config(self):
        return dict(
            name=self.name,
            n_num_features=self.n_num_features,
            categorical_cardinalities=list(self.categorical_cardinalities),
            d_out=self.d_out,
            num_classes=self.num_classes,
            num_neighbors=self.num_neighbors,
            d_main=self.d_main,
            d_multiplier=self.d_multiplier,
            encoder_n_blocks=self.encoder_n_blocks,
            predictor_n_blocks=self.predictor_n_blocks,
            mixer_normalization=self.mixer_normalization,
            context_dropout=self.context_dropout,
            dropout0=self.dropout0,
            dropout1=self.dropout1,
            numeric_embedding=self.numeric_embedding,
            bins=self.bins,
            embedding_dim=self.embedding_dim,
            n_frequencies=self.n_frequencies,
            frequency_init_scale=self.frequency_init_scale,
            context_refresh=self.context_refresh,
            num_candidates=self.num_candidates,
            max_context_rows=self.max_context_rows,
            refresh_rows=self.refresh_rows,
            context_rows=self.context_rows,
        )

    @classmethod
    def from_config(cls, config):
        return cls(**config)
