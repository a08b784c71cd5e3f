"""TabM: an MLP that trains and predicts as an ensemble of ``k`` MLPs sharing most weights."""

__all__ = ["TabM"]

import math

import keras
import numpy as np
from keras import ops

from tabattn.layers import _checks
from tabattn.layers.embeddings import PeriodicEmbedding, PiecewiseLinearEmbedding
from tabattn.layers.ensemble import (
    BatchEnsembleDense,
    EnsembleDense,
    EnsembleView,
    scaling_initializer,
)
from tabattn.models._inputs import known_codes, numeric_embedding_options, table_columns
from tabattn.models._optim import adamw_without_decay_on

ARCH_TYPES = ("tabm", "tabm-mini")
CATEGORICAL_EMBEDDINGS = ("one-hot", "embedding")


def _rsqrt_uniform(fan_in):
    limit = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-limit, limit)


@keras.saving.register_keras_serializable(package="tabattn")
class TabM(keras.Model):
    """TabM (Gorishniy et al. 2025): ``k`` MLPs trained at once as one BatchEnsemble model.

    A row's numeric features (through a piecewise-linear or periodic embedding, or as they
    are) and categorical features (one-hot, or a learned embedding per column) are
    concatenated into one vector of size ``d_in``, repeated for each of the ``k`` members
    (``EnsembleView``) and passed through ``n_blocks`` blocks ``Dropout(ReLU(dense))`` of
    width ``d_block``, then through each member's own linear head (``EnsembleDense``):
    ``k`` predictions per row.

    - ``arch_type="tabm"``: every dense layer is a ``BatchEnsembleDense`` (shared kernel,
      per-member scalings ``r``, ``s`` and biases). Only the first layer's ``r`` starts at
      random (one value per member and input feature: N(0, 1) with a numeric embedding,
      random signs without); every other scaling starts at 1.
    - ``arch_type="tabm-mini"``: the members share every dense layer; they differ only by a
      random per-member scaling of the input vector (initialised as above) and their heads.

    **Training and prediction.** In training (``training=True``, as ``fit`` calls it) the
    model returns the ``k`` members' outputs ``(batch_size, k, d_out)`` and the loss is the
    mean of the members' losses (each member sees every row of the batch). In inference it
    returns the ensemble's prediction ``(batch_size, d_out)``: for regression the mean of the
    members' outputs; for classification the logits of the members' mean probability
    (``logit(mean_i sigmoid(z_i))`` for one output, ``log(mean_i softmax(z_i))`` for several),
    so the usual ``from_logits`` losses and metrics score the ensemble, and validation
    (hence early stopping) follows the ensemble, not its members. ``member_outputs``
    returns the members' predictions. A row's prediction never depends on the other rows
    of its batch.

    Args:
        n_num_features: number of numeric input columns (>= 0).
        categorical_cardinalities: known categories per categorical column; code 0 is
            reserved for missing/unseen (as in ``FeatureTokenizer``), and codes outside
            ``0..cardinality`` are read as 0.
        d_out: outputs per member (1 for regression and binary classification, the number
            of classes for multiclass classification).
        num_classes: ``None`` for regression, else the number of classes (then ``d_out`` is
            1 for two classes, or ``num_classes``).
        k: number of ensemble members (paper default 32).
        arch_type: ``"tabm"`` (default) or ``"tabm-mini"``; see above.
        n_blocks: number of hidden blocks. Default ``None``: 2 with a numeric embedding, else
            3 (the paper's defaults).
        d_block: width of the hidden blocks (paper default 512).
        dropout: dropout rate after each block's ReLU (paper default 0.1).
        numeric_embedding: ``"piecewise"`` (default: ``PiecewiseLinearEmbedding``, version B,
            on ``bins`` computed from the training rows, as TabM† in the paper),
            ``"periodic"`` (``PeriodicEmbedding``, PLR) or ``None`` (values as they are).
        bins: bin edges per numeric feature (``compute_bins`` on the training rows); needed
            by ``numeric_embedding="piecewise"`` when there are numeric features, and only
            then.
        embedding_dim: size of each numeric feature's embedding (paper: 16), and of each
            categorical column's with ``categorical_embedding="embedding"``.
        n_frequencies: frequencies per feature of the periodic embedding.
        frequency_init_scale: initial frequency scale of the periodic embedding.
        categorical_embedding: ``"one-hot"`` (default, as the paper) or ``"embedding"`` (a
            learned ``embedding_dim`` vector per category: fewer inputs for columns with
            many categories).
        **kwargs: passed to ``keras.Model`` (e.g. ``name``).

    Call arguments:
        inputs: dict with ``"numeric"`` (float ``(batch_size, n_num_features)``, when there
            are numeric features) and ``"categorical"`` (int ``(batch_size, n_cat)``, when
            there are categorical features); other keys are ignored.
        training: whether dropout is applied, and whether to return the members' outputs.

    Returns:
        ``(batch_size, k, d_out)`` in training, ``(batch_size, d_out)`` in inference (see
        above), float32.

    Raises:
        ValueError: for non-positive sizes, a dropout rate outside [0, 1), unknown options,
            no input features, ``bins`` missing or given without need, ``d_out`` that does
            not fit ``num_classes``, or inputs that are not such a dict.

    Example:

    >>> import numpy as np
    >>> from tabattn.layers import compute_bins
    >>> x = {"numeric": np.random.rand(64, 3).astype("float32"),
    ...      "categorical": np.random.randint(0, 4, (64, 1)).astype("int32")}
    >>> model = TabM(3, (3,), num_classes=2, k=4, d_block=16,
    ...              bins=compute_bins(x["numeric"], n_bins=8))
    >>> tuple(model(x).shape), tuple(model(x, training=True).shape)
    ((64, 1), (64, 4, 1))

    Reference:
        Gorishniy, Kotelnikov & Babenko, "TabM: Advancing Tabular Deep Learning with
        Parameter-Efficient Ensembling", ICLR 2025: §3.3 (TabM, TabM-mini, initialisation),
        §3.4 (piecewise-linear embeddings, TabM†), §4 (training: mean of the members'
        losses; prediction: mean of their probabilities). Defaults as ``tabm.TabM.make``
        (package ``tabm`` 0.0.3): ``k=32``, ``d_block=512``, ``dropout=0.1``, 2 blocks with
        embeddings and 3 without; AdamW with learning rate 2e-3 and weight decay 3e-4 (the
        repository's suggested starting point).
    """

    def __init__(
        self,
        n_num_features,
        categorical_cardinalities=(),
        d_out=1,
        num_classes=None,
        k=32,
        arch_type="tabm",
        n_blocks=None,
        d_block=512,
        dropout=0.1,
        numeric_embedding="piecewise",
        bins=None,
        embedding_dim=16,
        n_frequencies=48,
        frequency_init_scale=0.01,
        categorical_embedding="one-hot",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_num_features, self.categorical_cardinalities = table_columns(
            "TabM", n_num_features, categorical_cardinalities
        )
        self.d_out = _checks.positive_int("d_out", d_out)
        self.num_classes = _checks.positive_int("num_classes", num_classes, allow_none=True)
        if self.num_classes is not None and (
            self.num_classes < 2 or self.d_out not in ({1, 2} if self.num_classes == 2
                                                       else {self.num_classes})
        ):
            raise ValueError(
                "For classification `d_out` must be 1 (or 2) with num_classes=2, and equal "
                f"to num_classes otherwise. Received: num_classes={num_classes!r}, "
                f"d_out={d_out!r}"
            )
        self.k = _checks.positive_int("k", k)
        self.arch_type = _checks.one_of("arch_type", arch_type, ARCH_TYPES)
        (self.numeric_embedding, self.embedding_dim, self.n_frequencies,
         self.frequency_init_scale) = numeric_embedding_options(
            numeric_embedding, bins, self.n_num_features, embedding_dim, n_frequencies,
            frequency_init_scale,
        )
        embedded = self.numeric_embedding is not None and self.n_num_features > 0
        self.n_blocks = (2 if embedded else 3) if n_blocks is None else _checks.positive_int(
            "n_blocks", n_blocks
        )
        self.d_block = _checks.positive_int("d_block", d_block)
        self.dropout = _checks.rate("dropout", dropout)
        self.categorical_embedding = _checks.one_of(
            "categorical_embedding", categorical_embedding, CATEGORICAL_EMBEDDINGS
        )

        # === Layers ===
        self.bins = None
        self.numeric_layer = None
        chunks = []  # input size of each feature: one random start scaling per feature
        if self.numeric_embedding == "piecewise" and self.n_num_features:
            self.numeric_layer = PiecewiseLinearEmbedding(
                bins, self.embedding_dim, activation=False, name="numeric_embedding"
            )
            self.bins = [list(edges) for edges in self.numeric_layer.bins]
            if len(self.bins) != self.n_num_features:
                raise ValueError(
                    f"`bins` must hold one array of edges per numeric feature "
                    f"({self.n_num_features}). Received {len(self.bins)}"
                )
        elif self.numeric_embedding == "periodic" and self.n_num_features:
            self.numeric_layer = PeriodicEmbedding(
                self.embedding_dim, self.n_frequencies, self.frequency_init_scale,
                name="numeric_embedding",
            )
        chunks += [self.embedding_dim if embedded else 1] * self.n_num_features
        if self.categorical_embedding == "one-hot":
            chunks += [c + 1 for c in self.categorical_cardinalities]
        else:
            chunks += [self.embedding_dim] * len(self.categorical_cardinalities)
        self._chunks = chunks
        self._d_in = sum(chunks)
        start = "normal" if embedded else "random-signs"
        self.ensemble_view = EnsembleView(self.k, name="ensemble_view")
        self.blocks = []
        for i in range(self.n_blocks):
            if self.arch_type == "tabm":
                dense = BatchEnsembleDense(
                    self.d_block, self.k, activation="relu",
                    r_initializer=start if i == 0 else "ones",
                    r_chunks=chunks if i == 0 else None, name=f"block_{i}",
                )
            else:
                fan_in = self._d_in if i == 0 else self.d_block
                dense = keras.layers.Dense(
                    self.d_block, activation="relu", kernel_initializer=_rsqrt_uniform(fan_in),
                    bias_initializer=_rsqrt_uniform(fan_in), name=f"block_{i}",
                )
            self.blocks.append(dense)
        self._start_scaling = start
        self.block_dropout = keras.layers.Dropout(self.dropout)
        self.head = EnsembleDense(self.d_out, self.k, name="head")
        self.build()

    # --- building ----------------------------------------------------------------------------
    def build(self, input_shape=None):
        if self.built:
            return
        if self.numeric_layer is not None:
            self.numeric_layer.build((None, self.n_num_features))
        if self.categorical_cardinalities:
            sizes = [c + 1 for c in self.categorical_cardinalities]
            self._offsets = np.cumsum([0] + sizes[:-1]).astype("int32")
            if self.categorical_embedding == "embedding":
                self.categorical_table = self.add_weight(
                    name="categorical_table", shape=(sum(sizes), self.embedding_dim),
                    initializer=_rsqrt_uniform(self.embedding_dim),
                )
        if self.arch_type == "tabm-mini":
            # TabM-mini's only per-member weights before the heads: a scaling of the input.
            self.mini_r = self.add_weight(
                name="mini_r", shape=(self.k, self._d_in),
                initializer=scaling_initializer(self._start_scaling, self._chunks),
            )
        self.ensemble_view.build((None, self._d_in))
        d = self._d_in
        for dense in self.blocks:
            dense.build((None, self.k, d) if self.arch_type == "tabm" else (None, d))
            d = self.d_block
        self.head.build((None, self.k, self.d_block))
        self.built = True

    # --- the forward pass --------------------------------------------------------------------
    def _features(self, inputs):
        """The flat input vector of each row, ``(batch_size, d_in)``."""
        if not isinstance(inputs, dict):
            raise ValueError(
                "TabM expects a dict with 'numeric' and/or 'categorical' arrays. "
                f"Received: {type(inputs).__name__}"
            )
        parts = []
        if self.n_num_features:
            numeric = inputs.get("numeric")
            if numeric is None:
                raise ValueError(
                    f"TabM was built for {self.n_num_features} numeric features; the inputs "
                    "have no 'numeric' entry."
                )
            numeric = ops.cast(numeric, self.compute_dtype)
            if self.numeric_layer is not None:
                numeric = ops.reshape(
                    self.numeric_layer(numeric), (-1, self.n_num_features * self.embedding_dim)
                )
            parts.append(numeric)
        if self.categorical_cardinalities:
            categorical = inputs.get("categorical")
            if categorical is None:
                raise ValueError(
                    f"TabM was built for {len(self.categorical_cardinalities)} categorical "
                    "features; the inputs have no 'categorical' entry."
                )
            codes = known_codes(categorical, self.categorical_cardinalities)
            if self.categorical_embedding == "one-hot":
                parts.extend(
                    ops.one_hot(codes[:, j], c + 1, dtype=self.compute_dtype)
                    for j, c in enumerate(self.categorical_cardinalities)
                )
            else:
                offsets = ops.convert_to_tensor(self._offsets, dtype="int32")
                rows = ops.take(self.categorical_table, codes + offsets, axis=0)
                parts.append(ops.reshape(
                    rows, (-1, len(self.categorical_cardinalities) * self.embedding_dim)
                ))
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=1)

    def member_outputs(self, inputs, training=None):
        """The ``k`` members' outputs (logits for classification), ``(batch_size, k, d_out)``."""
        x = self.ensemble_view(self._features(inputs))
        if self.arch_type == "tabm-mini":
            x = x * self.mini_r
        for dense in self.blocks:
            x = self.block_dropout(dense(x), training=training)
        return ops.cast(self.head(x), "float32")

    def call(self, inputs, training=None):
        members = self.member_outputs(inputs, training=training)
        return members if training else self.combine(members)

    def combine(self, members):
        """The ensemble's prediction from the members' outputs ``(batch_size, k, d_out)``.

        Regression: the mean output. Classification: the logits of the mean probability,
        ``(batch_size, d_out)``.
        """
        members = ops.cast(members, "float32")
        log_k = math.log(self.k)
        if self.num_classes is None:
            return ops.mean(members, axis=1)
        if self.d_out == 1:
            # logit(mean_i sigmoid(z_i)) = log(mean p) - log(mean (1 - p)), in log space.
            log_p = ops.logsumexp(ops.log_sigmoid(members), axis=1) - log_k
            log_q = ops.logsumexp(ops.log_sigmoid(-members), axis=1) - log_k
            return log_p - log_q
        return ops.logsumexp(ops.log_softmax(members, axis=-1), axis=1) - log_k

    # --- training ----------------------------------------------------------------------------
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The mean of the members' losses when ``y_pred`` holds the members' outputs.

        Each member's ``(batch_size, d_out)`` prediction is scored against ``y`` with the
        compiled loss (and ``sample_weight``); the losses are averaged over the members.
        """
        if y_pred is not None and len(y_pred.shape) == 3:
            y_pred = ops.reshape(y_pred, (-1, y_pred.shape[-1]))
            y = ops.repeat(y, self.k, axis=0)
            if sample_weight is not None:
                sample_weight = ops.repeat(sample_weight, self.k, axis=0)
        return super().compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # Training metrics score the ensemble, as validation does.
        if len(y_pred.shape) == 3:
            y_pred = self.combine(y_pred)
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    @classmethod
    def default_config(cls):
        """The paper's defaults (see the class docstring)."""
        return dict(k=32, arch_type="tabm", d_block=512, dropout=0.1,
                    numeric_embedding="piecewise", embedding_dim=16)

    @classmethod
    def default_optimizer_config(cls):
        """AdamW with learning rate 2e-3 and weight decay 3e-4 (the TabM repository's)."""
        return dict(learning_rate=2e-3, weight_decay=3e-4)

    def make_optimizer(self, learning_rate=2e-3, weight_decay=3e-4, **kwargs):
        """AdamW without weight decay on biases and the numeric embeddings.

        ``kwargs`` go to ``keras.optimizers.AdamW``.
        """
        excluded = list(self.numeric_layer.weights) if self.numeric_layer is not None else []
        return adamw_without_decay_on(self, excluded, learning_rate, weight_decay, **kwargs)

    def get_config(self):
        return dict(
            name=self.name,
            n_num_features=self.n_num_features,
            categorical_cardinalities=list(self.categorical_cardinalities),
            d_out=self.d_out,
            num_classes=self.num_classes,
            k=self.k,
            arch_type=self.arch_type,
            n_blocks=self.n_blocks,
            d_block=self.d_block,
            dropout=self.dropout,
            numeric_embedding=self.numeric_embedding,
            bins=self.bins,
            embedding_dim=self.embedding_dim,
            n_frequencies=self.n_frequencies,
            frequency_init_scale=self.frequency_init_scale,
            categorical_embedding=self.categorical_embedding,
        )

    @classmethod
    def from_config(cls, config):
        return cls(**config)
