"""The shared layer contract: every public layer goes through the same checks on each backend.

A new layer is one new row in ``CASES``. Each row gives a factory, the positional inputs
(arrays, or dicts of arrays), keyword tensor inputs (e.g. masks) and whether the layer can
return attention scores. The checks: config round-trip; build + symbolic call matching
``compute_output_shape``; eager call; one ``fit`` step (XLA where the backend has it) that
changes every trainable weight (so gradients reach all of them); ``.keras`` save/load with
identical outputs; mixed precision with float32 weights and float32 attention scores.
"""

import os

import cases_channel
import cases_classic
import cases_column
import cases_embeddings
import cases_ensemble
import cases_mixing
import cases_row
import cases_tabular
import keras
import numpy as np
import pytest
from contract import rng

import tabattn.layers as L

BACKEND = keras.backend.backend()

# One list per layer family (tests/cases_<family>.py); a new layer is one new row there.
CASES = [
    *cases_classic.CASES,
    *cases_embeddings.CASES,
    *cases_ensemble.CASES,
    *cases_row.CASES,
    *cases_column.CASES,
    *cases_tabular.CASES,
    *cases_mixing.CASES,
    *cases_channel.CASES,
]


def test_every_public_layer_has_a_case():
    covered = {case.make().__class__.__name__ for case in CASES}
    assert set(L.__all__) <= covered, f"no contract case for {set(L.__all__) - covered}"


# --- helpers ------------------------------------------------------------------------------
def _map(fn, value):
    if isinstance(value, dict):
        return {k: fn(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [fn(v) for v in value]
    return fn(value)


def _leaves(value):
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _symbolic(array):
    return keras.Input(shape=array.shape[1:], dtype=str(array.dtype), batch_size=None)


def _shape(value):
    return _map(lambda a: tuple(a.shape), value)


def _first(outputs):
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


def _wrap(case, layer, probe=False):
    """A functional model around ``layer``, with one keras.Input per input array.

    With ``probe``, every float positional input first goes through its own trainable
    square ``Dense`` (no bias), so a weightless layer still has gradients to check.
    """
    args = [_map(_symbolic, a) for a in case.args]
    kwargs = {k: _symbolic(v) for k, v in case.kwargs.items()}
    flat_inputs = [leaf for a in args + list(kwargs.values()) for leaf in _leaves(a)]
    if probe:
        def project(t):
            if "float" not in str(t.dtype):
                return t
            return keras.layers.Dense(t.shape[-1], use_bias=False)(t)

        args = [_map(project, a) for a in args]
    outputs = _first(layer(*args, **kwargs, **case.options))
    return keras.Model(flat_inputs, outputs), _flat_arrays(case)


def _flat_arrays(case):
    return [leaf for a in list(case.args) + list(case.kwargs.values()) for leaf in _leaves(a)]


def _first_shape(shape):
    """The first output's shape, for layers whose compute_output_shape returns several."""
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
        return shape[0]
    return shape


def _np(x):
    return keras.ops.convert_to_numpy(x)


# --- the contract -------------------------------------------------------------------------
@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def case(request):
    return request.param


def test_config_round_trip(case):
    layer = case.make()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    init_args = set(type(layer).__init__.__code__.co_varnames[1 : type(layer).__init__.__code__.co_argcount])
    assert init_args <= set(config), f"get_config misses {init_args - set(config)}"


def test_symbolic_call_matches_compute_output_shape(case):
    layer = case.make()
    args = [_map(_symbolic, a) for a in case.args]
    kwargs = {k: _symbolic(v) for k, v in case.kwargs.items()}
    outputs = _first(layer(*args, **kwargs, **case.options))
    assert layer.built
    expected = layer.compute_output_shape(*[_map(lambda t: t.shape, a) for a in args])
    assert tuple(outputs.shape) == tuple(_first_shape(expected))


def test_eager_call(case):
    layer = case.make()
    outputs = layer(*case.args, **case.kwargs, **case.options)
    expected = layer.compute_output_shape(*[_shape(a) for a in case.args])
    assert tuple(_first(outputs).shape) == tuple(_first_shape(expected))
    assert np.isfinite(_np(_first(outputs))).all()
    if case.returns_scores:
        outputs, scores = layer(
            *case.args, **case.kwargs, **case.options, return_attention_scores=True
        )
        assert np.isfinite(_np(scores)).all()
        if case.scores_sum_to_one:
            np.testing.assert_allclose(_np(scores).sum(-1), 1.0, atol=1e-5)


def test_fit_step_reaches_every_trainable_weight(case):
    layer = case.make()
    model, arrays = _wrap(case, layer, probe=not case.make().weights)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss="mse",
        jit_compile=BACKEND in ("jax", "tensorflow"),  # XLA where the backend offers it
    )
    target = rng.normal(size=_np(model(arrays)).shape).astype("float32")
    # A layer without weights of its own is checked through the float "probe" projections
    # in front of it: their gradients must pass through the layer.
    weights = model.trainable_weights
    before = [_np(w).copy() for w in weights]
    assert before, "nothing to train"
    model.fit(arrays, target, epochs=1, batch_size=len(target), verbose=0)
    for weight, old in zip(weights, before):
        assert not np.array_equal(_np(weight), old), f"no gradient reached {weight.path}"


def test_keras_save_load_identical_outputs(case, tmp_path):
    model, arrays = _wrap(case, case.make())
    expected = _np(model.predict(arrays, verbose=0))
    path = os.path.join(tmp_path, "layer.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(_np(reloaded.predict(arrays, verbose=0)), expected)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(case, policy):
    keras.config.set_dtype_policy(policy)
    layer = case.make()
    outputs = layer(*case.args, **case.kwargs, **case.options)
    compute_dtype = policy.split("_")[1]
    assert keras.ops.dtype(_first(outputs)) == compute_dtype
    assert all(w.dtype == "float32" for w in layer.weights)
    if case.returns_scores:
        _, scores = layer(
            *case.args, **case.kwargs, **case.options, return_attention_scores=True
        )
        assert keras.ops.dtype(scores) == "float32"
