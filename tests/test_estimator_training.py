"""The estimators' training: TabR and TabM through them, ensembles, the learning-rate schedule
and the feature importances."""

import keras
import numpy as np
import pandas as pd
import pytest

import tabattn
from tabattn import TabularClassifier, TabularRegressor

SMALL = {"n_blocks": 1, "d_token": 32, "num_heads": 4}  # FT-Transformer
TABR_SMALL = {"d_main": 32, "num_neighbors": 16}


def test_tabr_regressor_with_periodic_embeddings(rng):
    X = rng.normal(size=(500, 3))
    y = np.sin(2 * X[:, 0]) + X[:, 1]
    reg = TabularRegressor(model="tabr", epochs=20, batch_size=64, verbose=0, random_state=0,
                           model_params=dict(TABR_SMALL, numeric_embedding="periodic"))
    reg.fit(X[:400], y[:400], eval_set=(X[400:], y[400:]))
    assert reg.score(X[400:], y[400:]) > 0.6


@pytest.mark.parametrize("epochs, patience", [(6, 16), (40, 1)])  # all epochs; early stop
def test_tabr_keeps_the_moving_average_of_its_best_epoch(rng, epochs, patience):
    # The estimator validates TabR's moving average of the weights and keeps the best
    # epoch's: the fitted model scores exactly the best validation loss of the history.
    X = rng.normal(size=(400, 3))
    y = X[:, 0] + 0.5 * np.sin(3 * X[:, 1]) + rng.normal(size=400)  # noise: it overfits
    reg = TabularRegressor(model="tabr", model_params=TABR_SMALL, epochs=epochs,
                           patience=patience, batch_size=64, verbose=0, random_state=0)
    reg.fit(X[:300], y[:300], eval_set=(X[300:], y[300:]))
    assert (len(reg.history_["loss"]) < epochs) == (patience == 1)
    optimizer = reg.model_.optimizer
    assert optimizer.use_ema and optimizer.ema_momentum == pytest.approx(1 - 1 / 5)  # 5 steps
    inputs = reg.preprocessor_.transform(pd.DataFrame(X[300:], columns=reg._columns))
    # Validation's batch size: this barely trained model's keys are almost equidistant, and
    # another batch size's matmul can break a near-tie between neighbours the other way.
    val_loss = reg.model_.evaluate(inputs, reg._encode_target(pd.Series(y[300:])),
                                   batch_size=64, verbose=0)
    np.testing.assert_allclose(val_loss, min(reg.history_["val_loss"]), rtol=1e-5)


@pytest.mark.parametrize("bins", ["quantile", "tree"])
def test_ft_transformer_with_piecewise_embeddings(rng, tmp_path, bins):
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300),
                      "c": rng.choice(["u", "v"], 300), "k": np.ones(300)})
    y = (X["a"] > 0.3).astype(int)
    params = dict(SMALL, numeric_embedding="piecewise", bins=bins, n_bins=8)
    # "k" is constant: a category unless forced numeric; forced, it gets one bin.
    clf = TabularClassifier(model="ft_transformer", model_params=params, epochs=2,
                            numeric=["k"], verbose=0, random_state=0).fit(X, y)
    edges = clf.model_.tokenizer.get_config()["bins"]
    assert len(edges) == 3 and all(len(e) <= 9 for e in edges)
    assert len(edges[2]) == 2
    clf.save(tmp_path / "ple")
    np.testing.assert_array_equal(tabattn.load(tmp_path / "ple").predict_proba(X),
                                  clf.predict_proba(X))


def test_tabr_with_piecewise_encoding_round_trips(rng, tmp_path):
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300),
                      "c": rng.choice(["u", "v"], 300)})
    y = (X["a"] > 0.3).astype(int)
    params = dict(TABR_SMALL, numeric_embedding="piecewise", bins="tree", n_bins=8)
    clf = TabularClassifier(model="tabr", model_params=params, epochs=30, batch_size=64,
                            verbose=0, random_state=0).fit(X[:240], y[:240])
    assert len(clf.model_.bins) == 2 and all(len(e) <= 9 for e in clf.model_.bins)
    assert clf.score(X[240:], y[240:]) > 0.8
    clf.save(tmp_path / "tabr_ple")
    np.testing.assert_allclose(tabattn.load(tmp_path / "tabr_ple").predict_proba(X),
                               clf.predict_proba(X), rtol=1e-5, atol=1e-6)


def test_ensemble_averages_its_members(rng):
    X = rng.normal(size=(300, 3))
    y = X[:, 0] - X[:, 1] ** 2
    reg = TabularRegressor(model="tabr", model_params=TABR_SMALL, ensemble_size=2, epochs=1,
                           batch_size=64, verbose=0, random_state=0).fit(X, y)
    assert len(reg.models_) == 2 and reg.model_ is reg.models_[0]
    assert len(reg.histories_) == 2 and reg.history_ is reg.histories_[0]
    # Different seeds: different members (the stored context rows are the same).
    first, second = (keras.ops.convert_to_numpy(m.trainable_weights[0]) for m in reg.models_)
    assert not np.allclose(first, second)
    inputs = reg._inputs(X[:40])
    members = [m.predict(inputs, verbose=0)[:, 0] * reg.target_std_ + reg.target_mean_
               for m in reg.models_]
    np.testing.assert_allclose(reg.predict(X[:40]), np.mean(members, axis=0), rtol=1e-6)


TABM_SMALL = {"k": 4, "d_block": 16}


def test_auto_trains_tabm_on_small_tables_and_tabr_above(rng, monkeypatch):
    import tabattn.estimators as estimators

    assert estimators.auto_model(estimators.AUTO_TABM_MAX_ROWS) == "tabm"
    assert estimators.auto_model(estimators.AUTO_TABM_MAX_ROWS + 1) == "tabr"
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.choice(["u", "v", "w"], 200)})
    y = np.where(X["a"] > 0.5, "hi", "lo")
    clf = TabularClassifier(model_params=TABM_SMALL, epochs=1, verbose=0, random_state=0)
    clf.fit(X, y)  # 160 training rows
    assert clf.model_name_ == "tabm" and len(clf.models_) == 1
    monkeypatch.setattr(estimators, "AUTO_TABM_MAX_ROWS", 100)
    clf = TabularClassifier(model_params=TABR_SMALL, epochs=1, verbose=0, random_state=0)
    assert clf.fit(X, y).model_name_ == "tabr"


def test_tabm_estimator_round_trips(rng, tmp_path):
    X = pd.DataFrame({"a": rng.normal(size=300), "flag": rng.integers(0, 2, 300),
                      "b": rng.choice(["u", "v", "w"], 300)})
    y = np.where(X["a"] + (X["b"] == "u") > 0.5, "hi", np.where(X["flag"] == 1, "mid", "lo"))
    clf = TabularClassifier(model="tabm", model_params=TABM_SMALL, epochs=3, verbose=0,
                            random_state=0).fit(X, y)
    # The two-valued numeric column is a category; "a" is embedded piecewise-linearly.
    assert clf.preprocessor_.categorical_columns_ == ["flag", "b"]
    assert clf.model_.numeric_embedding == "piecewise" and len(clf.model_.bins) == 1
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    # The members' mean probability, as TabM defines the ensemble's prediction.
    members = keras.ops.convert_to_numpy(clf.model_.member_outputs(clf._inputs(X)))
    e = np.exp(members - members.max(-1, keepdims=True))
    np.testing.assert_allclose(proba, (e / e.sum(-1, keepdims=True)).mean(1), rtol=1e-4,
                               atol=1e-6)
    clf.save(tmp_path / "tabm")
    loaded = tabattn.load(tmp_path / "tabm")
    np.testing.assert_allclose(loaded.predict_proba(X), proba, rtol=1e-6, atol=1e-7)
    reg = TabularRegressor(model="tabm", model_params=TABM_SMALL, epochs=2, verbose=0,
                           random_state=0).fit(X, X["a"] * 2)
    assert reg.predict(X).shape == (300,)


def test_ensemble_stops_adding_models_when_the_time_is_spent(rng):
    X = rng.normal(size=(200, 2))
    reg = TabularRegressor(model="tabr", model_params=TABR_SMALL, ensemble_size=3, epochs=5,
                           time_limit=1e-3, verbose=0, random_state=2**32 - 1)
    reg.fit(X, X[:, 0] + X[:, 1])  # the first model trains one epoch; no time is left for the others
    assert len(reg.models_) == 1 and len(reg.history_["loss"]) == 1
    assert reg.stop_reasons_ == ["time limit"]
    # All its epochs trained: the epochs ended it, even though the time is spent too.
    reg.set_params(ensemble_size=1, epochs=1).fit(X, X[:, 0] + X[:, 1])
    assert reg.stop_reasons_ == ["epochs"]


def test_permutation_importances_report_their_spread_and_noise(rng, tmp_path):
    n = 400
    X = pd.DataFrame({"signal": rng.normal(size=n), "noise": rng.normal(size=n)})
    y = np.where(X["signal"] > 0, "a", "b")
    clf = TabularClassifier(model="tabm", model_params=TABM_SMALL, epochs=15, verbose=0,
                            random_state=0).fit(X, y)
    importances = dict(zip(X.columns, clf.feature_importances_))
    assert importances["signal"] > 0.8 and not clf.feature_importances_noise_
    assert clf.feature_importances_std_.shape == (2,)
    clf.save(tmp_path / "m")
    loaded = tabattn.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.feature_importances_std_, clf.feature_importances_std_)
    # A target unrelated to the columns: nothing stands out from the shuffles' noise.
    unrelated = rng.choice(["a", "b"], n)
    clf = TabularClassifier(model="tabm", model_params=TABM_SMALL, epochs=2, verbose=0,
                            random_state=0).fit(X, unrelated)
    assert clf.feature_importances_noise_


class _Rates(keras.callbacks.Callback):
    """The learning rate of each epoch, as the estimator's schedule set it before the epoch."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_epoch_begin(self, epoch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def _cosine(initial, horizon, epochs):
    return [initial * 0.5 * (1 + np.cos(np.pi * e / horizon)) for e in range(epochs)]


def test_tabr_anneals_its_learning_rate_over_40_epochs_on_regression_30_on_classification(
        rng):
    X = rng.normal(size=(200, 3))
    rates = _Rates()
    reg = TabularRegressor(model="tabr", model_params=TABR_SMALL, patience=1, verbose=0,
                           random_state=0, callbacks=[rates])
    reg.fit(X, X[:, 0] + rng.normal(size=200))  # noise: early stopping ends it within 40
    n = len(reg.history_["loss"])
    assert 2 <= n < 40
    np.testing.assert_allclose(rates.rates, _cosine(2e-3, 40, n), rtol=1e-6)
    clf = TabularClassifier(model="tabr")
    clf.model_name_ = "tabr"
    assert clf._epochs() == 30
    for estimator in (TabularRegressor(model="tabm"), TabularClassifier(model="tabm")):
        estimator.model_name_ = "tabm"
        assert estimator._epochs() == 1000  # until early stopping
    explicit = TabularRegressor(model="tabr", epochs=7)
    explicit.model_name_ = "tabr"
    assert explicit._epochs() == 7


@pytest.mark.parametrize("model, schedule", [("tabr", "constant"), ("tabm", "cosine"),
                                             ("tabm", "auto")])
def test_learning_rate_schedule(rng, model, schedule):
    X = rng.normal(size=(120, 3))
    rates = _Rates()
    params = TABR_SMALL if model == "tabr" else TABM_SMALL
    TabularRegressor(model=model, model_params=params, epochs=4, learning_rate=0.01,
                     learning_rate_schedule=schedule, verbose=0, random_state=0,
                     callbacks=[rates]).fit(X, X[:, 0] + X[:, 1])
    expected = _cosine(0.01, 4, 4) if schedule == "cosine" else [0.01] * 4
    np.testing.assert_allclose(rates.rates, expected, rtol=1e-6)


def test_cosine_schedule_ends_within_the_time_limit():
    from tabattn.estimators import _CosineDecay, _TimeLimit

    class Model:  # only what the callback touches
        optimizer = type("Optimizer", (), {"learning_rate": None})()

    limit = _TimeLimit(seconds=100.0)
    limit.on_train_begin()
    limit.durations = [30.0]  # the first epoch, compilation included, does not count
    schedule = _CosineDecay(1.0, epochs=30, time_limit=limit)
    schedule.set_model(Model())
    schedule.on_epoch_begin(1)
    assert Model.optimizer.learning_rate == pytest.approx(0.5 * (1 + np.cos(np.pi / 30)))
    limit.start -= 39.5  # two epochs ran, 30 s (with compilation) and 10 s: 60.5 s are left
    limit.durations = [30.0, 10.0]
    schedule.on_epoch_begin(2)  # room for 6 more epochs: the rate reaches ~0 by epoch 7
    assert Model.optimizer.learning_rate == pytest.approx(0.5 * (1 + np.cos(np.pi * 2 / 8)),
                                                          rel=1e-3)
    # One slow epoch among fast ones: the room is counted in epochs of the median (10 s),
    # not the slowest (25 s), which would leave room for one.
    limit.start -= 25.0  # three more epochs: 35.5 s are left, room for 3
    limit.durations = [30.0, 10.0, 25.0, 10.0, 10.0]
    schedule.on_epoch_begin(5)
    assert Model.optimizer.learning_rate == pytest.approx(0.5 * (1 + np.cos(np.pi * 5 / 8)),
                                                          rel=1e-3)
    schedule.time_limit = None
    schedule.on_epoch_begin(2)
    assert Model.optimizer.learning_rate == pytest.approx(0.5 * (1 + np.cos(np.pi * 2 / 30)))


def test_feature_importances_are_computed_when_first_read(rng, tmp_path):
    import pickle

    X = pd.DataFrame({"signal": rng.normal(size=300), "noise": rng.normal(size=300)})
    y = np.where(X["signal"] > 0, "a", "b")
    clf = TabularClassifier(model="tabm", model_params=TABM_SMALL, epochs=10, verbose=0,
                            random_state=0).fit(X, y)
    assert clf._importance_cache is None  # fit did not compute them
    copy = pickle.loads(pickle.dumps(clf))
    importances = clf.feature_importances_
    assert importances[0] > importances[1] and clf._importance_rows is None
    np.testing.assert_array_equal(copy.feature_importances_, importances)
    np.testing.assert_array_equal(copy.feature_importances_std_, clf.feature_importances_std_)
    with pytest.raises(AttributeError):  # NotFittedError: hasattr is False before fit
        TabularClassifier().feature_importances_


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_modernnca_estimator_learns_round_trips_and_skips_each_rows_own_label(
        rng, tmp_path, task):
    X = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400),
                      "c": rng.choice(["u", "v", "w"], 400)})
    signal = np.sin(2 * X["a"]) + X["b"] + (X["c"] == "u")
    if task == "regression":
        y, cls = signal.to_numpy(), TabularRegressor
    else:
        edges = [0.5] if task == "binary" else [0.0, 1.0]
        y, cls = np.digitize(signal, edges), TabularClassifier
    est = cls(model="modernnca", model_params={"d_main": 16}, epochs=15, batch_size=64,
              verbose=0, random_state=0).fit(X[:300], y[:300])
    assert est.model_name_ == "modernnca"
    assert len(est.context_rows_) == est.model_.context_rows == 240  # the training split
    assert est.score(X[300:], y[300:]) > (0.5 if task == "regression" else 0.7)
    # Training rows that read their own label would score perfectly on themselves.
    assert est.history_["loss"][-1] > 1e-3
    est.save(tmp_path / task)
    loaded = tabattn.load(tmp_path / task)
    predict = "predict" if task == "regression" else "predict_proba"
    np.testing.assert_allclose(getattr(loaded, predict)(X[300:]),
                               getattr(est, predict)(X[300:]), rtol=1e-6, atol=1e-7)
