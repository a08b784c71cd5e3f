"""ModernNCA: neighbourhood components analysis with a learned embedding of the rows."""

__all__ = ["ModernNCA"]

import math
import warnings

import keras
import numpy as np
from keras import ops

from tabattn.layers import _checks
from tabattn.models._inputs import (
    context_sample,
    known_codes,
    numeric_embedding_layer,
    numeric_embedding_options,
    stored_context,
    table_columns,
)
from tabattn.models._optim import adamw_without_decay_on

# Added to the squared distance before its square root, whose gradient is infinite at 0
# (two identical rows).
_DISTANCE_EPSILON = 1e-12
# Added to the class probabilities before their log, as the paper's code does.
_PROBABILITY_EPSILON = 1e-7


class _KeyRefresh(keras.callbacks.Callback):
    """Recompute the stored rows' keys before each validation (with the weights it
    evaluates) and at the end of training (after any callback that restored weights)."""

    def on_test_begin(self, logs=None):
        self.model.refresh_context_keys()

    def on_train_end(self, logs=None):
        self.model.refresh_context_keys()


@keras.saving.register_keras_serializable(package="tabattn")
class ModernNCA(keras.Model):
    """ModernNCA (Ye et al. 2025): a row's prediction is the labels of the stored rows,
    weighted by a softmax over their distances in a learned embedding.

    Each row is embedded by a linear layer (numeric features, optionally through a
    ``PeriodicEmbedding``, plus one-hot categorical features) into ``d_main`` dimensions,
    optionally followed by ``n_blocks`` MLP blocks (``BatchNorm -> Dense(d_block, relu) ->
    Dropout -> Dense(d_main)``, no residual, as in the paper's code) and a final
    BatchNorm. A row with embedding ``q`` is predicted from the stored rows ("the context",
    set with ``set_context``: the training rows) with embeddings ``c_i`` and labels ``y_i``
    as

        ``p_i = softmax_i(-||q - c_i|| / temperature)``,  ``y = sum_i p_i * y_i``

    (Euclidean, not squared, distance): for classification ``y_i`` is one-hot and the output
    is ``log(y + 1e-7)`` (logits whose softmax is ``y``; with ``d_out=1``, binary, the logit
    ``log(y_1 + 1e-7) - log(y_0 + 1e-7)``); for regression the output is ``y`` itself.
    There is no other parameter than the embedding: NCA (Goldberger et al. 2004) with a deep
    embedding.

    **Training** searches a random subset of the stored rows at each step ("stochastic
    neighbourhood sampling", the paper's §4.2): ``sample_rate`` of them, at most
    ``max_candidates``, drawn without replacement and shared by the batch, encoded with
    gradients. A training row never reads its own label: pass ``"row_index"`` (each row's
    position in the context, -1 for none) in the input dict (the tabattn estimators do).
    **Prediction** reads every stored row (the softmax is accumulated over chunks of
    ``search_chunk_size`` rows, so memory does not grow with the context) from keys computed
    once per validation and at the end of ``fit``; call ``refresh_context_keys()`` after
    changing the weights outside ``fit``. A row's prediction depends only on that row and the
    context, never on the rest of its batch.

    Departure from the paper's code: the candidates of a training step are stored rows only;
    the paper's also include the other rows of the batch.

    Args:
        n_num_features: number of numeric input columns (>= 0).
        categorical_cardinalities: known categories per categorical column (code 0 is
            reserved for missing/unseen, as in ``FeatureTokenizer``).
        d_out: number of outputs: 1 for regression and binary classification, else the
            number of classes.
        num_classes: ``None`` for regression labels (floats), else the number of classes of
            the integer labels given to ``set_context`` (2 for binary classification).
        d_main: size of the embedding (the paper's ``dim``; default 128).
        n_blocks: MLP blocks after the linear layer (default 0).
        d_block: hidden width of the blocks (default 512).
        dropout: dropout inside the blocks, in [0, 1) (default 0.1).
        temperature: divides the distances before the softmax, > 0 (default 1).
        sample_rate: share of the stored rows searched at each training step, in (0, 1]
            (default 0.5).
        max_candidates: most stored rows searched at a training step (``None``, default: no
            bound beyond ``sample_rate``); bounds a step's cost on large tables.
        numeric_embedding: ``None`` (numeric values enter as they are), ``"periodic"``
            (``PeriodicEmbedding(lite=True)``, the paper's default "PLR(lite)") or
            ``"piecewise"`` (``PiecewiseLinearEncoding(bins)``, flattened).
        bins: bin edges per numeric feature (``compute_bins``), with
            ``numeric_embedding="piecewise"`` only.
        embedding_dim: output size per numeric feature of the periodic embedding.
        n_frequencies: frequencies per numeric feature of the periodic embedding.
        frequency_init_scale: initialisation scale sigma of the frequencies.
        max_context_rows: most rows ``set_context`` stores (``None``, default: all).
        search_chunk_size: stored rows compared with the queries at a time in prediction
            (default 16384).
        seed: seed of the candidates' draws (an int, or ``None`` for Keras's global seed).
        context_rows: number of stored rows; set by ``set_context`` (a saved model records
            it), rarely given by hand.
        **kwargs: passed to ``keras.Model`` (e.g. ``name``).

    Call arguments:
        inputs: dict with ``"numeric"`` (float32 ``(batch_size, n_num_features)``, when
            there are numeric features), ``"categorical"`` (int32 codes ``(batch_size,
            n_cat)``, when there are categorical features) and optionally ``"row_index"``
            (int32 ``(batch_size,)``: each row's index in the context, -1 for none).
        training: whether dropout, BatchNorm's batch statistics and candidate sampling
            apply.

    Returns:
        ``(batch_size, d_out)``: logits (classification) or predictions (regression), in
        the units of the labels given to ``set_context``.

    Raises:
        ValueError: for non-positive sizes, rates outside their range, unknown options, a
            seed that is not an integer, no input features, a ``d_out`` that does not fit
            ``num_classes``, inputs that are not a dict, calling the model before
            ``set_context``, or a context whose size, columns or labels do not fit the model.

    Example:

    >>> import numpy as np
    >>> model = ModernNCA(n_num_features=3, categorical_cardinalities=(4,), num_classes=2,
    ...                   d_main=16)
    >>> rows = {"numeric": np.random.rand(50, 3).astype("float32"),
    ...         "categorical": np.random.randint(0, 5, (50, 1)).astype("int32")}
    >>> stored = model.set_context(rows, np.random.randint(0, 2, 50))  # which rows: all 50
    >>> tuple(model({k: v[:5] for k, v in rows.items()}).shape)
    (5, 1)

    Reference:
        Ye, Yin, Zhan & Chao, "Revisiting Nearest Neighbor for Tabular Data: A Deep Tabular
        Baseline Two Decades Later", ICLR 2025 (§4: the architecture, Euclidean distance and
        stochastic neighbourhood sampling). Defaults: the default configuration of the
        authors' TALENT toolbox (d 128, no block, dropout 0.1, d_block 512, temperature 1,
        sample rate 0.5, PLR(lite) with 77 frequencies of scale 0.0443 and 34 outputs,
        AdamW learning rate 0.01, weight decay 2e-4).
    """

    def __init__(
        self,
        n_num_features,
        categorical_cardinalities=(),
        d_out=1,
        num_classes=None,
        d_main=128,
        n_blocks=0,
        d_block=512,
        dropout=0.1,
        temperature=1.0,
        sample_rate=0.5,
        max_candidates=None,
        numeric_embedding="periodic",
        bins=None,
        embedding_dim=34,
        n_frequencies=77,
        frequency_init_scale=0.04431360576139521,
        max_context_rows=None,
        search_chunk_size=16384,
        seed=None,
        context_rows=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_num_features, self.categorical_cardinalities = table_columns(
            "ModernNCA", n_num_features, categorical_cardinalities
        )
        self.d_out = _checks.positive_int("d_out", d_out)
        self.num_classes = _checks.positive_int("num_classes", num_classes, allow_none=True)
        expected = 1 if self.num_classes in (None, 2) else self.num_classes
        if self.num_classes is not None and self.num_classes < 2:
            raise ValueError(f"`num_classes` must be at least 2. Received: {num_classes!r}")
        if self.d_out != expected:
            raise ValueError(
                f"`d_out` must be {expected} for num_classes={self.num_classes!r} (1 for "
                "regression and binary classification, else the number of classes). "
                f"Received: d_out={d_out!r}"
            )
        self.d_main = _checks.positive_int("d_main", d_main)
        if isinstance(n_blocks, bool) or int(n_blocks) != n_blocks or n_blocks < 0:
            raise ValueError(
                f"`n_blocks` must be a non-negative integer. Received: n_blocks={n_blocks!r}"
            )
        self.n_blocks = int(n_blocks)
        self.d_block = _checks.positive_int("d_block", d_block)
        self.dropout = _checks.rate("dropout", dropout)
        self.temperature = _checks.positive_float("temperature", temperature)
        self.sample_rate = _checks.positive_float("sample_rate", sample_rate)
        if self.sample_rate > 1:
            raise ValueError(
                f"`sample_rate` must be in (0, 1]. Received: sample_rate={sample_rate!r}"
            )
        self.max_candidates = _checks.positive_int(
            "max_candidates", max_candidates, allow_none=True
        )
        (self.numeric_embedding, self.embedding_dim, self.n_frequencies,
         self.frequency_init_scale) = numeric_embedding_options(
            numeric_embedding, bins, self.n_num_features, embedding_dim, n_frequencies,
            frequency_init_scale,
        )
        self.max_context_rows = _checks.positive_int(
            "max_context_rows", max_context_rows, allow_none=True
        )
        self.search_chunk_size = _checks.positive_int("search_chunk_size", search_chunk_size)
        if seed is not None and (isinstance(seed, bool) or int(seed) != seed):
            raise ValueError(f"`seed` must be an integer or None. Received: seed={seed!r}")
        self.seed = None if seed is None else int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.context_rows = _checks.positive_int("context_rows", context_rows, allow_none=True)

        self.periodic, self.piecewise, self.bins, d_numeric = numeric_embedding_layer(
            self.numeric_embedding, bins, self.n_num_features, self.embedding_dim,
            self.n_frequencies, self.frequency_init_scale,
        )
        self._d_numeric = d_numeric
        self._d_in = d_numeric + sum(c + 1 for c in self.categorical_cardinalities)
        # PyTorch's nn.Linear initialisation, as in the paper's code.
        limit = 1.0 / math.sqrt(self._d_in)
        self.linear = keras.layers.Dense(
            self.d_main, kernel_initializer=keras.initializers.RandomUniform(-limit, limit),
            bias_initializer=keras.initializers.RandomUniform(-limit, limit), name="linear",
        )
        self.blocks = []
        for i in range(self.n_blocks):
            self.blocks.append([
                keras.layers.BatchNormalization(
                    momentum=0.9, epsilon=1e-5, name=f"block_{i}_norm"
                ),
                keras.layers.Dense(self.d_block, activation="relu", name=f"block_{i}_hidden"),
                keras.layers.Dropout(self.dropout),
                keras.layers.Dense(self.d_main, name=f"block_{i}_output"),
            ])
        self.output_norm = keras.layers.BatchNormalization(
            momentum=0.9, epsilon=1e-5, name="output_norm"
        ) if self.n_blocks else None
        if self.context_rows is not None:
            self.build()

    # --- building ----------------------------------------------------------------------------
    def build(self, input_shape=None):
        if self.built:
            return
        if self.context_rows is None:
            raise ValueError(
                "ModernNCA needs its context (the stored training rows) before it can run: "
                "call `model.set_context(inputs, labels)` first."
            )
        if self.periodic is not None:
            self.periodic.build((None, self.n_num_features))
        if self.piecewise is not None:
            self.piecewise.build((None, self.n_num_features))
        self.linear.build((None, self._d_in))
        for norm, hidden, _, output in self.blocks:
            norm.build((None, self.d_main))
            hidden.build((None, self.d_main))
            output.build((None, self.d_block))
        if self.output_norm is not None:
            self.output_norm.build((None, self.d_main))
        n = self.context_rows
        self.context_numeric = self.add_weight(
            name="context_numeric", shape=(n, self.n_num_features), initializer="zeros",
            trainable=False, dtype="float32",
        )
        self.context_categorical = self.add_weight(
            name="context_categorical", shape=(n, len(self.categorical_cardinalities)),
            initializer="zeros", trainable=False, dtype="int32",
        )
        # Regression labels as a column; classes one-hot: what the softmax weights average.
        self.context_targets = self.add_weight(
            name="context_targets", shape=(n, self.num_classes or 1), initializer="zeros",
            trainable=False, dtype="float32",
        )
        self.context_keys = self.add_weight(
            name="context_keys", shape=(n, self.d_main), initializer="zeros",
            trainable=False, dtype="float32",
        )
        self.built = True

    # --- the context -------------------------------------------------------------------------
    context_sample = staticmethod(context_sample)

    def set_context(self, inputs, labels, seed=None):
        """Store the rows to predict from (normally the training rows) and their labels.

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
            context order (a training row's ``"row_index"`` is its position here, -1 for
            rows not stored).

        Raises:
            ValueError: if the arrays do not have the model's columns, lengths differ,
                labels are not finite or not valid class indices, or the model already holds
                a context of another size.
        """
        numeric, categorical, labels, kept = stored_context(self, inputs, labels, seed)
        self.build()
        self.context_numeric.assign(numeric)
        self.context_categorical.assign(categorical)
        if self.num_classes is None:
            targets = labels[:, None]
        else:
            targets = np.eye(self.num_classes, dtype="float32")[labels]
        self.context_targets.assign(targets)
        self.refresh_context_keys()
        return kept

    def refresh_context_keys(self, batch_size=8192):
        """Recompute the stored rows' embeddings (``context_keys``, float32 ``(context_rows,
        d_main)``) with the current weights, in inference mode, ``batch_size`` rows at a
        time."""
        numeric = ops.convert_to_tensor(self.context_numeric)
        categorical = ops.convert_to_tensor(self.context_categorical)
        keys = [
            ops.convert_to_numpy(self._encode(
                numeric[start : start + batch_size], categorical[start : start + batch_size],
                training=False,
            ))
            for start in range(0, self.context_rows, batch_size)
        ]
        self.context_keys.assign(np.concatenate(keys, axis=0))

    # --- the forward pass --------------------------------------------------------------------
    def _encode(self, numeric, categorical, training=None):
        """The rows' embeddings, ``(batch_size, d_main)``."""
        parts = []
        if self.n_num_features:
            x = ops.cast(numeric, self.compute_dtype)
            embedding = self.periodic or self.piecewise
            if embedding is not None:
                x = ops.reshape(embedding(x), (-1, self._d_numeric))
            parts.append(x)
        if self.categorical_cardinalities:
            codes = known_codes(categorical, self.categorical_cardinalities)
            parts.extend(
                ops.one_hot(codes[:, j], c + 1, dtype=self.compute_dtype)
                for j, c in enumerate(self.categorical_cardinalities)
            )
        x = self.linear(parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=1))
        for norm, hidden, dropout, output in self.blocks:
            x = output(dropout(hidden(norm(x, training=training)), training=training))
        if self.output_norm is not None:
            x = self.output_norm(x, training=training)
        return x

    def _logits(self, average):
        """The model's output from the softmax-weighted labels ``average``."""
        if self.num_classes is None:
            return average
        log_p = ops.log(average + _PROBABILITY_EPSILON)
        if self.d_out == 1:
            return log_p[:, 1:2] - log_p[:, 0:1]
        return log_p

    def _scores(self, queries, keys):
        """``-||q - c|| / temperature``, float32 ``(n_queries, n_keys)``."""
        queries, keys = ops.cast(queries, "float32"), ops.cast(keys, "float32")
        squared = (
            ops.sum(queries**2, axis=1, keepdims=True)
            - 2.0 * ops.matmul(queries, ops.transpose(keys))
            + ops.sum(keys**2, axis=1)[None, :]
        )
        return -ops.sqrt(ops.maximum(squared, _DISTANCE_EPSILON)) / self.temperature

    def _excluded(self, scores, row_index, positions):
        """``scores`` with each query's own stored row (``row_index``) at ``-inf``."""
        if row_index is None:
            return scores
        own = ops.cast(row_index, "int32")[:, None] == ops.cast(positions, "int32")[None, :]
        return ops.where(own, -np.inf, scores)

    def call(self, inputs, training=None):
        if not isinstance(inputs, dict):
            raise ValueError(
                "ModernNCA expects a dict with 'numeric' and/or 'categorical' (and optionally "
                f"'row_index'). Received: {type(inputs).__name__}"
            )
        queries = self._encode(inputs.get("numeric"), inputs.get("categorical"), training)
        row_index = inputs.get("row_index")
        n = self.context_rows
        if training:
            count = max(1, int(n * self.sample_rate))
            if self.max_candidates is not None:
                count = min(count, self.max_candidates)
            if count < n:
                # A uniform subset without replacement: the positions of the largest of n
                # uniform draws.
                noise = keras.random.uniform((n,), seed=self.seed_generator)
                _, candidates = ops.top_k(noise, k=count)
                candidates = ops.cast(candidates, "int32")
            else:
                candidates = ops.arange(n, dtype="int32")
            keys = self._encode(
                ops.take(self.context_numeric, candidates, axis=0),
                ops.take(self.context_categorical, candidates, axis=0), training,
            )
            scores = self._excluded(self._scores(queries, keys), row_index, candidates)
            targets = ops.take(self.context_targets, candidates, axis=0)
            chunks = [(scores, targets)]
        else:
            # Every stored row, a chunk at a time, so that memory does not grow with them.
            keys = ops.convert_to_tensor(self.context_keys)
            targets = ops.convert_to_tensor(self.context_targets)
            chunks = (
                (self._excluded(self._scores(queries, keys[start : start + size]), row_index,
                                ops.arange(start, min(start + size, n), dtype="int32")),
                 targets[start : start + size])
                for size in (self.search_chunk_size,) for start in range(0, n, size)
            )
        # The online softmax: a running maximum of the scores, the sum of exp(score -
        # maximum) and the sum of the labels weighted by it. A query whose rows are all
        # excluded (a context of one row, its own) keeps -inf and gets zero weights.
        maximum = total = weighted = None
        for scores, chunk_targets in chunks:
            chunk_max = ops.max(scores, axis=1, keepdims=True)
            new_max = chunk_max if maximum is None else ops.maximum(maximum, chunk_max)
            # The result does not depend on the maximum: no gradient through it.
            safe_max = ops.stop_gradient(ops.where(ops.isfinite(new_max), new_max, 0.0))
            exp = ops.exp(scores - safe_max)
            if maximum is None:
                total = ops.sum(exp, axis=1, keepdims=True)
                weighted = ops.matmul(exp, chunk_targets)
            else:
                previous = ops.stop_gradient(ops.where(ops.isfinite(maximum), maximum, 0.0))
                rescale = ops.where(ops.isfinite(maximum), ops.exp(previous - safe_max), 0.0)
                total = total * rescale + ops.sum(exp, axis=1, keepdims=True)
                weighted = weighted * rescale + ops.matmul(exp, chunk_targets)
            maximum = new_max
        return self._logits(weighted / ops.maximum(total, 1e-30))

    def stored_labels(self):
        """The stored rows' labels as ``set_context`` got them, in context order (the
        model keeps classes one-hot and values as a column).

        Returns:
            NumPy ``(context_rows,)``: int32 class indices, or float32 values for regression.

        Raises:
            ValueError: if the model has no context.
        """
        self.build()
        targets = ops.convert_to_numpy(self.context_targets)
        return targets.argmax(axis=1).astype("int32") if self.num_classes else targets[:, 0]

    def neighbors(self, inputs, num_neighbors=8, batch_size=1024):
        """The stored rows that weigh most in each row's prediction, and their weights.

        A row's prediction averages the labels of every stored row; this returns the
        ``num_neighbors`` (at most ``context_rows``) with the largest softmax weights, from
        the keys of the last ``refresh_context_keys``, as the prediction uses them.

        Args:
            inputs: dict like the call's (NumPy arrays; ``"row_index"`` is ignored, so a
                stored row finds itself).
            num_neighbors: how many stored rows to return per row (a positive integer).
            batch_size: rows compared with the whole context at a time.

        Returns:
            ``(indices, weights)``: int64 and float32 NumPy arrays ``(n_rows, k)``, largest
            weight (nearest) first; ``indices`` index the context given to ``set_context``;
            ``weights`` are shares of the whole softmax, so a row's sum is at most 1 (1 when
            ``k`` is ``context_rows``).

        Raises:
            ValueError: ``num_neighbors`` or ``batch_size`` is not a positive integer, or
                the model has no context.
        """
        num_neighbors = _checks.positive_int("num_neighbors", num_neighbors)
        batch_size = _checks.positive_int("batch_size", batch_size)
        self.build()
        context = ops.convert_to_tensor(self.context_keys)
        count = min(num_neighbors, self.context_rows)
        n_rows = len(next(iter(inputs.values())))
        indices, weights = [], []
        for start in range(0, n_rows, batch_size):
            batch = {k: v[start : start + batch_size] for k, v in inputs.items()}
            queries = self._encode(batch.get("numeric"), batch.get("categorical"), training=False)
            scores = self._scores(queries, context)
            shares = ops.convert_to_numpy(ops.softmax(scores, axis=1))
            nearest = np.argsort(-ops.convert_to_numpy(scores), axis=1, kind="stable")[:, :count]
            indices.append(nearest)
            weights.append(np.take_along_axis(shares, nearest, axis=1))
        return np.concatenate(indices), np.concatenate(weights)

    def fit(self, x=None, *args, callbacks=None, **kwargs):
        """``keras.Model.fit`` that also keeps the stored rows' keys current (see class doc).

        Warns when ``x`` is a dict without ``"row_index"``: training rows stored in the
        context would then read their own labels.
        """
        if isinstance(x, dict) and "row_index" not in x:
            warnings.warn(
                "ModernNCA.fit got no 'row_index' in its inputs: rows that are also in the "
                "context will read their own label. Pass row_index=np.arange(n) when "
                "training on the context rows.",
                stacklevel=2,
            )
        callbacks = list(callbacks or []) + [_KeyRefresh()]
        return super().fit(x, *args, callbacks=callbacks, **kwargs)

    # --- training defaults --------------------------------------------------------------------
    @classmethod
    def default_config(cls):
        """The TALENT toolbox's default ModernNCA (see the class docstring)."""
        return dict(
            d_main=128, n_blocks=0, d_block=512, dropout=0.1, temperature=1.0,
            sample_rate=0.5, numeric_embedding="periodic", embedding_dim=34,
            n_frequencies=77, frequency_init_scale=0.04431360576139521,
        )

    @classmethod
    def default_optimizer_config(cls):
        """The TALENT toolbox's AdamW settings: learning rate 0.01, weight decay 2e-4."""
        return dict(learning_rate=0.01, weight_decay=2e-4)

    def make_optimizer(self, learning_rate=0.01, weight_decay=2e-4, **kwargs):
        """AdamW without weight decay on biases, BatchNorm and the numeric embedding.

        ``kwargs`` go to ``keras.optimizers.AdamW`` (e.g. ``use_ema=True``).
        """
        excluded = []
        if self.periodic is not None:
            excluded.extend(self.periodic.weights)
        if self.output_norm is not None:
            excluded.extend(self.output_norm.weights)
        for norm, *_ in self.blocks:
            excluded.extend(norm.weights)
        return adamw_without_decay_on(self, excluded, learning_rate, weight_decay, **kwargs)

    def get_config(self):
        return dict(
            name=self.name,
            n_num_features=self.n_num_features,
            categorical_cardinalities=list(self.categorical_cardinalities),
            d_out=self.d_out,
            num_classes=self.num_classes,
            d_main=self.d_main,
            n_blocks=self.n_blocks,
            d_block=self.d_block,
            dropout=self.dropout,
            temperature=self.temperature,
            sample_rate=self.sample_rate,
            max_candidates=self.max_candidates,
            numeric_embedding=self.numeric_embedding,
            bins=self.bins,
            embedding_dim=self.embedding_dim,
            n_frequencies=self.n_frequencies,
            frequency_init_scale=self.frequency_init_scale,
            max_context_rows=self.max_context_rows,
            search_chunk_size=self.search_chunk_size,
            seed=self.seed,
            context_rows=self.context_rows,
        )

    @classmethod
    def from_config(cls, config):
        return cls(**config)
