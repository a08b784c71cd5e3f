"""Row attention layers against NumPy references, and their batch behaviour."""

import keras
import numpy as np
import pytest

from tabattn.layers import IntersampleAttention, RetrievalAttention, RowAttention
from tabattn.layers.row import _GIVEN_NORMS_MAX_BATCH


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _softmax(logits, axis=-1):
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def reference_mha(layer, query, key, value, mask=None):
    """Multi-head attention in NumPy from a tabattn MultiHeadAttention's weights.

    ``query`` ``(b, Tq, d)``, ``key``/``value`` ``(b, Tv, d)``, ``mask`` ``(b, Tq, Tv)``.
    Returns the outputs and the probabilities ``(b, heads, Tq, Tv)``.
    """
    def project(dense, x):
        bias = _np(dense.bias) if dense.bias is not None else 0.0
        return np.einsum("btd,dhk->bthk", x, _np(dense.kernel)) + bias

    q = project(layer.query_dense, query)
    k = project(layer.key_dense, key)
    v = project(layer.value_dense, value)
    logits = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
    if mask is not None:
        logits = np.where(mask[:, None], logits, -np.inf)
    probs = _softmax(logits)
    context = np.einsum("bhqk,bkhd->bqhd", probs, v)
    out = np.einsum("bqhd,hde->bqe", context, _np(layer.output_dense.kernel))
    return out + _np(layer.output_dense.bias), probs


# --- RowAttention --------------------------------------------------------------------------
def row_logits(layer, x):
    """``score / temperature`` per row, ``(batch, 1)``, from ``attention_net``'s weights."""
    hidden, score = layer.attention_net.layers
    h = np.maximum(x @ _np(hidden.kernel) + _np(hidden.bias), 0.0)
    s = 1.0 / (1.0 + np.exp(-(h @ _np(score.kernel) + _np(score.bias))))
    return s / layer.temperature


def test_training_weights_are_batch_size_times_softmax(rng):
    x = rng.normal(size=(9, 6)).astype("float32")
    layer = RowAttention(temperature=0.3)
    outputs, weights = layer(x, training=True, return_attention_scores=True)
    logits = row_logits(layer, x)
    expected = len(x) * _softmax(logits, axis=0)
    assert weights.shape == (9, 1)
    np.testing.assert_allclose(_np(weights), expected, rtol=1e-5)
    np.testing.assert_allclose(_np(outputs), x * expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch_size", [1, 3, 50])
def test_training_weights_average_one_at_any_batch_size(rng, batch_size):
    x = rng.normal(size=(batch_size, 4)).astype("float32")
    _, weights = RowAttention()(x, training=True, return_attention_scores=True)
    np.testing.assert_allclose(_np(weights).mean(), 1.0, rtol=1e-5)


def test_inference_uses_the_moving_normaliser(rng):
    x = rng.normal(size=(5, 6)).astype("float32")
    layer = RowAttention(temperature=0.5)
    outputs, weights = layer(x, return_attention_scores=True)
    # Before training: the normaliser of a batch whose scores are all 0.5.
    log_normalizer = _np(layer.moving_log_normalizer)
    np.testing.assert_allclose(log_normalizer, 0.5 / 0.5, rtol=1e-6)
    expected = np.exp(row_logits(layer, x) - log_normalizer)
    np.testing.assert_allclose(_np(weights), expected, rtol=1e-5)
    np.testing.assert_allclose(_np(outputs), x * expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_moving_normaliser_is_a_moving_average_updated_only_in_training(rng, momentum):
    x = rng.normal(size=(8, 6)).astype("float32")
    layer = RowAttention(momentum=momentum)
    layer(x)
    before = float(_np(layer.moving_log_normalizer))
    layer(x, training=False)
    assert float(_np(layer.moving_log_normalizer)) == before
    layer(x, training=True)
    batch_normalizer = np.exp(row_logits(layer, x)).mean()
    expected = momentum * np.exp(before) + (1 - momentum) * batch_normalizer
    np.testing.assert_allclose(np.exp(_np(layer.moving_log_normalizer)), expected, rtol=1e-5)


def test_frozen_layer_runs_in_inference_mode(rng):
    x = rng.normal(size=(8, 6)).astype("float32")
    layer = RowAttention()
    inference = _np(layer(x))
    layer.trainable = False
    before = float(_np(layer.moving_log_normalizer))
    np.testing.assert_array_equal(_np(layer(x, training=True)), inference)
    assert float(_np(layer.moving_log_normalizer)) == before


def test_predict_does_not_depend_on_batch_size():
    x = keras.random.normal((256, 6), seed=1)
    model = keras.Sequential([keras.Input((6,)), RowAttention()])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, x, batch_size=32, epochs=1, verbose=0)  # moves the normaliser
    outputs = [model.predict(x, batch_size=size, verbose=0) for size in (1, 7, 256)]
    np.testing.assert_allclose(outputs[0], outputs[2], atol=1e-5)
    np.testing.assert_allclose(outputs[1], outputs[2], atol=1e-5)


def test_small_temperature_stays_finite(rng):
    x = rng.normal(size=(6, 4)).astype("float32")
    layer = RowAttention(temperature=0.005)  # logits up to 200: exp would overflow float32
    for training in (True, False):
        assert np.isfinite(_np(layer(x, training=training))).all()
    assert np.isfinite(_np(layer.moving_log_normalizer))


@pytest.mark.parametrize("num_features, hidden", [(1, 1), (7, 3)])
def test_hidden_dim_defaults_to_half_the_features(num_features, hidden):
    layer = RowAttention()
    layer.build((None, num_features))
    assert layer.attention_net.layers[0].units == hidden
    assert layer.attention_net(np.zeros((3, num_features), "float32")).shape == (3, 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(feature_dim=0), "feature_dim"),
        (dict(hidden_dim=-2), "hidden_dim"),
        (dict(temperature=0), "temperature"),
        (dict(momentum=1.0), "momentum"),
    ],
)
def test_row_attention_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RowAttention(**kwargs)


def test_row_attention_shape_errors():
    with pytest.raises(ValueError, match="feature_dim=5"):
        RowAttention(feature_dim=5)(np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError, match="rank 2"):
        RowAttention()(np.zeros((2, 3, 4), "float32"))


# --- IntersampleAttention ------------------------------------------------------------------
def reference_intersample(layer, x, context=None):
    """SAINT inter-sample attention in NumPy: flattened rows attend across the batch."""
    rows = x.reshape(1, len(x), -1)
    if context is None:
        out, probs = reference_mha(layer.attention, rows, rows, rows)
        return out.reshape(x.shape), probs[0].transpose(1, 0, 2)
    flat_context = context.reshape(len(context), -1)
    outs, probs = [], []
    for row in rows[0]:  # each row: keys are the context rows and the row itself
        keys = np.concatenate([flat_context, row[None]])[None]
        out, p = reference_mha(layer.attention, row[None, None], keys, keys)
        outs.append(out[0, 0])
        probs.append(p[0, :, 0])
    return np.stack(outs).reshape(x.shape), np.stack(probs)


# IntersampleAttention tests share shapes (batch 4, rows (3, 4), 6 context rows): JAX
# compiles each eager op once per shape, so new shapes cost more than new tests.
def test_intersample_matches_numpy_reference(rng):
    x = rng.normal(size=(4, 3, 4)).astype("float32")
    layer = IntersampleAttention(num_heads=2, key_dim=3)
    fused = layer(x)
    explicit, scores = layer(x, return_attention_scores=True)
    expected, expected_probs = reference_intersample(layer, x)
    assert layer.attention.query_dense.kernel.shape == (12, 2, 3)
    assert fused.shape == (4, 3, 4) and scores.shape == (4, 2, 4)
    np.testing.assert_allclose(_np(fused), expected, atol=1e-5)
    np.testing.assert_allclose(_np(explicit), expected, atol=1e-5)
    np.testing.assert_allclose(_np(scores), expected_probs, atol=1e-6)


def test_intersample_without_context_depends_on_the_batch(rng):
    x = rng.normal(size=(4, 3, 4)).astype("float32")
    layer = IntersampleAttention(num_heads=2, key_dim=3)
    changed = x.copy()
    changed[1:] += 1.0
    assert not np.allclose(_np(layer(x))[0], _np(layer(changed))[0], atol=1e-4)


def test_intersample_with_context_matches_numpy_reference(rng):
    x = rng.normal(size=(4, 3, 4)).astype("float32")
    context = rng.normal(size=(6, 3, 4)).astype("float32")
    layer = IntersampleAttention(num_heads=2, key_dim=3)
    fused = layer(x, context=context)
    explicit, scores = layer(x, context=context, return_attention_scores=True)
    expected, expected_probs = reference_intersample(layer, x, context)
    assert scores.shape == (4, 2, 7)
    np.testing.assert_allclose(_np(fused), expected, atol=1e-5)
    np.testing.assert_allclose(_np(explicit), expected, atol=1e-5)
    np.testing.assert_allclose(_np(scores), expected_probs, atol=1e-6)


def test_intersample_with_context_is_batch_invariant(rng):
    x = rng.normal(size=(4, 3, 4)).astype("float32")
    context = rng.normal(size=(6, 3, 4)).astype("float32")
    layer = IntersampleAttention(num_heads=2, key_dim=3)
    in_batch = _np(layer(x, context=context))
    for i in (0, 3):
        alone = _np(layer(x[i : i + 1], context=context))
        np.testing.assert_allclose(alone[0], in_batch[i], atol=1e-5)


class WithStoredRows(keras.Model):
    """A model whose IntersampleAttention reads a fixed context of its own batch size."""

    def __init__(self, context):
        super().__init__()
        self.context = context
        self.attention = IntersampleAttention(num_heads=2, key_dim=3, dropout=0.2)

    def call(self, inputs, training=None):
        return self.attention(inputs, context=self.context, training=training)


def test_intersample_trains_with_a_context_of_another_size(rng):
    context = rng.normal(size=(6, 3, 4)).astype("float32")
    x = rng.normal(size=(8, 3, 4)).astype("float32")
    model = WithStoredRows(context)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model(x[:4])
    before = [_np(w).copy() for w in model.trainable_weights]
    model.fit(x, np.zeros_like(x), batch_size=4, epochs=1, verbose=0)
    for weight, old in zip(model.trainable_weights, before):
        assert not np.array_equal(_np(weight), old), weight.path


def test_intersample_errors(rng):
    with pytest.raises(ValueError, match="key_dim"):
        IntersampleAttention(num_heads=2, key_dim=0)
    with pytest.raises(ValueError, match="dropout"):
        IntersampleAttention(num_heads=2, key_dim=4, dropout=-0.1)
    layer = IntersampleAttention(num_heads=2, key_dim=4)
    with pytest.raises(ValueError, match="rank 3"):
        layer(np.zeros((2, 12), "float32"))
    with pytest.raises(ValueError, match="context"):
        layer(np.zeros((2, 3, 4), "float32"), context=np.zeros((5, 4, 3), "float32"))


# --- RetrievalAttention -------------------------------------------------------------------
def reference_retrieval(layer, queries, context, labels, query_index=None):
    """TabR's retrieval module in NumPy from the layer's weights (inference, no dropout)."""
    distances = ((queries[:, None, :] - context[None, :, :]) ** 2).sum(-1)
    if query_index is not None:
        distances[np.arange(len(queries)), query_index] = np.inf
    k = min(layer.num_neighbors, len(context))
    neighbors = np.argsort(distances, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(distances, neighbors, axis=1)
    weights = _softmax(-chosen)
    if layer.num_classes is None:
        emb = labels[neighbors][..., None] * _np(layer.label_embedding.kernel)[0]
        emb = emb + _np(layer.label_embedding.bias)
    else:
        emb = _np(layer.label_embedding.embeddings)[labels[neighbors]]
    difference = queries[:, None, :] - context[neighbors]
    hidden = np.maximum(
        difference @ _np(layer.value_hidden.kernel) + _np(layer.value_hidden.bias), 0
    )
    values = emb + hidden @ _np(layer.value_output.kernel)
    return np.einsum("bk,bkd->bd", weights, values), weights, neighbors


@pytest.mark.parametrize("num_classes", [None, 3])
def test_retrieval_matches_numpy_reference(rng, num_classes):
    layer = RetrievalAttention(num_neighbors=4, num_classes=num_classes)
    queries = rng.normal(size=(6, 5)).astype("float32")
    context = rng.normal(size=(30, 5)).astype("float32")
    if num_classes is None:
        labels = rng.normal(size=30).astype("float32")
    else:
        labels = rng.integers(0, 3, size=30).astype("int32")
    outputs, scores = layer(queries, context, labels, return_attention_scores=True)
    expected, weights, _ = reference_retrieval(layer, queries, context, labels)
    np.testing.assert_allclose(_np(outputs), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_np(scores), weights, rtol=1e-4, atol=1e-6)


def test_retrieval_never_retrieves_the_query_row_itself(rng):
    layer = RetrievalAttention(num_neighbors=3, num_classes=2)
    context = rng.normal(size=(12, 4)).astype("float32")
    labels = rng.integers(0, 2, size=12).astype("int32")
    index = np.array([0, 5, 11, -1], dtype="int32")
    queries = context[[0, 5, 11, 2]]  # the last row is "not in the context" (-1)
    outputs = layer(queries, context, labels, query_index=index)
    expected, _, neighbors = reference_retrieval(layer, queries, context, labels, index)
    np.testing.assert_allclose(_np(outputs), expected, rtol=1e-4, atol=1e-5)
    assert all(i not in row for i, row in zip(index[:3], neighbors[:3]))
    assert neighbors[3, 0] == 2  # without exclusion a stored row finds itself first


def test_retrieval_is_batch_invariant(rng):
    layer = RetrievalAttention(num_neighbors=8, num_classes=None, dropout=0.3)
    context = rng.normal(size=(300, 6)).astype("float32")
    labels = rng.normal(size=(300, 1)).astype("float32")
    queries = rng.normal(size=(256, 6)).astype("float32")
    full = _np(layer(queries, context, labels, training=False))
    for size in (1, 7):
        part = _np(layer(queries[:size], context, labels, training=False))
        np.testing.assert_allclose(part, full[:size], rtol=1e-5, atol=1e-6)


def test_retrieval_value_dropout_draws_one_mask_per_row(rng):
    # With T's last layer the identity and zero label embeddings, the output is the mix of
    # T's hidden units; one mask per row keeps or zeroes (and rescales) each unit of that
    # mix as a whole, where masks per neighbour would also leave partial sums.
    layer = RetrievalAttention(num_neighbors=6, num_classes=2, hidden_dim=16, value_dropout=0.5)
    queries = rng.normal(size=(32, 16)).astype("float32")
    context = rng.normal(size=(40, 16)).astype("float32")
    labels = rng.integers(0, 2, size=40).astype("int32")
    layer(queries, context, labels)  # build
    layer.value_output.kernel.assign(np.eye(16, dtype="float32"))
    layer.label_embedding.embeddings.assign(np.zeros((2, 16), "float32"))
    mixed = _np(layer(queries, context, labels, training=False))
    dropped = _np(layer(queries, context, labels, training=True))
    kept = np.isclose(dropped, 2 * mixed, rtol=1e-4, atol=1e-6)
    zeroed = dropped == 0
    assert np.all(kept | zeroed)
    assert 0.3 < zeroed[mixed != 0].mean() < 0.7


def test_retrieval_with_fewer_context_rows_than_neighbors(rng):
    layer = RetrievalAttention(num_neighbors=96, num_classes=2)
    context = rng.normal(size=(5, 4)).astype("float32")
    labels = np.array([0, 1, 1, 0, 1], dtype="int32")
    outputs, scores = layer(context, context, labels, query_index=np.arange(5),
                            return_attention_scores=True)
    scores = _np(scores)
    assert scores.shape == (5, 5) and _np(outputs).shape == (5, 4)
    np.testing.assert_allclose(scores.sum(-1), 1.0, rtol=1e-5)
    assert np.allclose(scores[:, -1], 0.0)  # the row itself comes last, with weight 0


@pytest.mark.parametrize("query_index", [None, np.array([3, -1, 40, 99, 0, 7], "int32")])
def test_chunked_search_finds_what_one_pass_finds(rng, query_index):
    queries = rng.normal(size=(6, 5)).astype("float32")
    context = rng.normal(size=(100, 5)).astype("float32")
    labels = rng.integers(0, 3, size=100).astype("int32")
    whole = RetrievalAttention(num_neighbors=7, num_classes=3)
    chunked = RetrievalAttention(num_neighbors=7, num_classes=3, search_chunk_size=16)
    outputs, scores = whole(queries, context, labels, query_index=query_index,
                            return_attention_scores=True)
    chunked(queries, context, labels)  # build, then share the weights
    chunked.set_weights(whole.get_weights())
    got, got_scores = chunked(queries, context, labels, query_index=query_index,
                              return_attention_scores=True)
    np.testing.assert_allclose(_np(got), _np(outputs), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(got_scores), _np(scores), rtol=1e-5, atol=1e-6)
    found, _ = chunked.search(queries, context, query_index)
    expected = reference_retrieval(whole, queries, context, labels, query_index)[2]
    np.testing.assert_array_equal(np.sort(_np(found), 1), np.sort(expected, 1))
    # Squared norms kept by the caller give the same search, chunk by chunk.
    norms = (context**2).sum(-1)
    found_with_norms, _ = chunked.search(queries, context, query_index,
                                         context_squared_norms=norms)
    np.testing.assert_array_equal(_np(found_with_norms), _np(found))
    got = chunked(queries, context, labels, query_index=query_index, context_squared_norms=norms)
    np.testing.assert_allclose(_np(got), _np(outputs), rtol=1e-5, atol=1e-6)


def test_search_ranks_by_the_given_squared_norms(rng):
    # The norms are taken as given: with every norm but one made huge, that row is nearest.
    context = rng.normal(size=(20, 4)).astype("float32")
    queries = rng.normal(size=(3, 4)).astype("float32")
    norms = np.full(20, 1e6, "float32")
    norms[7] = 0.0
    layer = RetrievalAttention(num_neighbors=2, num_classes=2)
    found, _ = layer.search(queries, context, context_squared_norms=norms)
    assert (_np(found)[:, 0] == 7).all()
    # Batches of more than 64 rows recompute the norms from the keys instead.
    many = rng.normal(size=(_GIVEN_NORMS_MAX_BATCH + 1, 4)).astype("float32")
    found, _ = layer.search(many, context, context_squared_norms=norms)
    np.testing.assert_array_equal(_np(found), _np(layer.search(many, context)[0]))


def test_given_norms_in_another_dtype_are_recomputed(rng):
    # A mixed policy casts call's inputs to bfloat16: rounded norms would rank rows
    # differently from the keys, so the layer recomputes them (these would put row 7 first).
    context = rng.normal(size=(40, 4)).astype("float32")
    labels = rng.integers(0, 2, size=40).astype("int32")
    queries = rng.normal(size=(3, 4)).astype("float32")
    norms = np.full(40, 1e6, "float32")
    norms[7] = 0.0
    layer = RetrievalAttention(num_neighbors=2, num_classes=2, dtype="mixed_bfloat16")
    got, got_scores = layer(queries, context, labels, context_squared_norms=norms,
                            return_attention_scores=True)
    want, want_scores = layer(queries, context, labels, return_attention_scores=True)
    np.testing.assert_array_equal(_np(got), _np(want))
    np.testing.assert_array_equal(_np(got_scores), _np(want_scores))


@pytest.mark.parametrize("with_index", [False, True])
def test_search_over_many_rows_breaks_ties_as_a_stable_sort(rng, with_index):
    # Small whole numbers: every distance is exact in float32, and the 125 distinct rows
    # among 5,000 give ties everywhere. Enough rows to search by blocks.
    context = rng.integers(-2, 3, size=(5000, 3)).astype("float32")
    index = rng.choice(5000, size=64, replace=False).astype("int32")
    queries = context[index] + rng.integers(-1, 2, size=(64, 3)).astype("float32")
    layer = RetrievalAttention(num_neighbors=5, num_classes=2)
    found, valid = layer.search(queries, context, index if with_index else None)
    distances = ((queries[:, None, :] - context[None, :, :]) ** 2).sum(-1)
    if with_index:
        distances[np.arange(64), index] = np.inf
        assert _np(valid).all()
    expected = np.argsort(distances, axis=1, kind="stable")[:, :5]
    got = _np(found)
    np.testing.assert_array_equal(np.take_along_axis(distances, got, 1),
                                  np.take_along_axis(distances, expected, 1))
    if keras.backend.backend() != "torch":  # torch.topk leaves the order of ties open
        np.testing.assert_array_equal(got, expected)


def test_candidates_bound_the_training_search(rng):
    context = rng.normal(size=(500, 4)).astype("float32")
    labels = rng.integers(0, 2, size=500).astype("int32")
    queries = context[:8]
    layer = RetrievalAttention(num_neighbors=5, num_classes=2, num_candidates=50, seed=3)
    candidates = _np(layer.sample_candidates(500))
    assert candidates.shape == (50,) and candidates.min() >= 0 and candidates.max() < 500
    assert layer.sample_candidates(50) is None and layer.sample_candidates(None) is None
    # Searching a sample: the neighbours are sample rows, mapped back through the sample.
    neighbors, valid = layer.search(queries, context[candidates], np.arange(8),
                                    context_index=candidates)
    found = candidates[_np(neighbors)]
    distances = ((queries[:, None] - context[candidates][None]) ** 2).sum(-1)
    distances[candidates[None, :] == np.arange(8)[:, None]] = np.inf  # never itself
    np.testing.assert_array_equal(found[:, 0], candidates[np.argmin(distances, axis=1)])
    assert _np(valid)[:, 0].all() and (found != np.arange(8)[:, None])[_np(valid)].all()
    # Inference searches every stored row: candidates change nothing there.
    full = RetrievalAttention(num_neighbors=5, num_classes=2)
    full(queries, context, labels)
    layer(queries, context, labels)
    full.set_weights(layer.get_weights())
    np.testing.assert_allclose(_np(layer(queries, context, labels)),
                               _np(full(queries, context, labels)), rtol=1e-5, atol=1e-6)
    assert np.isfinite(_np(layer(queries, context, labels, training=True))).all()
    # Squared norms given with the context are sampled with it.
    norms = (context**2).sum(-1)
    first, second = (RetrievalAttention(num_neighbors=5, num_classes=2, num_candidates=50,
                                        seed=4) for _ in range(2))
    for sampled in (first, second):
        sampled(queries, context, labels)
        sampled.set_weights(layer.get_weights())
    np.testing.assert_allclose(
        _np(first(queries, context, labels, training=True, context_squared_norms=norms)),
        _np(second(queries, context, labels, training=True)), rtol=1e-5, atol=1e-6,
    )


def test_a_row_drawn_twice_counts_once(rng):
    layer = RetrievalAttention(num_neighbors=4, num_classes=2)
    context = rng.normal(size=(6, 3)).astype("float32")
    sample = np.array([2, 2, 5, 1, 2], "int32")  # row 2 three times
    neighbors, valid = layer.search(context[2:3] + 1e-3, context[sample], None,
                                    context_index=sample)
    found = sample[_np(neighbors)[0]]
    assert list(found[:3]) == [2, 2, 2] and list(_np(valid)[0][:3]) == [True, False, False]
    # The query's own row is excluded through the sample's indices too.
    neighbors, valid = layer.search(context[2:3], context[sample], np.array([2], "int32"),
                                    context_index=sample)
    found = sample[_np(neighbors)[0]]
    np.testing.assert_array_equal(_np(valid)[0], found != 2)


def test_retrieval_gradients_reach_queries_and_context_keys(rng):
    layer = RetrievalAttention(num_neighbors=3, num_classes=2)
    queries = keras.Variable(rng.normal(size=(4, 3)).astype("float32"))
    context = keras.Variable(rng.normal(size=(10, 3)).astype("float32"))
    labels = rng.integers(0, 2, size=10).astype("int32")
    layer(queries.value, context.value, labels)  # build
    grads = _gradients(lambda: keras.ops.sum(layer(queries.value, context.value, labels) ** 2),
                       [queries, context])
    assert all(np.abs(g).sum() > 0 for g in grads)


def _gradients(loss_fn, variables):
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def pure(values):
            for var, value in zip(variables, values):
                var.assign(value)
            return loss_fn()

        return [np.asarray(g) for g in jax.grad(pure)([v.value for v in variables])]
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn()
        return [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, variables)]
    loss = loss_fn()
    loss.backward()
    return [v.value.grad.cpu().numpy() for v in variables]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_neighbors": 0}, "num_neighbors"),
        ({"num_classes": 0}, "num_classes"),
        ({"hidden_dim": -1}, "hidden_dim"),
        ({"dropout": 1.0}, "dropout"),
        ({"value_dropout": -0.1}, "value_dropout"),
        ({"num_candidates": 0}, "num_candidates"),
        ({"search_chunk_size": 2.5}, "search_chunk_size"),
    ],
)
def test_retrieval_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RetrievalAttention(**kwargs)


def test_retrieval_shape_errors(rng):
    queries = rng.normal(size=(4, 3)).astype("float32")
    with pytest.raises(ValueError, match="same known last axis"):
        RetrievalAttention(num_neighbors=2)(queries, np.zeros((6, 5), "float32"), np.zeros(6))
    with pytest.raises(ValueError, match="rank 2"):
        RetrievalAttention(num_neighbors=2)(queries[0], np.zeros((6, 3), "float32"), np.zeros(6))
    with pytest.raises(ValueError, match="context_labels"):
        RetrievalAttention(num_neighbors=2)(queries, np.zeros((6, 3), "float32"),
                                            np.zeros((6, 2)))
    with pytest.raises(ValueError, match="one label per context row"):
        RetrievalAttention(num_neighbors=2)(queries, np.zeros((6, 3), "float32"), np.zeros(5))
    with pytest.raises(ValueError, match="query_index"):
        RetrievalAttention(num_neighbors=2)(queries, np.zeros((6, 3), "float32"), np.zeros(6),
                                            query_index=np.zeros((4, 1), "int32"))
    with pytest.raises(ValueError, match="context_squared_norms"):
        RetrievalAttention(num_neighbors=2)(queries, np.zeros((6, 3), "float32"), np.zeros(6),
                                            context_squared_norms=np.zeros((6, 1), "float32"))
    with pytest.raises(ValueError, match="one squared norm per context row"):
        RetrievalAttention(num_neighbors=2)(queries, np.zeros((6, 3), "float32"), np.zeros(6),
                                            context_squared_norms=np.zeros(5, "float32"))
    with pytest.raises(ValueError, match="one squared norm per context row"):
        RetrievalAttention(num_neighbors=2).search(
            queries, np.zeros((6, 3), "float32"), context_squared_norms=np.zeros(1, "float32")
        )
