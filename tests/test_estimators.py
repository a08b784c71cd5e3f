"""TabularClassifier / TabularRegressor end to end on real Adult rows, and their API."""

import json
import os

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import tabattn
from tabattn import TabularClassifier, TabularRegressor
from tabattn.estimators import evaluation_metrics

SMALL = {"n_blocks": 1, "d_token": 32, "num_heads": 4}
MEDIUM = {"n_blocks": 2, "d_token": 64, "num_heads": 4}
FT = "ft_transformer"  # the FT-Transformer tests name it; the default (auto) is TabR


@pytest.fixture(scope="module")
def fitted_classifier(adult_small):
    train, _ = adult_small
    clf = TabularClassifier(
        model=FT, epochs=3, batch_size=128, learning_rate=1e-3, model_params=MEDIUM, verbose=0,
        random_state=0,
    )
    return clf.fit(train.drop(columns=["income"]), train["income"])


def test_classifier_learns_adult(fitted_classifier, adult_small):
    _, test = adult_small
    X, y = test.drop(columns=["income"]), test["income"]
    majority = (y == "<=50K").mean()
    accuracy = fitted_classifier.score(X, y)
    assert accuracy > majority + 0.04, (accuracy, majority)
    metrics = evaluation_metrics(fitted_classifier, X, y)
    assert metrics["roc_auc"] > 0.8 and metrics["log_loss"] < 0.5
    proba = fitted_classifier.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(fitted_classifier.predict(X)) <= {"<=50K", ">50K"}


def test_fitted_attributes(fitted_classifier, adult_small):
    train, _ = adult_small
    clf = fitted_classifier
    assert list(clf.classes_) == ["<=50K", ">50K"]
    assert clf.n_features_in_ == 14
    assert list(clf.feature_names_in_) == list(train.columns.drop("income"))
    assert len(clf.history_["loss"]) == 3 and "val_loss" in clf.history_
    assert clf.feature_importances_.shape == (14,)
    assert clf.feature_importances_.min() >= 0
    np.testing.assert_allclose(clf.feature_importances_.sum(), 1.0)


def test_save_load_identical_predictions(fitted_classifier, adult_small, tmp_path):
    _, test = adult_small
    X = test.drop(columns=["income"])
    fitted_classifier.save(tmp_path / "model")
    loaded = tabattn.load(tmp_path / "model")
    assert isinstance(loaded, TabularClassifier)
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted_classifier.predict_proba(X))
    np.testing.assert_array_equal(loaded.feature_importances_, fitted_classifier.feature_importances_)
    assert loaded.get_params() == fitted_classifier.get_params()


def test_prediction_does_not_depend_on_batch(fitted_classifier, adult_small):
    X = adult_small[1].drop(columns=["income"]).iloc[:50]
    together = fitted_classifier.predict_proba(X)
    one_by_one = np.concatenate([fitted_classifier.predict_proba(X.iloc[[i]]) for i in range(5)])
    np.testing.assert_allclose(one_by_one, together[:5], atol=1e-5)


def test_random_state_makes_fit_repeatable(adult_small):
    train, test = adult_small
    X, y = train.drop(columns=["income"]).iloc[:600], train["income"].iloc[:600]
    kwargs = dict(model=FT, epochs=1, model_params=SMALL, verbose=0, random_state=3)
    X_test = test.drop(columns=["income"]).iloc[:100]
    a = TabularClassifier(**kwargs).fit(X, y).predict_proba(X_test)
    b = TabularClassifier(**kwargs).fit(X, y).predict_proba(X_test)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_sklearn_conventions():
    clf = TabularClassifier(epochs=7, model_params={"n_blocks": 1})
    assert clf.get_params()["model"] == "auto"
    assert clf.get_params()["epochs"] == 7
    assert clone(clf).get_params() == clf.get_params()
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        clf.predict(np.zeros((2, 3)))


def test_regressor_on_numpy_and_eval_set(rng, tmp_path):
    X = rng.normal(size=(600, 4))
    y = 3.0 * X[:, 0] - 2.0 * X[:, 1] ** 2 + 100.0
    reg = TabularRegressor(
        model=FT, epochs=30, batch_size=64, learning_rate=3e-3, model_params=SMALL, verbose=0,
        random_state=0,
    )
    reg.fit(X[:500], y[:500], eval_set=(X[500:], y[500:]))
    assert not hasattr(reg, "feature_names_in_") and reg.n_features_in_ == 4
    predicted = reg.predict(X[500:])
    assert abs(predicted.mean() - y[500:].mean()) < 0.5 * y.std()  # standardisation undone
    assert reg.score(X[500:], y[500:]) > 0.6
    reg.save(tmp_path / "reg")
    np.testing.assert_array_equal(tabattn.load(tmp_path / "reg").predict(X[500:]), predicted)


def test_multiclass_and_class_weight(rng):
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.choice(["u", "v"], 300)})
    y = np.where(X["a"] > 0.8, "high", np.where(X["a"] < -0.8, "low", "mid"))
    clf = TabularClassifier(
        model=FT, epochs=2, model_params=SMALL, class_weight="balanced", verbose=0, random_state=0
    ).fit(X, y)
    assert list(clf.classes_) == ["high", "low", "mid"]
    assert clf.predict_proba(X).shape == (300, 3)
    assert set(evaluation_metrics(clf, X, y)) == {"accuracy", "roc_auc", "log_loss"}


def test_bad_targets(rng):
    X = pd.DataFrame({"a": rng.normal(size=20)})
    clf = TabularClassifier(model=FT, epochs=1, model_params=SMALL, verbose=0)
    with pytest.raises(ValueError, match="only one class"):
        clf.fit(X, ["yes"] * 20)
    with pytest.raises(ValueError, match="no values"):
        clf.fit(X, [np.nan] * 20)
    with pytest.raises(ValueError, match="different numbers of rows"):
        clf.fit(X, [0, 1] * 5)
    with pytest.warns(UserWarning, match="Dropped 2 of 20 rows"):
        clf.fit(X, [0, 1] * 9 + [np.nan, np.nan])


def test_missing_column_at_predict(fitted_classifier, adult_small):
    X = adult_small[1].drop(columns=["income", "age"])
    with pytest.raises(ValueError, match=r"(?s)seen at fit time, yet now missing:.*- age"):
        fitted_classifier.predict(X)


TABR_SMALL = {"d_main": 32, "num_neighbors": 16}
TABM_SMALL = {"k": 4, "d_block": 16}


def test_tabr_classifier_on_adult(adult_small, tmp_path):
    train, test = adult_small
    X, y = test.drop(columns=["income"]), test["income"]
    clf = TabularClassifier(model="tabr", model_params=TABR_SMALL, epochs=3, batch_size=128,
                            learning_rate=1e-3, verbose=0, random_state=0)
    clf.fit(train.drop(columns=["income"]), train["income"])
    assert clf.model_name_ == "tabr" and clf.model_.context_rows == int(0.8 * len(train))
    assert clf.score(X, y) > (y == "<=50K").mean() + 0.04
    assert clf.feature_importances_.shape == (14,) and clf.feature_importances_.min() >= 0
    np.testing.assert_allclose(clf.feature_importances_.sum(), 1.0)
    proba = clf.predict_proba(X.iloc[:50])
    one_by_one = np.concatenate([clf.predict_proba(X.iloc[[i]]) for i in range(7)])
    np.testing.assert_allclose(one_by_one, proba[:7], atol=1e-5)
    clf.save(tmp_path / "tabr")
    loaded = tabattn.load(tmp_path / "tabr")
    assert loaded.model_name_ == "tabr"
    for saved, restored in zip(clf.model_.weights, loaded.model_.weights):
        np.testing.assert_array_equal(np.asarray(restored), np.asarray(saved))  # context too
    # TensorFlow's recompiled (XLA) predict may round the last bit differently.
    np.testing.assert_allclose(loaded.predict_proba(X.iloc[:50]), proba, rtol=1e-6, atol=1e-7)


def test_unknown_model():
    X, y = np.zeros((10, 2)), [0, 1] * 5
    with pytest.raises(ValueError, match="The 'model' parameter of TabularClassifier"):
        TabularClassifier(model="gbdt").fit(X, y)


def test_auto_batch_size():
    from tabattn.estimators import auto_batch_size

    assert [auto_batch_size(n) for n in (10, 220, 640, 2000, 4000, 4096, 10**6)] == [
        32, 32, 32, 64, 128, 256, 256]


def test_user_callbacks_see_every_epoch(rng, tmp_path):
    X, y = rng.normal(size=(100, 3)), rng.normal(size=100)
    log = tmp_path / "log.csv"
    reg = TabularRegressor(model="tabm", model_params=TABM_SMALL, epochs=3, verbose=0,
                           callbacks=[keras.callbacks.CSVLogger(str(log))]).fit(X, y)
    assert len(log.read_text().strip().splitlines()) == 1 + len(reg.history_["loss"])
    reg.save(tmp_path / "saved")  # callbacks are not saved
    assert tabattn.load(tmp_path / "saved").callbacks is None


def test_loads_a_save_from_before_ensembles(fitted_classifier, adult_small, tmp_path):
    fitted_classifier.save(tmp_path / "old")
    state_file = tmp_path / "old" / "estimator.json"
    state = json.loads(state_file.read_text())
    assert state["history"] == state["histories"][0]  # older versions read "history"
    del state["histories"], state["params"]["ensemble_size"]
    state_file.write_text(json.dumps(state))
    loaded = tabattn.load(tmp_path / "old")
    assert len(loaded.models_) == 1 and loaded.history_ == fitted_classifier.history_
    X = adult_small[1].drop(columns=["income"]).iloc[:50]
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted_classifier.predict_proba(X))


def test_ensemble_size_rule():
    assert TabularClassifier()._ensemble_size(100) == 1
    assert TabularRegressor(ensemble_size=3)._ensemble_size(10**6) == 3


@pytest.mark.parametrize("size", [0, -2, 2.0, "3"])
def test_bad_ensemble_size(rng, size):
    X, y = rng.normal(size=(20, 2)), [0, 1] * 10
    with pytest.raises(ValueError, match=r"The 'ensemble_size' parameter .* must be an int"):
        TabularClassifier(ensemble_size=size, verbose=0).fit(X, y)
