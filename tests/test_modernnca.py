"""ModernNCA: its predictions against a NumPy reference, the candidates of a training step,
gradients, save/load and its errors."""

import keras
import numpy as np
import pytest
from keras import ops

from tabattn.models import ModernNCA

N_ROWS = 70


def _rows(n=N_ROWS, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "numeric": rng.normal(size=(n, 3)).astype("float32"),
        "categorical": rng.integers(0, 5, (n, 2)).astype("int32"),
    }


def _labels(rows, num_classes):
    x = rows["numeric"]
    if num_classes is None:
        return (2.0 * x[:, 0] - x[:, 1]).astype("float32")
    return (np.digitize(x[:, 0], np.quantile(x[:, 0], np.linspace(0, 1, num_classes + 1)[1:-1]))
            .astype("int32"))


def _model(num_classes, context, labels, **kwargs):
    d_out = 1 if num_classes in (None, 2) else num_classes
    model = ModernNCA(3, (4, 4), d_out=d_out, num_classes=num_classes, d_main=8, **kwargs)
    model.set_context(context, labels)
    return model


def _reference(model, queries_keys, row_index=None):
    """The model's output from NumPy: a softmax over every stored row of minus the
    Euclidean distance over the temperature, its own row excluded."""
    keys = ops.convert_to_numpy(model.context_keys).astype("float64")
    targets = ops.convert_to_numpy(model.context_targets).astype("float64")
    q = queries_keys.astype("float64")
    distances = np.sqrt(((q[:, None, :] - keys[None, :, :]) ** 2).sum(-1))
    scores = -distances / model.temperature
    if row_index is not None:
        for i, j in enumerate(row_index):
            if 0 <= j < len(keys):
                scores[i, j] = -np.inf
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    average = (weights / weights.sum(axis=1, keepdims=True)) @ targets
    if model.num_classes is None:
        return average
    log_p = np.log(average + 1e-7)
    return log_p[:, 1:2] - log_p[:, :1] if model.d_out == 1 else log_p


@pytest.mark.parametrize("num_classes", [None, 2, 3])
def test_predictions_match_numpy_reference_over_chunks(num_classes):
    context = _rows()
    keras.utils.set_random_seed(0)
    # Chunks of 16 stored rows, the last one of 6: the online softmax over chunks.
    model = _model(num_classes, context, _labels(context, num_classes), search_chunk_size=16,
                   temperature=0.7)
    queries = _rows(9, seed=1)
    keys = ops.convert_to_numpy(model._encode(queries["numeric"], queries["categorical"]))
    outputs = ops.convert_to_numpy(model(queries))
    np.testing.assert_allclose(outputs, _reference(model, keys), rtol=1e-4, atol=1e-4)
    # Stored rows predicted with their own index do not read their own label.
    index = np.array([0, 15, 16, 69, -1], dtype="int32")
    own = {k: v[index.clip(0)] for k, v in context.items()}
    keys = ops.convert_to_numpy(model._encode(own["numeric"], own["categorical"]))
    outputs = ops.convert_to_numpy(model(dict(own, row_index=index)))
    np.testing.assert_allclose(outputs, _reference(model, keys, index), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("num_classes", [None, 3])
def test_training_step_with_every_stored_row_matches_reference(num_classes):
    # sample_rate=1: every stored row is a candidate, encoded with the current weights (no
    # block, so no dropout): the training output is the prediction's, own row excluded.
    context = _rows()
    keras.utils.set_random_seed(1)
    model = _model(num_classes, context, _labels(context, num_classes), sample_rate=1.0)
    index = np.arange(10, dtype="int32")
    batch = {k: v[:10] for k, v in context.items()}
    keys = ops.convert_to_numpy(model._encode(batch["numeric"], batch["categorical"]))
    outputs = ops.convert_to_numpy(model(dict(batch, row_index=index), training=True))
    np.testing.assert_allclose(outputs, _reference(model, keys, index), rtol=1e-4, atol=1e-4)


def test_training_searches_a_bounded_sample_of_stored_rows():
    # Two stored rows with labels 0 and 10; with max_candidates=1 each step reads exactly
    # one of them, so a regression output is one of the two labels, and both are drawn.
    context = _rows(2)
    model = _model(None, context, np.array([0.0, 10.0], "float32"), max_candidates=1, seed=3)
    batch = {k: v[:1] for k, v in _rows(1, seed=5).items()}
    seen = {round(float(ops.convert_to_numpy(model(batch, training=True))[0, 0]), 4)
            for _ in range(20)}
    assert seen == {0.0, 10.0}
    # In inference both are read: a weighted average strictly between them.
    value = float(ops.convert_to_numpy(model(batch))[0, 0])
    assert 0.0 < value < 10.0


def test_neighbors_are_the_rows_of_largest_weight():
    context = _rows()
    keras.utils.set_random_seed(3)
    model = _model(None, context, _labels(context, None), temperature=0.5)
    queries = {k: v[:6] for k, v in context.items()}
    indices, weights = model.neighbors(queries, num_neighbors=4, batch_size=4)
    assert indices.shape == weights.shape == (6, 4) and weights.dtype == np.float32
    np.testing.assert_array_equal(indices[:, 0], np.arange(6))  # a stored row finds itself
    keys = ops.convert_to_numpy(model.context_keys).astype("float64")
    q = ops.convert_to_numpy(model._encode(queries["numeric"], queries["categorical"]))
    distances = np.sqrt(((q[:, None, :].astype("float64") - keys[None]) ** 2).sum(-1))
    np.testing.assert_array_equal(indices[:, 1:], np.argsort(distances, axis=1)[:, 1:4])
    assert (np.diff(weights, axis=1) <= 0).all() and (weights.sum(axis=1) < 1).all()
    # Over every stored row the weights are the prediction's: they sum to 1 and average the
    # stored labels into the model's output.
    indices, weights = model.neighbors(queries, num_neighbors=10 * N_ROWS)
    assert indices.shape == (6, N_ROWS)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    labels = model.stored_labels()
    np.testing.assert_allclose(labels, _labels(context, None))
    np.testing.assert_allclose((weights * labels[indices]).sum(axis=1),
                               ops.convert_to_numpy(model(queries))[:, 0], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="num_neighbors"):
        model.neighbors(queries, num_neighbors=0)
    with pytest.raises(ValueError, match="set_context"):
        ModernNCA(3, (4, 4)).neighbors(queries)
    with pytest.raises(ValueError, match="set_context"):
        ModernNCA(3, (4, 4)).stored_labels()
    # Classes are stored one-hot and come back as the indices given.
    classes = _labels(context, 3)
    np.testing.assert_array_equal(_model(3, context, classes).stored_labels(), classes)


def test_gradients_are_finite_with_duplicate_rows():
    # Identical rows are at distance 0, where the square root's gradient is infinite.
    context = _rows(8)
    context = {k: np.concatenate([v, v]) for k, v in context.items()}
    model = _model(None, context, _labels(context, None), sample_rate=1.0)
    batch = {k: v[:4] for k, v in context.items()}
    target = ops.convert_to_tensor(np.ones((4, 1), "float32"))

    if keras.backend.backend() == "jax":
        import jax

        def loss_fn(trainable):
            values, _ = model.stateless_call(
                trainable, [v.value for v in model.non_trainable_variables], batch,
                training=True,
            )
            return ops.mean((values - target) ** 2)

        grads = jax.grad(loss_fn)([v.value for v in model.trainable_variables])
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = ops.mean((model(batch, training=True) - target) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
    else:
        loss = ops.mean((model(batch, training=True) - target) ** 2)
        loss.backward()
        grads = [v.value.grad for v in model.trainable_variables]
    grads = [ops.convert_to_numpy(g) for g in grads]
    assert all(np.isfinite(g).all() for g in grads)
    assert any(np.abs(g).max() > 0 for g in grads)


@pytest.mark.parametrize("n_blocks", [0, 1])
def test_fit_then_save_and_load_predicts_identically(tmp_path, n_blocks):
    context = _rows()
    labels = _labels(context, 2)
    keras.utils.set_random_seed(2)
    model = _model(2, context, labels, n_blocks=n_blocks, d_block=16)
    model.compile(optimizer=model.make_optimizer(learning_rate=1e-2),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    before = ops.convert_to_numpy(model.context_keys).copy()
    history = model.fit(dict(context, row_index=np.arange(N_ROWS, dtype="int32")), labels,
                        epochs=3, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    # The stored keys follow the trained weights.
    assert not np.allclose(ops.convert_to_numpy(model.context_keys), before)
    queries = _rows(12, seed=4)
    expected = model.predict(queries, verbose=0)
    path = tmp_path / "modernnca.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(queries, verbose=0), expected)
    # A row's prediction does not depend on the rest of its batch.
    alone = np.concatenate([model.predict({k: v[i : i + 1] for k, v in queries.items()},
                                          verbose=0) for i in range(4)])
    probabilities = 1 / (1 + np.exp(-expected[:4]))
    np.testing.assert_allclose(1 / (1 + np.exp(-alone)), probabilities, rtol=0, atol=1e-6)


def test_fit_without_row_index_warns():
    context = _rows(20)
    model = _model(None, context, _labels(context, None))
    model.compile(optimizer="adam", loss="mse")
    with pytest.warns(UserWarning, match="row_index"):
        model.fit(context, _labels(context, None), epochs=1, batch_size=10, verbose=0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_classes=3, d_out=1), "d_out"),
    (dict(num_classes=None, d_out=2), "d_out"),
    (dict(sample_rate=1.5), "sample_rate"),
    (dict(temperature=0.0), "temperature"),
    (dict(max_candidates=0), "max_candidates"),
    (dict(n_blocks=-1), "n_blocks"),
    (dict(dropout=1.0), "dropout"),
    (dict(seed=1.5), "seed"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModernNCA(3, **kwargs)


def test_context_errors():
    model = ModernNCA(3, (4, 4))
    with pytest.raises(ValueError, match="set_context"):
        model(_rows(2))
    context = _rows(10)
    with pytest.raises(ValueError, match="labels"):
        model.set_context(context, np.zeros(9, "float32"))
    with pytest.raises(ValueError, match="columns"):
        model.set_context({"numeric": context["numeric"]}, np.zeros(10, "float32"))
    model.set_context(context, np.zeros(10, "float32"))
    with pytest.raises(ValueError, match="context of 10 rows"):
        model.set_context(_rows(11), np.zeros(11, "float32"))
    classifier = ModernNCA(3, (4, 4), d_out=3, num_classes=3)
    with pytest.raises(ValueError, match="class indices"):
        classifier.set_context(context, np.full(10, 3))
