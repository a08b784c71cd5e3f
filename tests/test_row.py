"""RowAttention and IntersampleAttention against NumPy references, and their batch behaviour."""

import keras
import numpy as np
import pytest

from tabattn.layers import IntersampleAttention, RowAttention


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
