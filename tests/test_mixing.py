"""SparseAttentionWeighting against NumPy references: probabilities, sums, gradients, errors."""

import keras
import numpy as np
import pytest
from keras import ops

from tabattn.layers import SparseAttentionWeighting
from tabattn.layers.mixing import _entmax15, _sparsemax

BACKEND = keras.backend.backend()
NORMALIZATIONS = ["softmax", "sparsemax", "entmax15"]


def _np(x):
    return keras.ops.convert_to_numpy(x)


# --- NumPy references ---------------------------------------------------------------------
# The sparse maps are found by bisection on the threshold (not by sorting, as the layer does),
# so the reference does not share the algorithm under test.
def _bisect_threshold(total, low, high):
    """The tau in [low, high] where the decreasing function ``total(tau)`` crosses 1."""
    for _ in range(200):
        tau = (low + high) / 2
        low, high = (tau, high) if total(tau) > 1 else (low, tau)
    return (low + high) / 2


def reference_probs(logits, normalization):
    z = np.asarray(logits, np.float64)
    if normalization == "softmax":
        e = np.exp(z - z.max())
        return e / e.sum()
    if normalization == "sparsemax":
        tau = _bisect_threshold(lambda t: np.maximum(z - t, 0).sum(), z.max() - 1, z.max())
        return np.maximum(z - tau, 0)
    half = z / 2
    tau = _bisect_threshold(
        lambda t: np.square(np.maximum(half - t, 0)).sum(), half.max() - 1, half.max()
    )
    return np.square(np.maximum(half - tau, 0))


def reference_vjp(probs, grad, normalization):
    """Gradient of the loss w.r.t. the logits, given its gradient ``grad`` w.r.t. ``probs``."""
    if normalization == "softmax":
        return probs * (grad - probs @ grad)
    if normalization == "sparsemax":
        support = probs > 0
        return np.where(support, grad - grad[support].mean(), 0.0)
    root = np.sqrt(probs)  # 1.5-entmax: J = diag(√p) - √p √pᵀ / Σ√p
    return root * grad - root * (root @ grad) / root.sum()


def _built_layer(logits, **kwargs):
    layer = SparseAttentionWeighting(len(logits), **kwargs)
    layer.build([(None, 3)] * len(logits))
    layer.attention_weights.assign(np.asarray(logits, "float32"))
    return layer


# --- probabilities ------------------------------------------------------------------------
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize(
    "logits",
    [[1.0, 0.4, -0.5, 0.9], [0.7], [0.1, 2.5, 2.5, -3.0, 1.0]],
)
def test_module_weights_match_reference(normalization, logits, rng):
    layer = _built_layer(logits, temperature=0.7, normalization=normalization)
    expected = reference_probs(np.asarray(logits) / 0.7, normalization)
    probs = layer.module_weights()
    assert ops.dtype(probs) == "float32" and tuple(probs.shape) == (len(logits),)
    np.testing.assert_allclose(_np(probs), expected, atol=1e-6)
    np.testing.assert_allclose(_np(probs).sum(), 1.0, atol=1e-6)
    # Zeros are exact, not merely small.
    np.testing.assert_array_equal(_np(probs) == 0, expected < 1e-12)

    inputs = [rng.normal(size=(4, 3)).astype("float32") for _ in logits]
    expected_out = sum(p * x for p, x in zip(expected, inputs))
    np.testing.assert_allclose(_np(layer(inputs)), expected_out, atol=1e-5)


@pytest.mark.parametrize("normalization", ["sparsemax", "entmax15"])
def test_sparse_maps_on_a_batch_of_logit_vectors(normalization, rng):
    logits = rng.normal(scale=2.0, size=(20, 7)).astype("float32")
    logits[0] = logits[0, 0]  # all tied
    logits[1, :3] = logits[1, :3].max()  # a tie at the top
    fn = _sparsemax if normalization == "sparsemax" else _entmax15
    probs = _np(fn(ops.convert_to_tensor(logits)))
    expected = np.stack([reference_probs(row, normalization) for row in logits])
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    assert (probs == 0).any(axis=-1)[2:].mean() > 0.5, "expected exact zeros in most rows"
    assert (probs >= 0).all()


def test_sparse_maps_give_exact_zeros():
    layer = _built_layer([3.0, 0.0, -1.0, 2.9], normalization="sparsemax")
    np.testing.assert_allclose(_np(layer.module_weights()), [0.55, 0.0, 0.0, 0.45], atol=1e-6)
    layer = _built_layer([3.0, 0.0, -1.0, 2.9], normalization="entmax15")
    probs = _np(layer.module_weights())
    assert probs[1] == 0.0 and probs[2] == 0.0 and probs[0] > probs[3] > 0


def test_softmax_is_dense():
    probs = _np(_built_layer([3.0, 0.0, -1.0, 2.9]).module_weights())
    assert (probs > 0).all()


def test_initial_mixture_is_uniform():
    for normalization in NORMALIZATIONS:
        layer = SparseAttentionWeighting(4, normalization=normalization)
        layer.build([(None, 2)] * 4)
        np.testing.assert_array_equal(_np(layer.attention_weights), np.ones(4))
        np.testing.assert_allclose(_np(layer.module_weights()), 0.25, atol=1e-6)


# --- temperature --------------------------------------------------------------------------
def test_low_temperature_makes_sparsemax_one_hot(rng):
    logits = [1.0, 0.5, 0.0]
    np.testing.assert_allclose(
        _np(_built_layer(logits, normalization="sparsemax").module_weights()),
        [0.75, 0.25, 0.0], atol=1e-6,
    )
    layer = _built_layer(logits, temperature=0.25, normalization="sparsemax")
    np.testing.assert_array_equal(_np(layer.module_weights()), [1.0, 0.0, 0.0])
    inputs = [rng.normal(size=(2, 3)).astype("float32") for _ in logits]
    np.testing.assert_array_equal(_np(layer(inputs)), inputs[0])


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_temperature_sharpens_or_flattens(normalization):
    logits = [1.0, 0.5, 0.0, -0.2]
    peaks = [
        _np(_built_layer(logits, temperature=t, normalization=normalization).module_weights())
        for t in (0.2, 1.0, 100.0)
    ]
    assert peaks[0].max() > peaks[1].max() > peaks[2].max()
    np.testing.assert_allclose(peaks[2], 0.25, atol=0.01)  # high temperature: near uniform


# --- gradients ----------------------------------------------------------------------------
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_one_sgd_step_matches_reference_gradient(normalization, rng):
    logits = np.array([1.0, 0.4, -0.5, 0.9], "float32")
    temperature, learning_rate = 0.5, 0.1
    inputs = [rng.normal(size=(6, 3)).astype("float32") for _ in logits]
    target = rng.normal(size=(6, 3)).astype("float32")
    layer = SparseAttentionWeighting(4, temperature=temperature, normalization=normalization)
    symbolic = [keras.Input((3,)) for _ in logits]
    model = keras.Model(symbolic, layer(symbolic))
    layer.attention_weights.assign(logits)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        loss="mse",
        jit_compile=BACKEND in ("jax", "tensorflow"),
    )
    model.fit(inputs, target, epochs=1, batch_size=6, verbose=0)

    probs = reference_probs(logits / temperature, normalization)
    outputs = sum(p * x for p, x in zip(probs, inputs))
    d_outputs = 2 * (outputs - target) / target.size  # mse
    d_probs = np.array([(d_outputs * x).sum() for x in inputs])
    d_logits = reference_vjp(probs, d_probs, normalization) / temperature
    updated = _np(layer.attention_weights)
    assert np.isfinite(updated).all()
    np.testing.assert_allclose(updated, logits - learning_rate * d_logits, atol=1e-6)
    if normalization != "softmax":  # branches outside the support get no gradient
        np.testing.assert_array_equal(updated[probs == 0], logits[probs == 0])
        assert (probs == 0).any()


# --- shapes, dtypes, single branch --------------------------------------------------------
def test_single_branch_returns_its_input(rng):
    x = rng.normal(size=(3, 2, 4)).astype("float32")
    for normalization in NORMALIZATIONS:
        layer = SparseAttentionWeighting(1, normalization=normalization)
        np.testing.assert_allclose(_np(layer([x])), x, atol=1e-7)
        np.testing.assert_allclose(_np(layer.module_weights()), [1.0])


def test_functional_model_keeps_batch_dimension_unknown():
    symbolic = [keras.Input((5, 2)) for _ in range(3)]
    outputs = SparseAttentionWeighting(3, normalization="entmax15")(symbolic)
    assert tuple(outputs.shape) == (None, 5, 2)


def test_mixed_precision_normalises_in_float32(rng):
    keras.config.set_dtype_policy("mixed_float16")
    layer = SparseAttentionWeighting(3, normalization="sparsemax")
    inputs = [rng.normal(size=(2, 4)).astype("float32") for _ in range(3)]
    assert ops.dtype(layer(inputs)) == "float16"
    assert layer.attention_weights.dtype == "float32"
    assert ops.dtype(layer.module_weights()) == "float32"


# --- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_modules=0), "num_modules"),
        (dict(num_modules=2.5), "num_modules"),
        (dict(num_modules=2, temperature=0.0), "temperature"),
        (dict(num_modules=2, temperature=-1.0), "temperature"),
        (dict(num_modules=2, normalization="gumbel"), "normalization"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SparseAttentionWeighting(**kwargs)


def test_wrong_number_of_inputs():
    layer = SparseAttentionWeighting(3)
    with pytest.raises(ValueError, match="num_modules=3, but received 2 inputs"):
        layer([np.zeros((2, 4), "float32")] * 2)


def test_wrong_number_of_inputs_after_build():
    layer = SparseAttentionWeighting(2)
    layer([np.zeros((2, 4), "float32")] * 2)
    with pytest.raises(ValueError, match="received 3 inputs"):
        layer([np.zeros((2, 4), "float32")] * 3)


def test_inputs_of_different_shapes_list_the_shapes():
    layer = SparseAttentionWeighting(2)
    with pytest.raises(ValueError, match=r"\(2, 4\), \(2, 5\)"):
        layer([np.zeros((2, 4), "float32"), np.zeros((2, 5), "float32")])


def test_single_tensor_instead_of_a_list():
    with pytest.raises(ValueError, match="expects a list"):
        SparseAttentionWeighting(1)(np.zeros((2, 4), "float32"))
