"""TabR: the stored context, batch independence, save/load with the context, training."""

import keras
import numpy as np
import pytest

from tabattn.models import TabR


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _clusters(rng, n=240):
    """Rows in 4 well-separated clusters; the label is the cluster's parity."""
    centers = rng.normal(scale=4.0, size=(4, 3))
    cluster = rng.integers(0, 4, size=n)
    numeric = (centers[cluster] + rng.normal(scale=0.3, size=(n, 3))).astype("float32")
    categorical = rng.integers(0, 4, size=(n, 2)).astype("int32")
    return {"numeric": numeric, "categorical": categorical}, (cluster % 2).astype("int32")


def _model(**kwargs):
    config = dict(n_num_features=3, categorical_cardinalities=(3, 3), num_classes=2,
                  d_main=16, num_neighbors=8)
    config.update(kwargs)
    return TabR(**config)


def test_defaults_are_tabr_s():
    config = TabR.default_config()
    assert config["d_main"] == 265 and config["num_neighbors"] == 96
    assert config["encoder_n_blocks"] == 0 and config["predictor_n_blocks"] == 1
    assert TabR.default_optimizer_config()["learning_rate"] == pytest.approx(3.121e-4, rel=1e-3)


def test_needs_a_context_before_it_runs(rng):
    inputs, _ = _clusters(rng, 10)
    with pytest.raises(ValueError, match="set_context"):
        _model()(inputs)


def test_context_keys_are_the_encoded_context_rows(rng):
    inputs, labels = _clusters(rng)
    model = _model()
    model.set_context(inputs, labels)
    _, keys = model._encode(inputs["numeric"], inputs["categorical"], training=False)
    np.testing.assert_allclose(_np(model.context_keys), _np(keys), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(model.context_squared_norms),
                               (_np(keys) ** 2).sum(axis=-1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(_np(model.context_labels), labels)


def test_predictions_do_not_depend_on_the_batch(rng):
    inputs, labels = _clusters(rng, 300)
    model = _model(numeric_embedding="periodic")
    model.set_context(inputs, labels)
    full = model.predict(inputs, batch_size=256, verbose=0)
    for size in (1, 7):
        part = model.predict({k: v[:size] for k, v in inputs.items()}, batch_size=size,
                             verbose=0)
        np.testing.assert_allclose(part, full[:size], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "context_refresh, options",
    [("epoch", {}), ("step", {}), ("rolling", {"refresh_rows": 50}),
     ("step", {"num_candidates": 100})],
)
def test_fit_learns_from_neighbours_and_updates_every_weight(rng, context_refresh, options):
    inputs, labels = _clusters(rng)
    model = _model(context_refresh=context_refresh, context_dropout=0.0, dropout0=0.0,
                   **options)
    model.set_context(inputs, labels)
    before = [_np(w).copy() for w in model.trainable_weights]
    model.compile(optimizer=model.make_optimizer(learning_rate=3e-3),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    train = dict(inputs, row_index=np.arange(len(labels), dtype="int32"))
    targets = labels[:, None].astype("float32")
    model.fit(train, targets, epochs=15, batch_size=32, verbose=0,
              validation_data=(inputs, targets))
    # With keys searched at every step, query and neighbour keys share the key layer's bias,
    # which cancels in every distance and difference: it gets no gradient (as in the paper).
    unchanged = [w.path for w, b in zip(model.trainable_weights, before)
                 if np.allclose(_np(w), b)
                 and not (context_refresh != "epoch" and w.path.endswith("key/bias"))]
    assert not unchanged, f"weights without gradient: {unchanged}"
    # Keys were refreshed after training: they match the final weights.
    _, keys = model._encode(inputs["numeric"], inputs["categorical"], training=False)
    np.testing.assert_allclose(_np(model.context_keys), _np(keys), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_np(model.context_squared_norms),
                               (_np(keys) ** 2).sum(axis=-1), rtol=1e-4, atol=1e-5)
    new_inputs, new_labels = _clusters(np.random.default_rng(1), 100)
    new_inputs["numeric"] = inputs["numeric"][:100] + 0.05  # near the stored rows
    accuracy = np.mean((model.predict(new_inputs, verbose=0)[:, 0] > 0) == labels[:100])
    assert accuracy > 0.9


def test_save_and_load_keep_the_context(rng, tmp_path):
    inputs, labels = _clusters(rng)
    model = _model(numeric_embedding="periodic", encoder_n_blocks=1)
    model.set_context(inputs, labels)
    expected = model.predict(inputs, verbose=0)
    path = str(tmp_path / "tabr.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.context_rows == len(labels)
    np.testing.assert_array_equal(_np(loaded.context_labels), labels)
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), expected, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(_np(loaded.context_squared_norms),
                                  _np(model.context_squared_norms))


def test_loads_weights_saved_without_the_squared_norms(rng):
    # Files from before TabR kept the norms hold every own weight but that last one.
    inputs, labels = _clusters(rng)
    model = _model()
    model.set_context(inputs, labels)
    store = {}
    model.save_own_variables(store)
    del store[str(len(store) - 1)]
    other = _model()
    other.set_context(inputs, labels)
    other.context_squared_norms.assign(np.zeros(len(labels), "float32"))
    other.load_own_variables(store)
    keys = _np(model.context_keys)
    np.testing.assert_array_equal(_np(other.context_keys), keys)
    np.testing.assert_allclose(_np(other.context_squared_norms), (keys**2).sum(-1), rtol=1e-6)
    with pytest.raises(ValueError):  # any other count is Keras's error
        other.load_own_variables(dict(list(store.items())[:-1]))


class _FullBackprop(TabR):
    """The paper's plain way: every stored row encoded with gradients at every step."""

    def _retrieve_with_current_keys(self, k, row_index, training):
        _, keys = self._encode(self.context_numeric, self.context_categorical, training=training)
        return self.retrieval(k, keys, self.context_labels, query_index=row_index,
                              training=training)


def _weight_gradients(model, inputs):
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        frozen = [v.value for v in model.non_trainable_variables]

        def loss(values):
            outputs, _ = model.stateless_call(values, frozen, inputs, training=True)
            return keras.ops.sum(outputs**2)

        return [np.asarray(g) for g in jax.grad(loss)(trainable)]
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = keras.ops.sum(model(inputs, training=True) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        return [tf.convert_to_tensor(g).numpy() for g in grads]
    loss = keras.ops.sum(model(inputs, training=True) ** 2)
    loss.backward()
    return [v.value.grad.cpu().numpy() for v in model.trainable_variables]


@pytest.mark.parametrize(
    "numeric_embedding, context_refresh",
    [(None, "step"), ("piecewise", "step"), (None, "rolling"), ("periodic", "rolling")],
)
def test_search_has_the_gradient_of_full_backpropagation(rng, numeric_embedding,
                                                         context_refresh):
    # Re-encoding only the neighbours must give the gradient of encoding every stored row
    # (under "rolling", with the stored keys fresh as set_context leaves them).
    inputs, labels = _clusters(rng, 80)
    bins = [np.linspace(-8, 8, 6)] * 3 if numeric_embedding == "piecewise" else None
    config = dict(n_num_features=3, categorical_cardinalities=(3, 3), num_classes=2, d_main=8,
                  num_neighbors=5, encoder_n_blocks=1, context_dropout=0.0, dropout0=0.0,
                  numeric_embedding=numeric_embedding, bins=bins)
    fast = TabR(**config, context_refresh=context_refresh, refresh_rows=16)
    full = _FullBackprop(**config)
    fast.set_context(inputs, labels)
    full.set_context(inputs, labels)
    full.set_weights(fast.get_weights())
    batch = {k: v[:16] for k, v in inputs.items()}
    batch["row_index"] = np.arange(16, dtype="int32")
    weights = fast.trainable_weights
    pairs = zip(weights, _weight_gradients(fast, batch), _weight_gradients(full, batch))
    for w, got, want in pairs:
        assert w.path.endswith("key/bias") or np.abs(want).sum() > 0, w.path
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_rolling_refresh_re_encodes_the_next_stored_rows(rng):
    inputs, labels = _clusters(rng, 50)
    model = _model(context_refresh="rolling", refresh_rows=20, numeric_embedding="periodic")
    model.set_context(inputs, labels)
    stale = np.zeros_like(_np(model.context_keys))
    model.context_keys.assign(stale)  # as if the weights had moved since
    batch = dict({k: v[:8] for k, v in inputs.items()}, row_index=np.arange(8, dtype="int32"))
    _, fresh = model._encode(inputs["numeric"], inputs["categorical"], training=False)
    fresh = _np(fresh)
    for step, rows in enumerate([slice(0, 20), slice(20, 40), slice(30, 50), slice(0, 20)]):
        model.context_keys.assign(stale)
        model.context_squared_norms.assign(stale[:, 0])
        model(batch, training=True)
        keys, norms = _np(model.context_keys), _np(model.context_squared_norms)
        np.testing.assert_allclose(keys[rows], fresh[rows], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(norms[rows], (fresh[rows] ** 2).sum(-1), rtol=1e-5,
                                   atol=1e-6)
        untouched = np.ones(50, bool)
        untouched[rows] = False
        assert (keys[untouched] == 0).all() and (norms[untouched] == 0).all(), step
    assert int(_np(model.refresh_offset)) == 20


def test_max_context_rows_stores_a_sample(rng, tmp_path):
    inputs, labels = _clusters(rng, 120)
    model = _model(max_context_rows=50, context_refresh="rolling")
    kept = model.set_context(inputs, labels, seed=0)
    assert model.context_rows == 50 and len(kept) == 50 and (np.diff(kept) > 0).all()
    np.testing.assert_array_equal(_np(model.context_labels), labels[kept])
    np.testing.assert_array_equal(_np(model.context_numeric), inputs["numeric"][kept])
    np.testing.assert_array_equal(kept, _model(max_context_rows=50).set_context(
        inputs, labels, seed=0))
    row_index = np.full(120, -1, "int32")
    row_index[kept] = np.arange(50)
    model.compile(optimizer=model.make_optimizer(),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(dict(inputs, row_index=row_index), labels[:, None].astype("float32"), epochs=1,
              batch_size=32, verbose=0)
    path = str(tmp_path / "tabr.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.context_rows == 50 and loaded.max_context_rows == 50
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0),
                               model.predict(inputs, verbose=0), rtol=1e-6, atol=1e-7)


def test_regression_context(rng):
    inputs, _ = _clusters(rng, 50)
    model = _model(num_classes=None)
    targets = rng.normal(size=50).astype("float32")
    model.set_context(inputs, targets[:, None])
    np.testing.assert_allclose(_np(model.context_labels), targets)
    assert model.predict(inputs, verbose=0).shape == (50, 1)


def test_neighbors_are_the_nearest_stored_rows(rng):
    inputs, labels = _clusters(rng, 60)
    model = _model(num_neighbors=5)
    model.set_context(inputs, labels)
    indices, weights = model.neighbors({k: v[:4] for k, v in inputs.items()})
    assert indices.shape == weights.shape == (4, 5)
    np.testing.assert_array_equal(indices[:, 0], np.arange(4))  # a stored row finds itself
    np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-5)
    # The rows and weights the prediction itself uses, whatever the batch size.
    rows = {k: v[10:30] for k, v in inputs.items()}
    _, keys = model._encode(rows["numeric"], rows["categorical"], training=False)
    _, scores = model.retrieval(keys, model.context_keys, model.context_labels,
                                return_attention_scores=True)
    found, _ = model.retrieval.search(keys, model.context_keys)
    indices, weights = model.neighbors(rows, batch_size=7)
    np.testing.assert_array_equal(indices, _np(found))
    np.testing.assert_allclose(weights, _np(scores), rtol=1e-5, atol=1e-6)
    distances = ((_np(keys)[:, None] - _np(model.context_keys)[None]) ** 2).sum(-1)
    np.testing.assert_allclose(np.take_along_axis(distances, indices, 1),
                               np.sort(distances, 1)[:, :5], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="batch_size"):
        model.neighbors(rows, batch_size=0)
    np.testing.assert_array_equal(model.stored_labels(), labels)
    with pytest.raises(ValueError, match="set_context"):
        _model().stored_labels()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"d_main": 0}, "d_main"),
        ({"num_neighbors": -1}, "num_neighbors"),
        ({"context_dropout": 1.0}, "context_dropout"),
        ({"encoder_n_blocks": -1}, "encoder_n_blocks"),
        ({"numeric_embedding": "linear"}, "numeric_embedding"),
        ({"context_refresh": "never"}, "context_refresh"),
        ({"num_candidates": 0}, "num_candidates"),
        ({"max_context_rows": -5}, "max_context_rows"),
        ({"refresh_rows": 0}, "refresh_rows"),
        ({"mixer_normalization": "yes"}, "mixer_normalization"),
        ({"numeric_embedding": "piecewise"}, "bins"),
        ({"bins": [[0.0, 1.0]] * 3}, "bins"),
        ({"numeric_embedding": "piecewise", "bins": [[0.0, 1.0]] * 2}, "bins"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _model(**kwargs)


def test_invalid_contexts(rng):
    inputs, labels = _clusters(rng, 20)
    model = _model()
    with pytest.raises(ValueError, match="class indices"):
        model.set_context(inputs, labels + 5)
    with pytest.raises(ValueError, match="labels"):
        model.set_context(inputs, labels[:10])
    with pytest.raises(ValueError, match="numeric"):
        model.set_context({"numeric": inputs["numeric"][:, :2],
                           "categorical": inputs["categorical"]}, labels)
    bad = dict(inputs, numeric=inputs["numeric"].copy())
    bad["numeric"][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.set_context(bad, labels)
    model.set_context(inputs, labels)
    with pytest.raises(ValueError, match="20 rows"):
        model.set_context({k: v[:10] for k, v in inputs.items()}, labels[:10])


def test_categorical_codes_outside_the_cardinality(rng):
    inputs, labels = _clusters(rng, 30)
    model = _model()
    bad = dict(inputs, categorical=inputs["categorical"].copy())
    bad["categorical"][0, 1] = 4  # cardinality 3: codes 0..3
    with pytest.raises(ValueError, match=r"Categorical column 1.*\[0, 3\]"):
        model.set_context(bad, labels)
    model.set_context(inputs, labels)
    unseen = dict(inputs, categorical=inputs["categorical"].copy())
    unseen["categorical"][:, 0] = 0
    wild = dict(inputs, categorical=inputs["categorical"].copy())
    wild["categorical"][:, 0] = 99  # an unknown code reads as code 0 (missing/unseen)
    np.testing.assert_allclose(model.predict(wild, verbose=0), model.predict(unseen, verbose=0),
                               rtol=1e-6, atol=1e-6)


def test_fit_without_row_index_warns(rng):
    inputs, labels = _clusters(rng, 40)
    model = _model()
    model.set_context(inputs, labels)
    model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    with pytest.warns(UserWarning, match="row_index"):
        model.fit(inputs, labels[:, None].astype("float32"), epochs=1, verbose=0)
