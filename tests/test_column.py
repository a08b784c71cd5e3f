"""Column-family layers against NumPy references: ColumnAttention, GRN, VariableSelection."""

import os

import keras
import numpy as np
import pytest
from keras import ops

from tabattn.layers import ColumnAttention, GatedResidualNetwork, VariableSelection


def _np(x):
    return keras.ops.convert_to_numpy(x)


# --- NumPy references, from the layers' own weights ---------------------------------------
def _dense(layer, x):
    out = x @ _np(layer.kernel)
    return out + _np(layer.bias) if layer.bias is not None else out


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def reference_column_attention(layer, x):
    hidden = np.maximum(_dense(layer.hidden_dense, x), 0.0)
    scores = _softmax(_dense(layer.score_dense, hidden))
    return x * scores * x.shape[-1], scores


def grn_params(layer):
    """A GatedResidualNetwork's weights as NumPy arrays: {name: (kernel, bias)}, ..."""
    def pair(dense):
        return None if dense is None else (_np(dense.kernel), _np(dense.bias))

    return dict(
        hidden=pair(layer.hidden_dense),
        context=None if layer.context_dense is None else _np(layer.context_dense.kernel),
        intermediate=pair(layer.intermediate_dense),
        gate=pair(layer.gate_dense),
        value=pair(layer.value_dense),
        skip=pair(layer.skip_dense),
        gamma=_np(layer.layer_norm.gamma),
        beta=_np(layer.layer_norm.beta),
        epsilon=layer.layer_norm.epsilon,
    )


def feature_grn_params(stacked, j):
    """Feature ``j``'s GRN weights from VariableSelection's stacked per-feature GRNs."""
    def pair(name):
        kernel = getattr(stacked, f"{name}_kernel")
        if kernel is None:
            return None
        return _np(kernel)[j], _np(getattr(stacked, f"{name}_bias"))[j]

    params = {name: pair(name) for name in ("hidden", "intermediate", "gate", "value", "skip")}
    return dict(
        params,
        context=None,
        gamma=_np(stacked.gamma)[j],
        beta=_np(stacked.beta)[j],
        epsilon=1e-3,  # keras.layers.LayerNormalization's default, as GRN's layer norm
    )


def reference_grn(params, a, c=None):
    """TFT equations (2) to (5), inference mode (no dropout)."""
    def dense(name, x):
        kernel, bias = params[name]
        return x @ kernel + bias

    hidden = dense("hidden", a)
    if c is not None:
        projected = c @ params["context"]
        if projected.ndim < hidden.ndim:
            projected = projected[:, None]
        hidden = hidden + projected
    eta2 = np.where(hidden > 0, hidden, np.expm1(np.minimum(hidden, 0.0)))  # ELU
    eta1 = dense("intermediate", eta2)
    glu = _sigmoid(dense("gate", eta1)) * dense("value", eta1)
    skip = a if params["skip"] is None else dense("skip", a)
    z = skip + glu
    mean, var = z.mean(-1, keepdims=True), z.var(-1, keepdims=True)
    return (z - mean) / np.sqrt(var + params["epsilon"]) * params["gamma"] + params["beta"]


def reference_variable_selection(layer, features, context=None):
    if features.ndim == 2:
        features = features[..., None]
    flat = features.reshape(len(features), -1)
    weights = _softmax(reference_grn(grn_params(layer.weight_grn), flat, context))
    transformed = np.stack(
        [
            reference_grn(feature_grn_params(layer.feature_grns, j), features[:, j])
            for j in range(features.shape[1])
        ],
        axis=1,
    )
    return (transformed * weights[..., None]).sum(axis=1), weights


# Shapes follow tests/cases_column.py where they can: JAX compiles each new weight shape once
# per session, so shared shapes keep the suite fast.


# --- ColumnAttention ----------------------------------------------------------------------
def test_column_attention_matches_numpy_reference(rng):
    x = rng.normal(size=(4, 6)).astype("float32")
    layer = ColumnAttention(hidden_dim=4)
    outputs, scores = layer(x, return_attention_scores=True)
    expected, expected_scores = reference_column_attention(layer, x)
    np.testing.assert_allclose(_np(outputs), expected, atol=1e-5)
    np.testing.assert_allclose(_np(layer(x)), expected, atol=1e-5)
    np.testing.assert_allclose(_np(scores), expected_scores, atol=1e-6)
    np.testing.assert_allclose(_np(scores).sum(-1), 1.0, atol=1e-6)


def test_column_attention_keeps_the_scale(rng):
    x = rng.normal(size=(4, 6)).astype("float32")
    layer = ColumnAttention()
    outputs = _np(layer(x))
    # The weights applied to the inputs average 1 over the features of every row.
    np.testing.assert_allclose((outputs / x).mean(-1), 1.0, atol=1e-5)
    # Uniform scores (a zero scoring layer) leave the input unchanged.
    for weight in layer.score_dense.weights:
        weight.assign(np.zeros(weight.shape, "float32"))
    np.testing.assert_allclose(_np(layer(x)), x, atol=1e-6)


def test_column_attention_hidden_dim_default():
    assert ColumnAttention().get_config()["hidden_dim"] is None
    for num_features, hidden in ((6, 3), (1, 1)):
        layer = ColumnAttention()
        layer.build((None, num_features))
        assert layer.hidden_dense.units == hidden


def test_column_attention_rows_are_independent(rng):
    x = rng.normal(size=(6, 6)).astype("float32")
    layer = ColumnAttention()
    full = _np(layer(x))
    np.testing.assert_allclose(_np(layer(x[2:4])), full[2:4], atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(input_dim=0), "input_dim"), (dict(hidden_dim=2.5), "hidden_dim")],
)
def test_column_attention_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ColumnAttention(**kwargs)


def test_column_attention_shape_errors():
    with pytest.raises(ValueError, match="input_dim=4.*5 features"):
        ColumnAttention(input_dim=4)(np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match="rank 2"):
        ColumnAttention()(np.zeros((2, 3, 5), "float32"))


# --- GatedResidualNetwork -----------------------------------------------------------------
@pytest.mark.parametrize(
    "input_shape, context_shape, units",
    [
        ((4, 5), None, 8),  # projected skip, no context
        ((4, 3, 6), (4, 2), 6),  # identity skip, context broadcast over the steps
        ((4, 3, 6), (4, 3, 2), 6),  # a context per step
    ],
)
def test_grn_matches_numpy_reference(rng, input_shape, context_shape, units):
    a = rng.normal(size=input_shape).astype("float32")
    c = None if context_shape is None else rng.normal(size=context_shape).astype("float32")
    layer = GatedResidualNetwork(units)
    outputs = _np(layer(a, context=c))
    assert outputs.shape == input_shape[:-1] + (units,)
    assert (layer.skip_dense is None) == (input_shape[-1] == units)
    np.testing.assert_allclose(outputs, reference_grn(grn_params(layer), a, c), atol=1e-5)


def test_grn_dropout_only_in_training(rng):
    a = rng.normal(size=(4, 6)).astype("float32")
    layer = GatedResidualNetwork(6, dropout=0.5)
    inference = _np(layer(a, training=False))
    expected = reference_grn(grn_params(layer), a)
    np.testing.assert_allclose(inference, expected, atol=1e-5)
    assert not np.allclose(_np(layer(a, training=True)), expected, atol=1e-3)


def test_grn_context_must_match_how_it_was_built(rng):
    a = rng.normal(size=(4, 6)).astype("float32")
    c = rng.normal(size=(4, 2)).astype("float32")
    without = GatedResidualNetwork(6)
    without(a)
    with pytest.raises(ValueError, match="built without a context"):
        without(a, context=c)
    with_context = GatedResidualNetwork(6)
    with_context(a, context=c)
    with pytest.raises(ValueError, match="built with a context"):
        with_context(a)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(units=0), "units"), (dict(units=4, dropout=1.0), "dropout")],
)
def test_grn_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GatedResidualNetwork(**kwargs)


def test_grn_shape_errors():
    with pytest.raises(ValueError, match="rank 2 or 3"):
        GatedResidualNetwork(4)(np.zeros((2, 3, 4, 5), "float32"))
    with pytest.raises(ValueError, match="context"):
        GatedResidualNetwork(4)(np.zeros((2, 5), "float32"), context=np.zeros((2, 3, 1)))


# --- VariableSelection --------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 3, 2), (4, 3)])
def test_variable_selection_matches_numpy_reference(rng, shape):
    features = rng.normal(size=shape).astype("float32")
    layer = VariableSelection(3, 8)
    selected, weights = layer(features)
    expected, expected_weights = reference_variable_selection(layer, features)
    assert tuple(selected.shape) == (4, 8) and tuple(weights.shape) == (4, 3)
    np.testing.assert_allclose(_np(selected), expected, atol=1e-5)
    np.testing.assert_allclose(_np(weights), expected_weights, atol=1e-6)
    np.testing.assert_allclose(_np(weights).sum(-1), 1.0, atol=1e-6)


def test_variable_selection_with_context_matches_numpy_reference(rng):
    features = rng.normal(size=(4, 3, 2)).astype("float32")
    context = rng.normal(size=(4, 2)).astype("float32")
    layer = VariableSelection(units=8, use_context=True)
    expected, expected_weights = None, None
    for selected, weights in (layer([features, context]), layer(features, context=context)):
        if expected is None:
            expected, expected_weights = reference_variable_selection(layer, features, context)
        np.testing.assert_allclose(_np(selected), expected, atol=1e-5)
        np.testing.assert_allclose(_np(weights), expected_weights, atol=1e-6)
    # The context changes the selection.
    _, other = layer(features, context=context + 1.0)
    assert not np.allclose(_np(other), expected_weights, atol=1e-4)


def test_variable_selection_positional_and_keyword_construction():
    positional = VariableSelection(5, 8)
    assert (positional.nr_features, positional.units) == (5, 8)
    keyword = VariableSelection(units=8)
    assert (keyword.nr_features, keyword.units) == (None, 8)
    assert keyword.get_config()["dropout_rate"] == 0.1
    with pytest.raises(ValueError, match="`units` is required"):
        VariableSelection(5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(nr_features=0, units=4), "nr_features"),
        (dict(units=-1), "units"),
        (dict(units=4, dropout_rate=1.5), "dropout_rate"),
        (dict(units=4, use_context="yes"), "use_context"),
    ],
)
def test_variable_selection_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VariableSelection(**kwargs)


def test_variable_selection_shape_and_context_errors():
    features = np.zeros((2, 5, 3), "float32")
    context = np.zeros((2, 4), "float32")
    with pytest.raises(ValueError, match="nr_features=4.*5 features"):
        VariableSelection(4, 8)(features)
    with pytest.raises(ValueError, match="rank 2 or 3"):
        VariableSelection(units=8)(np.zeros((2, 5, 3, 1), "float32"))
    with pytest.raises(ValueError, match="use_context=True"):
        VariableSelection(units=8, use_context=True)(features)
    with pytest.raises(ValueError, match="use_context=False"):
        VariableSelection(units=8)(features, context=context)
    with pytest.raises(ValueError, match="not both"):
        VariableSelection(units=8, use_context=True)([features, context], context=context)


def test_variable_selection_weights_stay_float32_under_mixed_precision(rng):
    keras.config.set_dtype_policy("mixed_bfloat16")
    features = rng.normal(size=(4, 3, 2)).astype("float32")
    selected, weights = VariableSelection(3, 8)(features)
    assert ops.dtype(selected) == "bfloat16" and ops.dtype(weights) == "float32"


def test_variable_selection_functional_model_with_context_reloads(rng, tmp_path):
    features = rng.normal(size=(4, 3, 2)).astype("float32")
    context = rng.normal(size=(4, 2)).astype("float32")
    feature_input, context_input = keras.Input((3, 2)), keras.Input((2,))
    selected, weights = VariableSelection(3, 8, use_context=True)([feature_input, context_input])
    assert tuple(selected.shape) == (None, 8) and tuple(weights.shape) == (None, 3)
    model = keras.Model([feature_input, context_input], [selected, weights])
    expected = model.predict([features, context], verbose=0)
    path = os.path.join(tmp_path, "selection.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    for got, want in zip(reloaded.predict([features, context], verbose=0), expected):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(expected[1].sum(-1), 1.0, atol=1e-5)
