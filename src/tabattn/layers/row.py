"""Attention across rows (samples): row weighting, inter-sample and retrieval attention."""

__all__ = ["IntersampleAttention", "RetrievalAttention", "RowAttention"]

import math

import keras
import numpy as np
from keras import ops

from tabattn.layers import _checks
from tabattn.layers._attention import masked_softmax
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


# Most query rows for which a search reads the context's squared norms when given; above
# it they are recomputed, which XLA on CPU fuses into the scores' matmul: 256 queries
# against 16,384 keys of 128 values took 7.0 ms recomputing them, 9.5 ms reading them.
_GIVEN_NORMS_MAX_BATCH = 64


def _check_one_per_context_row(context_keys_shape, shape, argument, what, name):
    """Raise when ``argument`` (``shape``) has another known length than ``context_keys``."""
    n_keys, n = context_keys_shape[0], shape[0]
    if n_keys is not None and n is not None and n_keys != n:
        raise ValueError(
            f"{name} expects one {what} per context row. Received: "
            f"context_keys.shape={tuple(context_keys_shape)}, {argument}.shape={tuple(shape)}"
        )


# Scores per block when searching by blocks (see _top_k); 128 was the fastest of 32 to 256
# for 256 queries against 13,209 rows on 2 CPU cores with JAX.
_SEARCH_BLOCK = 128


def _top_k(scores, k):
    """``keras.ops.top_k(scores, k)`` (values, int32 positions; ties to the lower position).

    On a long last axis the rows are cut into blocks of ``_SEARCH_BLOCK`` scores: the k
    highest scores lie in the k blocks with the highest maxima (each of those scores is at
    most its block's maximum, and there are k of them), so a top-k over the block maxima
    and one over those k blocks give the same answer as one top-k over all scores, ties
    included (the blocks are taken in position order). On JAX's CPU backend this took the
    search of 256 rows among 13,209 from about 11 to 7 ms, most of what remains being the
    matmul; on PyTorch and TensorFlow (eager) it was slower than one top-k, so they keep it.
    """
    n = scores.shape[-1]
    if n is None or n <= 8 * k * _SEARCH_BLOCK or keras.backend.backend() != "jax":
        values, positions = ops.top_k(scores, k=k)
        return values, ops.cast(positions, "int32")
    n_blocks = -(-n // _SEARCH_BLOCK)
    padded = ops.pad(scores, ((0, 0), (0, n_blocks * _SEARCH_BLOCK - n)),
                     constant_values=-np.inf)
    blocks = ops.reshape(padded, (-1, n_blocks, _SEARCH_BLOCK))
    _, best = ops.top_k(ops.max(blocks, axis=-1), k=k)
    best = ops.sort(ops.cast(best, "int32"), axis=-1)
    rows = ops.arange(ops.shape(blocks)[0], dtype="int32")[:, None] * n_blocks
    candidates = ops.take(
        ops.reshape(blocks, (-1, _SEARCH_BLOCK)), ops.reshape(best + rows, (-1,)), axis=0
    )
    values, within = ops.top_k(ops.reshape(candidates, (-1, k * _SEARCH_BLOCK)), k=k)
    within = ops.cast(within, "int32")
    block = ops.take_along_axis(best, within // _SEARCH_BLOCK, axis=1)
    return values, block * _SEARCH_BLOCK + within % _SEARCH_BLOCK


@keras.saving.register_keras_serializable(package="tabattn")
class RetrievalAttention(keras.layers.Layer):
    """Retrieval attention (TabR): each row attends to its nearest stored rows and their labels.

    For a query key ``q`` (one row), the ``num_neighbors`` context rows whose keys ``c_i``
    are nearest in squared Euclidean distance are found by exact search (a top-k over all
    distances; ties go to the row stored first, except on PyTorch, whose ``topk`` leaves
    their order open). They are weighted by
    ``p = softmax(-||q - c_i||^2)`` and mixed into

        ``sum_i p_i * (label_embedding(y_i) + T(q - c_i))``

    where ``y_i`` is the label of context row ``i`` and ``T`` is ``Dense(hidden_dim, relu) ->
    Dropout(value_dropout) -> Dense(d, no bias)``: the value carries both what the neighbour's
    label was and how the row differs from it. ``dropout`` drops attention probabilities
    during training (TabR's "context dropout").

    Departure from the paper: ``T``'s dropout mask is drawn once per row and shared by its
    neighbours (dropout on ``sum_i p_i h_i``, which ``T``'s last, linear layer then maps),
    not once per neighbour. The mean is the same; drawing ``k`` times fewer random numbers
    made a training step of TabR on California housing (32 neighbours) 1.3x faster on the
    JAX CPU backend, where random bits cost more than ``T``'s matmuls.

    The context is passed in, not learned: typically the keys of the training rows and their
    labels. Each row's output depends only on that row and the context, never on the other
    rows of the batch. During training a row must not retrieve itself (it would read its own
    label): pass ``query_index``, the position of each query row in the context, and that
    position is excluded (use -1 for rows that are not in the context).

    **Large contexts.** With ``num_candidates``, each training call searches only that many
    context rows, drawn uniformly at random (with replacement; a row drawn twice counts
    once) and shared by the batch: ModernNCA's "stochastic neighbourhood sampling", which
    bounds the cost of a training step whatever the size of the context. Inference always
    searches every context row, ``search_chunk_size`` rows at a time, keeping the
    ``num_neighbors`` best of each chunk: memory grows with ``batch_size *
    search_chunk_size``, not with the whole context.

    Args:
        num_neighbors: how many context rows each row attends to (TabR's ``context_size``;
            paper default 96). If the context has fewer rows, all of them are used.
        num_classes: ``None`` for a regression label (a float, embedded by
            ``Dense(d)``), or the number of classes for integer class labels ``0..n-1``
            (embedded by a table of ``num_classes`` rows).
        hidden_dim: width of ``T``'s hidden layer. Default ``2 * d`` (TabR's
            ``d_multiplier=2``).
        dropout: rate of dropout on the attention probabilities, in [0, 1). Default 0.
        value_dropout: rate of dropout on ``T``'s hidden units, in [0, 1) (one mask per
            row, see above). Default 0.
        num_candidates: in training, how many randomly drawn context rows each call
            searches (see above); ``None`` (default) or a number at least the context's
            size: all of them.
        search_chunk_size: context rows compared with the queries at a time, a positive
            integer. Default 16384.
        seed: seed of the candidates' draws (an int, or ``None`` for Keras's global seed).
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Call arguments:
        query_keys: float ``(batch_size, d)``: the keys of the rows to predict.
        context_keys: float ``(n_context, d)``: the keys of the stored rows. Gradients flow
            through the keys of the selected neighbours.
        context_labels: ``(n_context,)`` (or ``(n_context, 1)``) labels of the stored rows:
            float for regression, integer class indices for classification.
        query_index: optional int ``(batch_size,)``: each query row's index in the context,
            excluded from its neighbours; -1 (or any index outside the context) excludes
            nothing.
        training: whether dropout is applied.
        return_attention_scores: if ``True``, also return the attention probabilities.
        context_squared_norms: optional float32 ``(n_context,)``: ``sum(context_keys **
            2, axis=-1)``, when the caller keeps it with the stored keys. A search for at
            most 64 query rows (a static batch size) then skips computing it: one row
            against 16,384 stored keys of 128 values took 0.45 instead of 0.65 ms on JAX's
            CPU backend. Larger batches recompute it on every backend (XLA fuses that into
            the scores' matmul, faster there than reading it), and so does a search whose
            norms arrive in another dtype (a mixed dtype policy casts ``call``'s inputs to
            its compute dtype, and rounded norms would rank the rows differently). Its
            values must match ``context_keys``: only its length is checked.

    Returns:
        ``(batch_size, d)`` in the layer's compute dtype; with
        ``return_attention_scores=True``, ``(outputs, scores)`` with ``scores``
        ``(batch_size, k)`` float32 (``k = min(num_neighbors, n_context)``), the weights of
        the neighbours, nearest first, summing to 1 (an excluded row gets weight 0).

    Raises:
        ValueError: if ``num_neighbors``, ``num_classes``, ``hidden_dim``,
            ``num_candidates`` or ``search_chunk_size`` is not a positive integer, a dropout rate is outside [0, 1), ``query_keys``/``context_keys`` are not
            of rank 2 with the same known last axis, ``context_labels`` is not of rank 1 (or
            rank 2 with one column) or has another length than ``context_keys``, or
            ``query_index`` or ``context_squared_norms`` is not of rank 1, or
            ``context_squared_norms`` has another length than ``context_keys``.

    Note:
        ``T``'s layers use Keras's default initialisers (Glorot uniform, zero bias), not
        PyTorch's ``U(±1/sqrt(fan_in))`` of the paper's code.

    Example:

    >>> import numpy as np
    >>> layer = RetrievalAttention(num_neighbors=4, num_classes=3)
    >>> queries = np.random.rand(5, 8).astype("float32")
    >>> context = np.random.rand(20, 8).astype("float32")
    >>> labels = np.random.randint(0, 3, size=20)
    >>> outputs, scores = layer(queries, context, labels, return_attention_scores=True)
    >>> tuple(outputs.shape), tuple(scores.shape)
    ((5, 8), (5, 4))

    Reference:
        Gorishniy, Rubachev, Kartashev, Shlenskii, Kotelnikov & Babenko, "TabR: Tabular Deep
        Learning Meets Nearest Neighbors", ICLR 2024, §3.2 (the retrieval module: L2
        similarity, label embedding and the ``T(k - k_i)`` value term). Candidate sampling:
        Ye, Yin, Zhan & Chao, "Revisiting Nearest Neighbor for Tabular Data: A Deep
        Tabular Baseline Two Decades Later" (ModernNCA), ICLR 2025, §4.2.
    """

    def __init__(
        self,
        num_neighbors=96,
        num_classes=None,
        hidden_dim=None,
        dropout=0.0,
        value_dropout=0.0,
        num_candidates=None,
        search_chunk_size=16384,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_neighbors = _checks.positive_int("num_neighbors", num_neighbors)
        self.num_classes = _checks.positive_int("num_classes", num_classes, allow_none=True)
        self.hidden_dim = _checks.positive_int("hidden_dim", hidden_dim, allow_none=True)
        self.dropout = _checks.rate("dropout", dropout)
        self.value_dropout = _checks.rate("value_dropout", value_dropout)
        self.num_candidates = _checks.positive_int(
            "num_candidates", num_candidates, allow_none=True
        )
        self.search_chunk_size = _checks.positive_int("search_chunk_size", search_chunk_size)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, query_keys_shape, context_keys_shape, context_labels_shape,
              query_index_shape=None, context_squared_norms_shape=None):
        name = type(self).__name__
        _checks.rank("query_keys", query_keys_shape, 2, name)
        _checks.rank("context_keys", context_keys_shape, 2, name)
        _checks.rank("context_labels", context_labels_shape, (1, 2), name)
        d = query_keys_shape[-1]
        if d is None or context_keys_shape[-1] != d:
            raise ValueError(
                f"{name} expects `query_keys` and `context_keys` with the same known last "
                f"axis. Received: query_keys.shape={tuple(query_keys_shape)}, "
                f"context_keys.shape={tuple(context_keys_shape)}"
            )
        _check_one_per_context_row(
            context_keys_shape, context_labels_shape, "context_labels", "label", name
        )
        if query_index_shape is not None:
            _checks.rank("query_index", query_index_shape, 1, name)
        if context_squared_norms_shape is not None:
            _checks.rank("context_squared_norms", context_squared_norms_shape, 1, name)
            _check_one_per_context_row(
                context_keys_shape, context_squared_norms_shape, "context_squared_norms",
                "squared norm", name,
            )
        if len(context_labels_shape) == 2 and context_labels_shape[-1] != 1:
            raise ValueError(
                f"{name} expects `context_labels` of shape (n_context,) or (n_context, 1). "
                f"Received: context_labels.shape={tuple(context_labels_shape)}"
            )
        self.key_dim = d
        hidden = self.hidden_dim or 2 * d
        policy = self.dtype_policy
        if self.num_classes is None:
            # TabR's initialisation of its Linear(1, d) label encoder: U(-1/sqrt(2), 1/sqrt(2)).
            init = keras.initializers.RandomUniform(-(0.5**0.5), 0.5**0.5)
            self.label_embedding = keras.layers.Dense(
                d, kernel_initializer=init, bias_initializer=init, name="label_embedding",
                dtype=policy,
            )
            self.label_embedding.build((None, None, 1))
        else:
            self.label_embedding = keras.layers.Embedding(
                self.num_classes, d, embeddings_initializer=keras.initializers.RandomUniform(-1, 1),
                name="label_embedding", dtype=policy,
            )
            self.label_embedding.build((None, None))
        self.value_hidden = keras.layers.Dense(
            hidden, activation="relu", name="value_hidden", dtype=policy
        )
        self.value_hidden.build((None, d))
        self.value_output = keras.layers.Dense(
            d, use_bias=False, name="value_output", dtype=policy
        )
        self.value_output.build((None, hidden))
        self.value_dropout_layer = keras.layers.Dropout(self.value_dropout, dtype=policy)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy)

    def _k(self, n_context):
        return self.num_neighbors if n_context is None else min(self.num_neighbors, n_context)

    def call(
        self,
        query_keys,
        context_keys,
        context_labels,
        query_index=None,
        training=None,
        return_attention_scores=False,
        context_squared_norms=None,
    ):
        context_labels = ops.reshape(context_labels, (-1,))
        candidates = self.sample_candidates(context_keys.shape[0]) if training else None
        if candidates is not None:
            context_keys = ops.take(context_keys, candidates, axis=0)
            context_labels = ops.take(context_labels, candidates, axis=0)
            if context_squared_norms is not None:
                context_squared_norms = ops.take(context_squared_norms, candidates, axis=0)
        neighbors, valid = self.search(
            query_keys, context_keys, query_index, candidates, context_squared_norms
        )
        neighbor_keys = ops.take(ops.cast(context_keys, "float32"), neighbors, axis=0)
        neighbor_labels = ops.take(context_labels, neighbors, axis=0)
        projections = None
        n_context, batch = context_keys.shape[0], query_keys.shape[0]
        if n_context is not None and batch is not None and (
            n_context < batch * neighbors.shape[1]
        ):
            # Fewer context rows than (row, neighbour) pairs: project the context first.
            projections = ops.take(self.project(context_keys), neighbors, axis=0)
        return self.attend(
            query_keys, neighbor_keys, neighbor_labels, valid, training=training,
            return_attention_scores=return_attention_scores, neighbor_projections=projections,
        )

    def sample_candidates(self, n_context):
        """Indices of the context rows a training call searches, or ``None`` for all.

        ``None`` unless ``num_candidates`` is set and below ``n_context`` (a static size);
        else int32 ``(num_candidates,)`` drawn uniformly with replacement.
        """
        if self.num_candidates is None or n_context is None or (
            self.num_candidates >= n_context
        ):
            return None
        return keras.random.randint(
            (self.num_candidates,), 0, n_context, dtype="int32", seed=self.seed_generator
        )

    def search(self, query_keys, context_keys, query_index=None, context_index=None,
               context_squared_norms=None):
        """The nearest context rows of each query (exact search, no gradient).

        The context is compared ``search_chunk_size`` rows at a time; each chunk's
        ``num_neighbors`` best are merged with the best so far.

        Args:
            query_keys: float ``(batch_size, d)``.
            context_keys: float ``(n_context, d)``.
            query_index: optional int ``(batch_size,)``, as in ``call``.
            context_index: optional int ``(n_context,)``: the index, in the full context, of
                each row of ``context_keys`` when they are a sample of it (rows may repeat).
                ``query_index`` is compared with these, and a row found twice counts once.
            context_squared_norms: optional float32 ``(n_context,)``, as in ``call``.

        Returns:
            ``(neighbors, valid)``: int32 ``(batch_size, k)`` positions in ``context_keys``,
            nearest first, and a boolean ``(batch_size, k)`` mask that is ``False`` where a
            neighbour is the query row itself (only possible when the context has at most
            ``k`` rows) or repeats an earlier neighbour; ``None`` without ``query_index``
            and ``context_index``.

        Raises:
            ValueError: if ``context_squared_norms`` has another (static) length than
                ``context_keys``.
        """
        search_q = ops.stop_gradient(ops.cast(query_keys, "float32"))
        search_c = ops.stop_gradient(ops.cast(context_keys, "float32"))
        n_context = search_c.shape[0]
        batch = search_q.shape[0]
        if context_squared_norms is not None:
            _check_one_per_context_row(
                search_c.shape, context_squared_norms.shape, "context_squared_norms",
                "squared norm", type(self).__name__,
            )
        if (
            context_squared_norms is None or batch is None or batch > _GIVEN_NORMS_MAX_BATCH
            or keras.backend.standardize_dtype(context_squared_norms.dtype) != "float32"
        ):
            context_squared_norms = ops.sum(search_c * search_c, axis=-1)
        half_norms = 0.5 * ops.stop_gradient(ops.cast(context_squared_norms, "float32"))
        if query_index is not None:
            query_index = ops.cast(query_index, "int32")
        if context_index is not None:
            context_index = ops.cast(context_index, "int32")
        k = self._k(n_context)
        chunk = self.search_chunk_size
        starts = [0] if n_context is None or n_context <= chunk else range(0, n_context, chunk)
        best_scores = neighbors = None
        for start in starts:
            part = search_c if len(starts) == 1 else search_c[start : start + chunk]
            part_half_norms = half_norms if len(starts) == 1 else (
                half_norms[start : start + chunk]
            )
            rows = None if n_context is None else min(chunk, n_context - start)
            # Whether to find k + 1 rows and drop the query row itself instead of masking it
            # in every score (about a quarter of the search's time).
            drop_itself = (
                query_index is not None and context_index is None and rows is not None
                and rows > k
            )
            # q.c - ||c||^2 / 2 ranks the rows as -||q - c||^2 does.
            scores = ops.matmul(search_q, ops.transpose(part)) - part_half_norms[None, :]
            if query_index is not None and not drop_itself:
                if context_index is not None:
                    positions = context_index if len(starts) == 1 else (
                        context_index[start : start + chunk]
                    )
                else:
                    positions = ops.arange(start, start + ops.shape(part)[0], dtype="int32")
                itself = ops.equal(query_index[:, None], positions[None, :])
                scores = ops.where(itself, -3e38, scores)
            size = min(k, part.shape[0] or k)
            chunk_scores, chunk_neighbors = _top_k(scores, size + 1 if drop_itself else size)
            if drop_itself:
                # Skip the query row where found: the j-th neighbour is found[j + (number
                # of times the row itself appears among found[:j + 1])].
                itself = ops.equal(chunk_neighbors, query_index[:, None] - start)
                shift = ops.cumsum(ops.cast(itself, "int32"), axis=1)[:, :k]
                order = ops.arange(k, dtype="int32")[None, :] + shift
                chunk_neighbors = ops.take_along_axis(chunk_neighbors, order, axis=1)
                chunk_scores = ops.take_along_axis(chunk_scores, order, axis=1)
            chunk_neighbors = chunk_neighbors + start
            if neighbors is None:
                best_scores, neighbors = chunk_scores, chunk_neighbors
            else:
                merged = ops.concatenate([best_scores, chunk_scores], axis=1)
                merged_neighbors = ops.concatenate([neighbors, chunk_neighbors], axis=1)
                best_scores, order = ops.top_k(merged, k=k)
                neighbors = ops.take_along_axis(merged_neighbors, order, axis=1)
        valid = None
        if context_index is not None:
            found = ops.take(context_index, neighbors, axis=0)
            # A row drawn twice is found twice, side by side or nearly: keep its first.
            repeats = ops.logical_and(
                ops.equal(found[:, :, None], found[:, None, :]),
                ops.convert_to_tensor(np.tril(np.ones((k, k), bool), -1)),
            )
            valid = ops.logical_not(ops.any(repeats, axis=-1))
            if query_index is not None:
                valid = ops.logical_and(valid, ops.not_equal(found, query_index[:, None]))
        elif query_index is not None:
            valid = ops.not_equal(neighbors, query_index[:, None])
        return neighbors, valid

    def project(self, keys):
        """``T``'s first linear map without its bias, ``keys @ W1``: ``(..., d) -> (..., h)``.

        ``T``'s first layer is affine, so ``W1 (q - c_i) + b1 = (W1 q + b1) - W1 c_i``: the
        context's projections can be computed once per context row and gathered for each
        neighbour (see ``attend``), instead of once per (row, neighbour) pair.
        """
        return ops.matmul(ops.cast(keys, self.compute_dtype), self.value_hidden.kernel)

    def attend(self, query_keys, neighbor_keys, neighbor_labels, valid=None, training=None,
               return_attention_scores=False, neighbor_projections=None):
        """Mix the neighbours found by ``search`` (the layer must be built).

        Args:
            query_keys: float ``(batch_size, d)``.
            neighbor_keys: float ``(batch_size, k, d)``: the neighbours' keys; gradients flow
                through them and through ``query_keys``.
            neighbor_labels: ``(batch_size, k)`` labels (float, or class indices).
            valid: optional boolean ``(batch_size, k)``; ``False`` entries get weight 0.
            training, return_attention_scores: as in ``call``.
            neighbor_projections: optional ``(batch_size, k, h)``: ``project`` of the
                neighbours' keys, when it was computed on the context before gathering.

        Returns:
            As ``call``.
        """
        queries = ops.cast(query_keys, "float32")
        difference = queries[:, None, :] - ops.cast(neighbor_keys, "float32")
        # Similarity recomputed from the gathered keys, so gradients reach both sides.
        scores = masked_softmax(-ops.sum(difference * difference, axis=-1), valid)
        if self.num_classes is None:
            label_values = self.label_embedding(
                ops.cast(neighbor_labels, self.compute_dtype)[..., None]
            )
        else:
            label_values = self.label_embedding(ops.cast(neighbor_labels, "int32"))
        if neighbor_projections is None:
            neighbor_projections = self.project(neighbor_keys)
        # T's first layer, W1 (q - c_i) + b1, as (W1 q + b1) - W1 c_i (see ``project``).
        query_projection = self.project(query_keys) + self.value_hidden.bias
        hidden = ops.relu(
            query_projection[:, None, :] - ops.cast(neighbor_projections, self.compute_dtype)
        )
        probs = self.dropout_layer(ops.cast(scores, self.compute_dtype), training=training)
        # T's last layer is linear without bias, so sum_i p_i T_2(h_i) = T_2(sum_i p_i h_i):
        # mixing first runs it once per row instead of once per neighbour (same result).
        # T's dropout comes after mixing: one mask per row (see the class docstring).
        mixed_hidden = self.value_dropout_layer(
            ops.einsum("bk,bkh->bh", probs, hidden), training=training
        )
        outputs = ops.einsum("bk,bkd->bd", probs, label_values) + self.value_output(mixed_hidden)
        if return_attention_scores:
            return outputs, scores
        return outputs

    def compute_output_shape(self, query_keys_shape, context_keys_shape, *args, **kwargs):
        return (query_keys_shape[0], query_keys_shape[-1])

    def compute_output_spec(
        self,
        query_keys,
        context_keys,
        context_labels,
        query_index=None,
        training=None,
        return_attention_scores=False,
        context_squared_norms=None,
    ):
        outputs = keras.KerasTensor(
            (query_keys.shape[0], query_keys.shape[-1]), dtype=self.compute_dtype
        )
        if not return_attention_scores:
            return outputs
        scores = keras.KerasTensor(
            (query_keys.shape[0], self._k(context_keys.shape[0])), dtype="float32"
        )
        return outputs, scores

    def get_config(self):
        config = super().get_config()
        config.update(
            num_neighbors=self.num_neighbors,
            num_classes=self.num_classes,
            hidden_dim=self.hidden_dim,
            dropout=self.dropout,
            value_dropout=self.value_dropout,
            num_candidates=self.num_candidates,
            search_chunk_size=self.search_chunk_size,
            seed=self.seed,
        )
        return config
