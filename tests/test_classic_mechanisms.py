"""DotProductAttention, RelativePositionalAttention, BahdanauAttention and LuongAttention
against NumPy references, with and without masks, plus their argument checks."""

import keras
import numpy as np
import pytest
from keras import ops

from tabattn.layers import (
    BahdanauAttention,
    DotProductAttention,
    LuongAttention,
    RelativePositionalAttention,
)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def masked_softmax(logits, mask=None, axis=-1):
    """Softmax over ``axis`` where False entries get 0; a fully masked row is all zeros."""
    if mask is not None:
        logits = np.where(mask, logits, -np.inf)
    with np.errstate(invalid="ignore"):
        exp = np.exp(logits - logits.max(axis=axis, keepdims=True))
        probs = exp / exp.sum(axis=axis, keepdims=True)
    return np.nan_to_num(probs)


def _dense(layer):
    bias = _np(layer.bias) if layer.bias is not None else 0.0
    return lambda x: x @ _np(layer.kernel) + bias


# --- DotProductAttention ------------------------------------------------------------------
def reference_dot_product(query, key, value, mask=None, scale=1.0):
    """(outputs, probs) for rank-3 queries; mask broadcastable to (batch, Tq, Tv)."""
    logits = np.einsum("bqd,bkd->bqk", query, key) * scale
    if mask is not None:
        mask = np.broadcast_to(mask, logits.shape)
    probs = masked_softmax(logits, mask)
    return probs @ value, probs


@pytest.fixture
def qkv(rng):
    query = rng.normal(size=(3, 4, 6)).astype("float32")
    key = rng.normal(size=(3, 5, 6)).astype("float32")
    value = rng.normal(size=(3, 5, 6)).astype("float32")
    return query, key, value


@pytest.mark.parametrize("use_scale", [False, True])
def test_dot_product_matches_reference(qkv, use_scale):
    query, key, value = qkv
    layer = DotProductAttention(use_scale=use_scale)
    fused = layer(query, key, value)
    explicit, scores = layer(query, key, value, return_attention_scores=True)
    scale = 1 / np.sqrt(6) if use_scale else 1.0
    expected, expected_probs = reference_dot_product(query, key, value, scale=scale)
    assert fused.shape == (3, 4, 6) and scores.shape == (3, 4, 5)
    np.testing.assert_allclose(_np(fused), expected, atol=1e-5)
    np.testing.assert_allclose(_np(explicit), expected, atol=1e-5)
    np.testing.assert_allclose(_np(scores), expected_probs, atol=1e-6)


@pytest.mark.parametrize("value_dim", [6, 9])  # 9: values wider than keys (explicit path)
def test_dot_product_with_mask_and_fully_masked_rows(qkv, rng, value_dim):
    query, key, _ = qkv
    value = rng.normal(size=(3, 5, value_dim)).astype("float32")
    mask = rng.random((3, 4, 5)) > 0.4
    mask[1, 2, :] = False  # a query that may attend to nothing
    layer = DotProductAttention(use_scale=True)
    outputs = _np(layer(query, key, value, mask=mask))
    explicit, scores = layer(query, key, value, mask=mask, return_attention_scores=True)
    expected, expected_probs = reference_dot_product(query, key, value, mask, 1 / np.sqrt(6))
    assert outputs.shape == (3, 4, value_dim) and np.isfinite(outputs).all()
    np.testing.assert_allclose(outputs, expected, atol=1e-5)
    np.testing.assert_allclose(_np(explicit), expected, atol=1e-5)
    np.testing.assert_allclose(_np(scores), expected_probs, atol=1e-6)
    np.testing.assert_array_equal(outputs[1, 2], 0.0)
    np.testing.assert_array_equal(_np(scores)[1, 2], 0.0)


def test_dot_product_rank_2_query_with_padding_mask(qkv, rng):
    _, key, value = qkv
    state = rng.normal(size=(3, 6)).astype("float32")
    padding = np.array([[True] * 5, [True, True, False, False, False], [False] * 5])
    layer = DotProductAttention()
    fused = _np(layer(state, key, value, mask=padding))
    explicit, scores = layer(state, key, value, mask=padding, return_attention_scores=True)
    expected, expected_probs = reference_dot_product(
        state[:, None], key, value, padding[:, None, :]
    )
    assert fused.shape == (3, 6) and scores.shape == (3, 5)
    np.testing.assert_allclose(fused, expected[:, 0], atol=1e-5)
    np.testing.assert_allclose(_np(explicit), expected[:, 0], atol=1e-5)
    np.testing.assert_allclose(_np(scores), expected_probs[:, 0], atol=1e-6)
    np.testing.assert_array_equal(fused[2], 0.0)


def test_dot_product_value_defaults_to_key(qkv):
    query, key, _ = qkv
    expected, _ = reference_dot_product(query, key, key)
    np.testing.assert_allclose(_np(DotProductAttention()(query, key)), expected, atol=1e-5)


def test_dot_product_dropout_only_in_training(qkv):
    query, key, value = qkv
    layer = DotProductAttention(dropout=0.5)
    expected, _ = reference_dot_product(query, key, value)
    np.testing.assert_allclose(_np(layer(query, key, value, training=False)), expected, atol=1e-5)
    assert not np.allclose(_np(layer(query, key, value, training=True)), expected, atol=1e-3)


def test_dot_product_mixed_precision(qkv):
    keras.config.set_dtype_policy("mixed_float16")
    query, key, value = qkv
    layer = DotProductAttention(use_scale=True)
    outputs, scores = layer(query, key, value, return_attention_scores=True)
    assert ops.dtype(outputs) == "float16" and ops.dtype(scores) == "float32"
    assert ops.dtype(layer(query, key, value)) == "float16"
    expected, _ = reference_dot_product(query, key, value, scale=1 / np.sqrt(6))
    np.testing.assert_allclose(_np(outputs), expected, atol=1e-2)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(use_scale="yes"), "use_scale"), (dict(dropout=1.0), "dropout")],
)
def test_dot_product_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DotProductAttention(**kwargs)


@pytest.mark.parametrize(
    "shapes, message",
    [
        (((2, 4, 6), (2, 5, 7)), "same last dimension"),
        (((2, 6), (2, 6)), "`key` of rank 3"),
        (((2, 1, 4, 6), (2, 5, 6)), "`query` of rank 2 or 3"),
    ],
)
def test_dot_product_shape_errors(shapes, message):
    query, key = (np.zeros(shape, "float32") for shape in shapes)
    with pytest.raises(ValueError, match=message):
        DotProductAttention()(query, key)


# --- RelativePositionalAttention ----------------------------------------------------------
def reference_relative(layer, x, mask=None, key=None, value=None):
    """Shaw et al. §3, written with a loop over (query, key) pairs for the relative terms."""
    key = x if key is None else key
    value = key if value is None else value

    def project(dense, tokens):
        bias = _np(dense.bias) if dense.bias is not None else 0.0
        return np.einsum("btd,dhk->bthk", tokens, _np(dense.kernel)) + bias

    q = project(layer.query_dense, x)
    k, v = project(layer.key_dense, key), project(layer.value_dense, value)
    table_k, table_v = _np(layer.relative_key_embeddings), _np(layer.relative_value_embeddings)
    clip = layer.max_relative_position
    rel_k = np.zeros((x.shape[1], key.shape[1], layer.head_dim), "float32")
    rel_v = np.zeros_like(rel_k)
    for i in range(x.shape[1]):
        for j in range(key.shape[1]):
            row = min(max(j - i, -clip), clip) + clip
            rel_k[i, j], rel_v[i, j] = table_k[row], table_v[row]
    logits = np.einsum("bihd,bjhd->bhij", q, k) + np.einsum("bihd,ijd->bhij", q, rel_k)
    logits /= np.sqrt(layer.head_dim)
    if mask is not None:
        mask = mask[:, None, :] if mask.ndim == 2 else mask  # padding -> (batch, Tq, Tv)
        mask = np.broadcast_to(mask[:, None], logits.shape)
    probs = masked_softmax(logits, mask)
    context = np.einsum("bhij,bjhd->bihd", probs, v) + np.einsum("bhij,ijd->bihd", probs, rel_v)
    out = np.einsum("bihd,hde->bie", context, _np(layer.output_dense.kernel))
    return out + _np(layer.output_dense.bias), probs


@pytest.fixture
def tokens(rng):
    return rng.normal(size=(3, 6, 5)).astype("float32")


def _randomise_relative_tables(layer, rng):
    # Glorot-initialised tables are small; larger ones make the relative terms visible.
    for table in (layer.relative_key_embeddings, layer.relative_value_embeddings):
        table.assign(rng.normal(size=table.shape).astype("float32"))


def test_relative_cross_attention_matches_reference(rng):
    # The classic call: 4 query positions attend to 7 key/value positions of other sizes.
    query = rng.normal(size=(3, 4, 5)).astype("float32")
    key = rng.normal(size=(3, 7, 6)).astype("float32")
    value = rng.normal(size=(3, 7, 3)).astype("float32")
    mask = rng.random((3, 7)) > 0.3
    mask[:, 0] = True
    layer = RelativePositionalAttention(8, max_relative_position=2, num_heads=2)
    layer.build(query.shape, key.shape, value.shape)
    _randomise_relative_tables(layer, rng)
    outputs, scores = layer(query, key, value, mask=mask, return_attention_scores=True)
    expected, expected_probs = reference_relative(layer, query, mask, key, value)
    assert outputs.shape == (3, 4, 8) and scores.shape == (3, 2, 4, 7)
    np.testing.assert_allclose(_np(outputs), expected, atol=1e-5)
    np.testing.assert_allclose(_np(scores), expected_probs, atol=1e-6)
    with pytest.raises(ValueError, match="`value` was given without `key`"):
        layer(query, value=value)


def test_relative_classic_call_on_one_sequence_is_self_attention(tokens):
    layer = RelativePositionalAttention(8, max_relative_position=2, num_heads=2)
    np.testing.assert_allclose(_np(layer(tokens, tokens, tokens)), _np(layer(tokens)),
                               atol=1e-6)


@pytest.mark.parametrize("num_heads, clip", [(1, 10), (2, 2)])  # clip=2 < seq_len - 1
def test_relative_matches_reference_without_mask(tokens, rng, num_heads, clip):
    layer = RelativePositionalAttention(8, max_relative_position=clip, num_heads=num_heads)
    layer.build(tokens.shape)
    _randomise_relative_tables(layer, rng)
    outputs, scores = layer(tokens, return_attention_scores=True)
    expected, expected_probs = reference_relative(layer, tokens)
    assert outputs.shape == (3, 6, 8) and scores.shape == (3, num_heads, 6, 6)
    assert layer.relative_key_embeddings.shape == (2 * clip + 1, 8 // num_heads)
    np.testing.assert_allclose(_np(outputs), expected, atol=1e-5)
    np.testing.assert_allclose(_np(scores), expected_probs, atol=1e-6)
    np.testing.assert_allclose(_np(layer(tokens)), expected, atol=1e-5)


def test_relative_position_breaks_permutation_equivariance(tokens, rng):
    layer = RelativePositionalAttention(8, max_relative_position=2, num_heads=2)
    layer.build(tokens.shape)
    _randomise_relative_tables(layer, rng)
    order = np.array([3, 0, 5, 1, 4, 2])
    permuted = _np(layer(tokens[:, order]))
    assert not np.allclose(permuted, _np(layer(tokens))[:, order], atol=1e-3)


@pytest.mark.parametrize("kind", ["padding", "full"])
def test_relative_with_masks_and_fully_masked_rows(tokens, rng, kind):
    layer = RelativePositionalAttention(8, max_relative_position=2, num_heads=2)
    layer.build(tokens.shape)
    _randomise_relative_tables(layer, rng)
    if kind == "padding":
        mask = np.array([[True] * 6, [True] * 4 + [False] * 2, [False] * 6])
        empty = (2, slice(None))  # every query of row 2
    else:
        mask = rng.random((3, 6, 6)) > 0.4
        mask[0, 3, :] = False
        empty = (0, 3)
    outputs, scores = layer(tokens, mask=mask, return_attention_scores=True)
    expected, expected_probs = reference_relative(layer, tokens, mask)
    outputs = _np(outputs)
    assert np.isfinite(outputs).all()
    np.testing.assert_allclose(outputs, expected, atol=1e-5)
    np.testing.assert_allclose(_np(scores), expected_probs, atol=1e-6)
    np.testing.assert_allclose(
        outputs[empty], np.broadcast_to(_np(layer.output_dense.bias), outputs[empty].shape),
        atol=1e-6,
    )


def test_relative_uses_and_passes_on_a_keras_padding_mask():
    ids = np.array([[3, 1, 4, 0, 0, 0], [2, 7, 1, 8, 2, 8], [1, 6, 1, 8, 0, 3]], "int32")
    inputs = keras.Input((6,), dtype="int32")
    embedded = keras.layers.Embedding(10, 5, mask_zero=True)(inputs)
    attention = RelativePositionalAttention(8, max_relative_position=2, num_heads=2)
    pooled = keras.layers.GlobalAveragePooling1D()(attention(embedded))
    model = keras.Model(inputs, [attention.output, pooled])
    outputs, mean = (_np(t) for t in model(ids))
    vectors = _np(model.layers[1](ids))
    expected, _ = reference_relative(attention, vectors, ids != 0)
    np.testing.assert_allclose(outputs, expected, atol=1e-5)
    # GlobalAveragePooling1D saw the padding mask: the mean is over the 3 real tokens.
    np.testing.assert_allclose(mean[0], outputs[0, :3].mean(0), atol=1e-5)


def test_relative_dropout_only_in_training(tokens):
    layer = RelativePositionalAttention(8, max_relative_position=2, num_heads=2, dropout=0.5)
    inference = _np(layer(tokens, training=False))
    expected, _ = reference_relative(layer, tokens)
    np.testing.assert_allclose(inference, expected, atol=1e-5)
    assert not np.allclose(_np(layer(tokens, training=True)), expected, atol=1e-3)


def test_relative_mixed_precision(tokens):
    keras.config.set_dtype_policy("mixed_bfloat16")
    layer = RelativePositionalAttention(8, max_relative_position=2, num_heads=2)
    outputs, scores = layer(tokens, return_attention_scores=True)
    assert ops.dtype(outputs) == "bfloat16" and ops.dtype(scores) == "float32"
    assert all(w.dtype == "float32" for w in layer.weights)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(embedding_dim=8, num_heads=3), "divisible"),
        (dict(embedding_dim=0), "embedding_dim"),
        (dict(embedding_dim=8, max_relative_position=0), "max_relative_position"),
        (dict(embedding_dim=8, num_heads=-1), "num_heads"),
        (dict(embedding_dim=8, dropout=-0.1), "dropout"),
    ],
)
def test_relative_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RelativePositionalAttention(**kwargs)


def test_relative_wrong_rank_is_a_clear_error():
    with pytest.raises(ValueError, match="rank 3"):
        RelativePositionalAttention(8)(np.zeros((2, 8), "float32"))


# --- BahdanauAttention and LuongAttention -------------------------------------------------
def reference_context(values, logits, mask=None):
    """(context, weights (batch, T, 1)) from scores (batch, T)."""
    weights = masked_softmax(logits, mask)[..., None]
    return (weights * values).sum(axis=1), weights


def reference_bahdanau(layer, query, values, mask=None):
    hidden = np.tanh(_dense(layer.query_dense)(query)[:, None] + _dense(layer.values_dense)(values))
    return reference_context(values, _dense(layer.score_dense)(hidden)[..., 0], mask)


def reference_luong(layer, query, values, mask=None):
    if layer.score == "dot":
        logits = np.einsum("bd,btd->bt", query, values)
    elif layer.score == "general":
        logits = np.einsum("bd,btd->bt", query, _dense(layer.values_dense)(values))
    else:
        query_t = np.repeat(query[:, None], values.shape[1], axis=1)
        hidden = np.tanh(_dense(layer.concat_dense)(np.concatenate([query_t, values], -1)))
        logits = _dense(layer.score_dense)(hidden)[..., 0]
    return reference_context(values, logits, mask)


def _make(name):
    return {
        "bahdanau": (lambda: BahdanauAttention(units=5), reference_bahdanau),
        "dot": (lambda: LuongAttention("dot"), reference_luong),
        "general": (lambda: LuongAttention("general"), reference_luong),
        "concat": (lambda: LuongAttention("concat", units=5), reference_luong),
    }[name]


SCORES = ["bahdanau", "dot", "general", "concat"]


@pytest.fixture
def query_values(rng):
    query = rng.normal(size=(3, 6)).astype("float32")
    values = rng.normal(size=(3, 4, 6)).astype("float32")
    return query, values


@pytest.mark.parametrize("name", SCORES)
def test_additive_and_multiplicative_match_reference(rng, name):
    make, reference = _make(name)
    query = rng.normal(size=(3, 6)).astype("float32")
    # Values of another size than the query, except for the dot score, which needs equal ones.
    values = rng.normal(size=(3, 4, 6 if name == "dot" else 7)).astype("float32")
    layer = make()
    context, weights = layer(query, values)
    expected_context, expected_weights = reference(layer, query, values)
    assert context.shape == (3, values.shape[-1]) and weights.shape == (3, 4, 1)
    np.testing.assert_allclose(_np(context), expected_context, atol=1e-5)
    np.testing.assert_allclose(_np(weights), expected_weights, atol=1e-6)
    np.testing.assert_allclose(_np(weights).sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("name", SCORES)
def test_additive_and_multiplicative_with_mask(query_values, name):
    make, reference = _make(name)
    query, values = query_values
    mask = np.array([[True] * 4, [False, True, False, True], [False] * 4])
    layer = make()
    context, weights = layer(query, values, mask=mask)
    expected_context, expected_weights = reference(layer, query, values, mask)
    context, weights = _np(context), _np(weights)
    np.testing.assert_allclose(context, expected_context, atol=1e-5)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-6)
    np.testing.assert_array_equal(weights[1, [0, 2]], 0.0)
    np.testing.assert_array_equal(context[2], 0.0)  # fully masked row: zeros, not NaN
    np.testing.assert_array_equal(weights[2], 0.0)


@pytest.mark.parametrize("name", ["bahdanau", "dot", "concat"])
def test_additive_and_multiplicative_mixed_precision(query_values, name):
    keras.config.set_dtype_policy("mixed_float16")
    query, values = query_values
    layer = _make(name)[0]()
    context, weights = layer(query, values)
    assert ops.dtype(context) == "float16" and ops.dtype(weights) == "float32"
    assert all(w.dtype == "float32" for w in layer.weights)
    np.testing.assert_allclose(_np(weights).sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: BahdanauAttention(units=0), "units"),
        (lambda: LuongAttention(score="additive"), "score"),
        (lambda: LuongAttention(score="concat"), "units"),
        (lambda: LuongAttention(score="general", units=-2), "units"),
    ],
)
def test_additive_and_multiplicative_invalid_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "layer, shapes, message",
    [
        (LuongAttention("dot"), ((2, 3), (2, 5, 4)), "query_dim == value_dim"),
        (BahdanauAttention(4), ((2, 1, 3), (2, 5, 4)), "`query` of rank 2"),
        (LuongAttention("general"), ((2, 3), (2, 4)), "`values` of rank 3"),
    ],
)
def test_additive_and_multiplicative_shape_errors(layer, shapes, message):
    query, values = (np.zeros(shape, "float32") for shape in shapes)
    with pytest.raises(ValueError, match=message):
        layer(query, values)
