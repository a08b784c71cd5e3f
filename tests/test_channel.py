"""Channel attention layers against NumPy references, in both data formats; errors."""

import keras
import numpy as np
import pytest
from keras import ops

from tabattn.layers import (
    ChannelAttention,
    ConvChannelAttention,
    MultiHeadChannelAttention,
    SqueezeExcitation1D,
)

FORMATS = ["channels_last", "channels_first"]


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# --- NumPy references, from the layers' own weights, on (batch, steps, channels) -----------
def reference_channel_attention(layer, x):
    q = x @ _np(layer.query_dense.kernel) + _np(layer.query_dense.bias)
    k = x @ _np(layer.key_dense.kernel)
    v = x @ _np(layer.value_dense.kernel) + _np(layer.value_dense.bias)
    scores = _softmax(q @ k.transpose(0, 2, 1) / np.sqrt(layer.attention_dim))
    return scores @ v, scores


def reference_multi_head(layer, x):
    def project(dense):
        bias = _np(dense.bias) if dense.bias is not None else 0.0
        return np.einsum("btc,chk->bthk", x, _np(dense.kernel)) + bias

    q, k, v = project(layer.query_dense), project(layer.key_dense), project(layer.value_dense)
    scores = _softmax(np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(layer.head_dim))
    context = np.einsum("bhqk,bkhd->bqhd", scores, v)
    out = np.einsum("bqhd,hdc->bqc", context, _np(layer.output_dense.kernel))
    return out + _np(layer.output_dense.bias), scores


def reference_squeeze_excitation(layer, x):
    squeezed = x.mean(axis=1)
    hidden = np.maximum(squeezed @ _np(layer.squeeze_dense.kernel)
                        + _np(layer.squeeze_dense.bias), 0)
    gates = 1 / (1 + np.exp(-(hidden @ _np(layer.excite_dense.kernel)
                               + _np(layer.excite_dense.bias))))
    return x * gates[:, None, :]


def _in_format(x, data_format):
    """``x`` given as (batch, steps, channels), in ``data_format``'s layout."""
    return x if data_format == "channels_last" else x.transpose(0, 2, 1)


@pytest.fixture
def feature_map(rng):
    return rng.normal(size=(3, 7, 5)).astype("float32")  # (batch, steps, channels)


# --- numbers ------------------------------------------------------------------------------
@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("attention_dim", [3, 8])  # fewer and more than the 5 channels
def test_channel_attention_matches_reference(data_format, attention_dim, feature_map):
    layer = ChannelAttention(attention_dim, data_format=data_format)
    x = _in_format(feature_map, data_format)
    fused = layer(x)
    explicit, scores = layer(x, return_attention_scores=True)
    expected, expected_scores = reference_channel_attention(layer, feature_map)
    expected = _in_format(expected, data_format)
    assert tuple(fused.shape) == x.shape and tuple(scores.shape) == (3, 7, 7)
    np.testing.assert_allclose(_np(fused), expected, atol=1e-5)
    np.testing.assert_allclose(_np(explicit), expected, atol=1e-5)
    np.testing.assert_allclose(_np(scores), expected_scores, atol=1e-6)


@pytest.mark.parametrize("data_format", FORMATS)
def test_multi_head_channel_attention_matches_reference(data_format, feature_map):
    layer = MultiHeadChannelAttention(attention_dim=6, num_heads=3, data_format=data_format)
    x = _in_format(feature_map, data_format)
    fused = layer(x)
    explicit, scores = layer(x, return_attention_scores=True)
    expected, expected_scores = reference_multi_head(layer, feature_map)
    expected = _in_format(expected, data_format)
    assert tuple(fused.shape) == x.shape and tuple(scores.shape) == (3, 3, 7, 7)
    np.testing.assert_allclose(_np(fused), expected, atol=1e-5)
    np.testing.assert_allclose(_np(explicit), expected, atol=1e-5)
    np.testing.assert_allclose(_np(scores), expected_scores, atol=1e-6)


@pytest.mark.parametrize("data_format", FORMATS)
def test_squeeze_excitation_matches_reference(data_format, feature_map):
    layer = SqueezeExcitation1D(reduction_ratio=2, data_format=data_format)
    x = _in_format(feature_map, data_format)
    outputs = _np(layer(x))
    expected = _in_format(reference_squeeze_excitation(layer, feature_map), data_format)
    np.testing.assert_allclose(outputs, expected, atol=1e-6)
    assert layer.squeeze_dense.kernel.shape == (5, 2)


@pytest.mark.parametrize(
    "make",
    [
        lambda f: ChannelAttention(4, data_format=f),
        lambda f: MultiHeadChannelAttention(4, 2, data_format=f),
        lambda f: SqueezeExcitation1D(4, data_format=f),
    ],
    ids=["ChannelAttention", "MultiHeadChannelAttention", "SqueezeExcitation1D"],
)
def test_channels_first_is_the_transposed_channels_last(make, feature_map):
    last, first = make("channels_last"), make("channels_first")
    expected = _np(last(feature_map))
    first.build(feature_map.transpose(0, 2, 1).shape)
    first.set_weights(last.get_weights())
    outputs = _np(first(feature_map.transpose(0, 2, 1)))
    np.testing.assert_allclose(outputs, expected.transpose(0, 2, 1), atol=1e-6)


def test_fewer_channels_than_reduction_ratio(rng):
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    layer = SqueezeExcitation1D()  # reduction_ratio=16 > 3 channels
    outputs = layer(x)
    assert layer.squeeze_dense.kernel.shape == (3, 1)  # a one-unit bottleneck
    np.testing.assert_allclose(_np(outputs), reference_squeeze_excitation(layer, x), atol=1e-6)


def test_conv_channel_attention_is_squeeze_excitation(feature_map):
    layer = ConvChannelAttention(reduction_ratio=2)
    assert isinstance(layer, SqueezeExcitation1D)
    outputs = _np(layer(feature_map))
    np.testing.assert_allclose(
        outputs, reference_squeeze_excitation(layer, feature_map), atol=1e-6
    )
    # Serialised under its own name, so it reloads as the class it was built with.
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is ConvChannelAttention


def test_rows_are_independent(feature_map):
    layer = MultiHeadChannelAttention(4, 2)
    full = _np(layer(feature_map))
    np.testing.assert_allclose(_np(layer(feature_map[1:2])), full[1:2], atol=1e-6)


def test_functional_model_keeps_batch_dimension_unknown():
    inputs = keras.Input((5, 7))
    outputs, scores = MultiHeadChannelAttention(4, 2, data_format="channels_first")(
        inputs, return_attention_scores=True
    )
    assert tuple(outputs.shape) == (None, 5, 7) and tuple(scores.shape) == (None, 2, 7, 7)
    _, scores = ChannelAttention(4)(inputs, return_attention_scores=True)
    assert tuple(scores.shape) == (None, 5, 5)


def test_mixed_precision_softmax_in_float32(feature_map):
    keras.config.set_dtype_policy("mixed_float16")
    for layer in (ChannelAttention(3), MultiHeadChannelAttention(4, 2)):
        outputs, scores = layer(feature_map, return_attention_scores=True)
        assert ops.dtype(outputs) == "float16" and ops.dtype(scores) == "float32"
        assert ops.dtype(layer(feature_map)) == "float16"
        assert all(w.dtype == "float32" for w in layer.weights)


# --- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ChannelAttention(0), "attention_dim"),
        (lambda: ChannelAttention(4, num_channels=0), "num_channels"),
        (lambda: ChannelAttention(4, data_format="NCW"), "data_format"),
        (lambda: MultiHeadChannelAttention(5, 2), "divisible"),
        (lambda: MultiHeadChannelAttention(4, 0), "num_heads"),
        (lambda: SqueezeExcitation1D(0), "reduction_ratio"),
        (lambda: ConvChannelAttention(data_format="channels_middle"), "data_format"),
    ],
)
def test_invalid_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("data_format, shape", [("channels_last", (2, 7, 6)),
                                                ("channels_first", (2, 6, 7))])
def test_num_channels_mismatch(data_format, shape):
    for layer in (ChannelAttention(4, num_channels=5, data_format=data_format),
                  MultiHeadChannelAttention(4, 2, num_channels=5, data_format=data_format)):
        with pytest.raises(ValueError, match="num_channels=5, but the input has 6 channels"):
            layer(np.zeros(shape, "float32"))


def test_wrong_rank_is_a_clear_error():
    for layer in (ChannelAttention(4), MultiHeadChannelAttention(4, 2), SqueezeExcitation1D()):
        with pytest.raises(ValueError, match="rank 3"):
            layer(np.zeros((2, 8), "float32"))
