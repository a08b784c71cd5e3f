"""TabularAttention against a NumPy reference; feature equivariance; context; errors."""

import keras
import numpy as np
import pytest
from test_row import reference_mha

from tabattn.layers import TabularAttention


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _layer_norm(norm, x):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + norm.epsilon) * _np(norm.gamma) + _np(norm.beta)


def _ffn(ffn, x):
    hidden, output = ffn.layers
    h = np.maximum(x @ _np(hidden.kernel) + _np(hidden.bias), 0.0)
    return h @ _np(output.kernel) + _np(output.bias)


def _tokens(layer, x):
    if x.ndim == 2:
        tokenizer = layer.tokenizer
        return x[..., None] * _np(tokenizer.numeric_weight) + _np(tokenizer.numeric_bias)
    if layer.input_projection is not None:
        dense = layer.input_projection
        return x @ _np(dense.kernel) + _np(dense.bias)
    return x


def _feature_sublayers(layer, x):
    h = _layer_norm(layer.feature_norm, x)
    attended, probs = reference_mha(layer.feature_attention, h, h, h)
    x = x + attended
    return x + _ffn(layer.feature_ffn, _layer_norm(layer.feature_ffn_norm, x)), probs


def reference_tabular(layer, x, context=None):
    """The block in NumPy (no dropout); returns outputs, feature and sample probabilities."""
    x, feature_probs = _feature_sublayers(layer, _tokens(layer, x))
    columns = _layer_norm(layer.sample_norm, x.transpose(1, 0, 2))  # (features, batch, d)
    if context is None:
        attended, sample_probs = reference_mha(layer.sample_attention, columns, columns, columns)
    else:
        stored, _ = _feature_sublayers(layer, _tokens(layer, context))
        stored = _layer_norm(layer.sample_norm, stored.transpose(1, 0, 2))
        outs, probs = [], []
        for i in range(columns.shape[1]):  # each row: keys are the context and the row
            keys = np.concatenate([stored, columns[:, i : i + 1]], axis=1)
            out, p = reference_mha(layer.sample_attention, columns[:, i : i + 1], keys, keys)
            outs.append(out)
            probs.append(p)
        attended, sample_probs = np.concatenate(outs, axis=1), np.concatenate(probs, axis=2)
    x = x + attended.transpose(1, 0, 2)
    x = x + _ffn(layer.sample_ffn, _layer_norm(layer.sample_ffn_norm, x))
    return x, feature_probs, sample_probs.transpose(2, 1, 0, 3)


# Shapes are shared by the tests (batch 4, 3 features, d_model 8, 9 context rows): JAX
# compiles each eager op once per shape, so new shapes cost more than new tests.
@pytest.mark.parametrize("shape", [(4, 3), (4, 3, 4), (4, 3, 8)], ids=["table", "d", "d_model"])
def test_matches_numpy_reference(rng, shape):
    x = rng.normal(size=shape).astype("float32")
    layer = TabularAttention(num_heads=2, d_model=8)
    outputs = layer(x)
    explicit, scores = layer(x, return_attention_scores=True)
    expected, feature_probs, sample_probs = reference_tabular(layer, x)
    assert (layer.input_projection is None) == (len(shape) == 2 or shape[-1] == 8)
    assert outputs.shape == (4, 3, 8)
    assert scores["feature"].shape == (4, 2, 3, 3) and scores["sample"].shape == (4, 2, 3, 4)
    np.testing.assert_allclose(_np(outputs), expected, atol=1e-4)
    np.testing.assert_allclose(_np(explicit), expected, atol=1e-4)
    np.testing.assert_allclose(_np(scores["feature"]), feature_probs, atol=1e-5)
    np.testing.assert_allclose(_np(scores["sample"]), sample_probs, atol=1e-5)


def test_block_is_permutation_equivariant_over_features(rng):
    x = rng.normal(size=(4, 3, 4)).astype("float32")
    layer = TabularAttention(num_heads=2, d_model=8)
    order = np.array([2, 0, 1])
    outputs, scores = layer(x, return_attention_scores=True)
    permuted, permuted_scores = layer(x[:, order], return_attention_scores=True)
    np.testing.assert_allclose(_np(permuted), _np(outputs)[:, order], atol=1e-5)
    np.testing.assert_allclose(
        _np(permuted_scores["feature"]), _np(scores["feature"])[:, :, order][..., order],
        atol=1e-6,
    )
    np.testing.assert_allclose(
        _np(permuted_scores["sample"]), _np(scores["sample"])[:, :, order], atol=1e-6
    )


def test_without_context_a_row_depends_on_the_batch(rng):
    x = rng.normal(size=(4, 3)).astype("float32")
    layer = TabularAttention(num_heads=2, d_model=8)
    changed = x.copy()
    changed[1:] += 1.0
    assert not np.allclose(_np(layer(x))[0], _np(layer(changed))[0], atol=1e-4)


def test_with_context_matches_reference_and_is_batch_invariant(rng):
    x = rng.normal(size=(4, 3)).astype("float32")
    context = rng.normal(size=(9, 3)).astype("float32")
    layer = TabularAttention(num_heads=2, d_model=8)
    outputs, scores = layer(x, context=context, return_attention_scores=True)
    expected, _, sample_probs = reference_tabular(layer, x, context)
    assert scores["sample"].shape == (4, 2, 3, 10)
    np.testing.assert_allclose(_np(outputs), expected, atol=1e-4)
    np.testing.assert_allclose(_np(scores["sample"]), sample_probs, atol=1e-5)
    fused = _np(layer(x, context=context))
    np.testing.assert_allclose(fused, expected, atol=1e-4)
    # Row 0 keeps its output when the rest of the batch changes (same shapes: see above).
    changed = x.copy()
    changed[1:] += 1.0
    np.testing.assert_allclose(_np(layer(changed, context=context))[0], fused[0], atol=1e-5)


def test_integer_zero_dropout_rate_is_valid():
    layer = TabularAttention(num_heads=1, d_model=4, dropout_rate=0)
    assert layer.get_config()["dropout_rate"] == 0.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_heads=3, d_model=8), "divisible"),
        (dict(num_heads=0, d_model=8), "num_heads"),
        (dict(num_heads=2, d_model=0), "d_model"),
        (dict(num_heads=2, d_model=8, dropout_rate=1), "dropout_rate"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TabularAttention(**kwargs)


def test_shape_errors():
    layer = TabularAttention(num_heads=2, d_model=8)
    with pytest.raises(ValueError, match="rank 2 or 3"):
        layer(np.zeros((2, 3, 4, 5), "float32"))
    with pytest.raises(ValueError, match="context"):
        layer(np.zeros((2, 3), "float32"), context=np.zeros((5, 4), "float32"))
