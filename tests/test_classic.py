"""MultiHeadAttention against a NumPy reference, fused vs explicit paths, masks, errors."""

import keras
import numpy as np
import pytest
from keras import ops

from tabattn.layers import MultiHeadAttention


def _np(x):
    return keras.ops.convert_to_numpy(x)


def reference_mha(layer, query, key, value, mask=None):
    """Multi-head attention in NumPy from the layer's own weights."""
    def project(dense, x):
        bias = _np(dense.bias) if dense.bias is not None else 0.0
        return np.einsum("btd,dhk->bthk", x, _np(dense.kernel)) + bias

    q, k, v = project(layer.query_dense, query), project(layer.key_dense, key), project(
        layer.value_dense, value
    )
    logits = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(layer.head_dim)
    if mask is not None:
        mask = np.broadcast_to(mask[:, None], logits.shape)
        logits = np.where(mask, logits, -np.inf)
    with np.errstate(invalid="ignore"):
        probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs = probs / probs.sum(axis=-1, keepdims=True)
    probs = np.nan_to_num(probs)  # fully masked rows: zeros
    context = np.einsum("bhqk,bkhd->bqhd", probs, v)
    out = np.einsum("bqhd,hde->bqe", context, _np(layer.output_dense.kernel))
    return out + _np(layer.output_dense.bias), probs


@pytest.fixture
def inputs(rng):
    query = rng.normal(size=(3, 4, 6)).astype("float32")
    key = rng.normal(size=(3, 5, 7)).astype("float32")
    value = rng.normal(size=(3, 5, 9)).astype("float32")
    return query, key, value


def test_matches_numpy_reference_without_mask(inputs):
    query, key, value = inputs
    layer = MultiHeadAttention(num_heads=2, embedding_dim=8)
    fused = layer(query, key, value)
    explicit, scores = layer(query, key, value, return_attention_scores=True)
    expected, expected_probs = reference_mha(layer, query, key, value)
    assert fused.shape == (3, 4, 8) and scores.shape == (3, 2, 4, 5)
    np.testing.assert_allclose(_np(fused), expected, atol=1e-5)
    np.testing.assert_allclose(_np(explicit), expected, atol=1e-5)
    np.testing.assert_allclose(_np(scores), expected_probs, atol=1e-6)
    np.testing.assert_allclose(_np(scores).sum(-1), 1.0, atol=1e-6)


def test_matches_numpy_reference_with_mask_and_fully_masked_rows(inputs, rng):
    query, key, value = inputs
    mask = rng.random((3, 4, 5)) > 0.4
    mask[0, 1, :] = False  # a query that may attend to nothing
    layer = MultiHeadAttention(num_heads=4, embedding_dim=8)
    fused = _np(layer(query, key, value, attention_mask=mask))
    explicit, scores = layer(query, key, value, attention_mask=mask, return_attention_scores=True)
    expected, expected_probs = reference_mha(layer, query, key, value, mask)
    assert np.isfinite(fused).all()
    np.testing.assert_allclose(fused, expected, atol=1e-5)
    np.testing.assert_allclose(_np(explicit), expected, atol=1e-5)
    np.testing.assert_allclose(_np(scores), expected_probs, atol=1e-6)
    # A fully masked query gets zero context: its output is the output bias alone.
    np.testing.assert_allclose(fused[0, 1], _np(layer.output_dense.bias), atol=1e-6)
    np.testing.assert_array_equal(_np(scores)[0, :, 1], 0.0)


def test_key_padding_mask_of_rank_2(inputs):
    query, key, value = inputs
    padding = np.array([[True] * 5, [True, True, False, False, False], [True] * 4 + [False]])
    layer = MultiHeadAttention(num_heads=2, embedding_dim=8)
    out = layer(query, key, value, attention_mask=padding)
    expected, _ = reference_mha(layer, query, key, value, padding[:, None, :])
    np.testing.assert_allclose(_np(out), expected, atol=1e-5)


def test_self_attention_defaults_key_and_value_to_query(inputs):
    query, _, _ = inputs
    layer = MultiHeadAttention(num_heads=3, embedding_dim=6)
    out = layer(query)
    expected, _ = reference_mha(layer, query, query, query)
    np.testing.assert_allclose(_np(out), expected, atol=1e-5)


def test_dropout_only_in_training(inputs):
    query, key, value = inputs
    layer = MultiHeadAttention(num_heads=2, embedding_dim=8, dropout=0.5)
    inference = _np(layer(query, key, value, training=False))
    expected, _ = reference_mha(layer, query, key, value)
    np.testing.assert_allclose(inference, expected, atol=1e-5)
    training = _np(layer(query, key, value, training=True))
    assert not np.allclose(training, expected, atol=1e-3)


def test_mixed_precision_softmax_in_float32(inputs):
    keras.config.set_dtype_policy("mixed_float16")
    query, key, value = inputs
    layer = MultiHeadAttention(num_heads=2, embedding_dim=8)
    out, scores = layer(query, key, value, return_attention_scores=True)
    assert layer.query_dense.kernel.dtype == "float32"
    assert ops.dtype(out) == "float16" and ops.dtype(scores) == "float32"
    assert ops.dtype(layer(query, key, value)) == "float16"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_heads=3, embedding_dim=8), "divisible"),
        (dict(num_heads=0, embedding_dim=8), "num_heads"),
        (dict(num_heads=2, embedding_dim=-4), "embedding_dim"),
        (dict(num_heads=2, embedding_dim=8, dropout=1.0), "dropout"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiHeadAttention(**kwargs)


def test_wrong_rank_is_a_clear_error():
    layer = MultiHeadAttention(num_heads=2, embedding_dim=8)
    with pytest.raises(ValueError, match="rank 3"):
        layer(np.zeros((2, 8), "float32"))
