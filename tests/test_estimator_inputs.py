"""What the estimators accept and refuse: input containers, column names, targets, weights.

The checks of input run before any Keras code, so they run on one backend (PyTorch, which
compiles nothing); resuming a fit depends on the backend and runs on each.
"""

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import scipy.sparse
from sklearn.utils._param_validation import InvalidParameterError

from tabattn import TabularClassifier, TabularRegressor
from tabattn.data import ColumnWarning

TINY = dict(model="tabm", model_params={"k": 2, "d_block": 8, "n_blocks": 1}, epochs=2,
            batch_size=16, verbose=0, random_state=0)


@pytest.fixture
def table(rng):
    n = 60
    return pd.DataFrame({
        "a": rng.normal(size=n),
        "b": rng.normal(size=n) * 100,
        "c": rng.choice(["u", "v", "w"], n),
    }), pd.Series(rng.choice(["p", "q"], n), name="label")


@pytest.mark.torch_only
def test_polars_and_pyarrow_frames_predict_as_pandas(table):
    polars = pytest.importorskip("polars")
    X, y = table
    expected = TabularClassifier(**TINY).fit(X, y).predict_proba(X)
    for native in (polars.from_pandas(X), pa.Table.from_pandas(X)):
        clf = TabularClassifier(**TINY).fit(native, y)
        assert list(clf.feature_names_in_) == ["a", "b", "c"]
        assert clf.preprocessor_.numeric_columns_ == ["a", "b"]
        np.testing.assert_allclose(clf.predict_proba(native), expected, atol=1e-6)


@pytest.mark.torch_only
def test_object_array_keeps_numeric_columns_numeric(table):
    X, y = table
    clf = TabularClassifier(**TINY).fit(X.to_numpy(), y)  # dtype object: floats and strings
    assert clf.preprocessor_.numeric_columns_ == ["x0", "x1"]
    assert clf.preprocessor_.categorical_columns_ == ["x2"]
    assert not hasattr(clf, "feature_names_in_")


@pytest.mark.torch_only
def test_frame_without_string_names_predicts_on_itself(rng):
    X = pd.DataFrame(rng.normal(size=(40, 2)))  # integer column names, as pd.DataFrame(array)
    y = X[0] + X[1]
    reg = TabularRegressor(**TINY).fit(X, y)
    assert reg.predict(X).shape == (40,) and not hasattr(reg, "feature_names_in_")
    np.testing.assert_allclose(reg.predict(X.to_numpy()), reg.predict(X))


@pytest.mark.torch_only
def test_names_at_predict_must_match_fit(table):
    X, y = table
    clf = TabularClassifier(**TINY).fit(X, y)
    with pytest.raises(ValueError, match=r"(?s)unseen at fit time:.*- d"):
        clf.predict(X.assign(d=1.0))
    with pytest.raises(ValueError, match="X has 2 features, but TabularClassifier is expecting 3"):
        clf.predict(X[["a", "b"]].to_numpy())


@pytest.mark.torch_only
def test_duplicate_column_names_are_refused(table):
    X, y = table
    X = pd.concat([X, X[["a"]]], axis=1)
    with pytest.raises(ValueError, match=r"more than one column named \['a'\]"):
        TabularClassifier(**TINY).fit(X, y)


@pytest.mark.torch_only
def test_a_copy_of_the_target_is_refused(table):
    X, y = table
    with pytest.raises(ValueError, match=r"'label\.1'.*second copy of the target 'label'"):
        TabularClassifier(**TINY).fit(X.assign(**{"label.1": y.to_numpy()}), y)
    with pytest.raises(ValueError, match="Feature column 'copy' equals the target on every row"):
        TabularClassifier(**TINY).fit(X.assign(copy=y.to_numpy()), y)
    # A column named like the target's internal name is an ordinary feature.
    clf = TabularClassifier(**TINY).fit(X.assign(__target__=1.5 * X["a"]), y)
    assert "__target__" in clf.preprocessor_.numeric_columns_


@pytest.mark.torch_only
def test_misleading_columns_are_named_in_a_warning(rng):
    n = 40
    X = pd.DataFrame({
        "id": np.arange(n) + 1000,
        "when": [f"2024-01-{d % 28 + 1:02d}" for d in range(n)],
        "amount": [f"{1000 + 37 * i:,}" for i in range(n)],
        "x": rng.normal(size=n),
    })
    y = rng.choice([0, 1], n)
    with pytest.warns(ColumnWarning) as caught:
        TabularClassifier(**TINY).fit(X, y)
    messages = " ".join(str(w.message) for w in caught)
    assert "'id' has a different value in every row" in messages
    assert "'when' holds dates as text" in messages
    assert "'amount' holds numbers written with thousands separators" in messages
    # Columns whose role the user chose are not second-guessed.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ColumnWarning)
        TabularClassifier(**TINY, numeric=["id"], categorical=["when", "amount"]).fit(X, y)


@pytest.mark.torch_only
def test_regression_target_with_infinity_fails_before_training(rng):
    X = rng.normal(size=(30, 2))
    y = X[:, 0] * 2 + X[:, 1]
    y[3] = np.inf
    with pytest.raises(ValueError, match="regression target holds 1 infinite values"):
        TabularRegressor(**TINY).fit(X, y)


@pytest.mark.torch_only
def test_huge_finite_values_train(rng):
    X = rng.normal(size=(40, 2)) * 1e200
    y = X[:, 0] / 1e200 * 1e160 + rng.normal(size=40) * 1e158
    predictions = TabularRegressor(**TINY).fit(X, y).predict(X)
    assert np.isfinite(predictions).all()


@pytest.mark.torch_only
@pytest.mark.parametrize("param, value", [
    ("epochs", 0), ("batch_size", 0), ("batch_size", "big"), ("learning_rate", -1.0),
    ("validation_fraction", 1.0), ("patience", -1), ("model", "gbdt"), ("callbacks", "x"),
])
@pytest.mark.torch_only
def test_bad_parameters_name_themselves(rng, param, value):
    X, y = rng.normal(size=(20, 2)), [0, 1] * 10
    with pytest.raises(InvalidParameterError, match=f"The '{param}' parameter"):
        TabularClassifier(**{**TINY, param: value}).fit(X, y)


@pytest.mark.torch_only
def test_sparse_input_is_refused_clearly(rng):
    X = scipy.sparse.csr_matrix(rng.normal(size=(20, 2)))
    with pytest.raises(TypeError, match="Sparse data was passed"):
        TabularRegressor(**TINY).fit(X, rng.normal(size=20))


@pytest.mark.torch_only
def test_zero_sample_weights_leave_rows_out(rng):
    # Half the rows carry the opposite label with weight 0: the model learns the other half.
    n = 400
    X = pd.DataFrame({"a": rng.normal(size=n)})
    clean = np.where(X["a"] > 0, "pos", "neg")
    flipped = np.where(X["a"] > 0, "neg", "pos")
    y = np.where(np.arange(n) % 2 == 0, clean, flipped)
    weight = (np.arange(n) % 2 == 0).astype(float)
    clf = TabularClassifier(**{**TINY, "epochs": 30, "batch_size": 32}).fit(
        X, y, sample_weight=weight
    )
    assert (clf.predict(X) == clean).mean() > 0.9
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        TabularClassifier(**TINY).fit(X, y, sample_weight=-weight)


def test_training_batches_are_shuffled_from_the_seed_and_epoch():
    from tabattn.estimators import _ShuffledBatches

    inputs = {"numeric": np.arange(10.0)[:, None]}
    batches = _ShuffledBatches(inputs, np.arange(10), np.ones(10), batch_size=4, seed=3)
    assert len(batches) == 3

    def epoch(number):
        batches.set_epoch(number)
        return [batches[i] for i in range(len(batches))]

    first = epoch(0)
    assert all(len(b[1]) == 4 and len(b[2]) == 4 for b in first)  # the last filled up
    seen = np.concatenate([b[1] for b in first])
    assert set(seen[:10]) == set(range(10))  # every row once, then the epoch's first two
    np.testing.assert_array_equal(seen[10:], seen[:2])
    np.testing.assert_array_equal(first[0][0]["numeric"][:, 0], first[0][1])
    assert not np.array_equal(np.concatenate([b[1] for b in epoch(1)]), seen)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in epoch(0)]), seen)
    small = _ShuffledBatches(inputs, np.arange(10), None, batch_size=16, seed=0)
    assert len(small) == 1 and len(small[0]) == 2 and len(small[0][1]) == 10


class _Interrupt(__import__("keras").callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt


def test_an_interrupted_fit_resumes_to_the_same_model(rng, tmp_path):
    # TabR: dropout, shuffling and the moving average of its weights all resume.
    X = pd.DataFrame({"a": rng.normal(size=120), "b": rng.choice(["u", "v"], 120)})
    y = X["a"] * 2 + (X["b"] == "u")
    kwargs = dict(model="tabr", model_params={"d_main": 8, "num_neighbors": 4}, epochs=5, batch_size=16, patience=2,
                  verbose=0, random_state=5)
    expected = TabularRegressor(**kwargs).fit(X, y)
    backup = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        TabularRegressor(**kwargs, backup_dir=str(backup), callbacks=[_Interrupt()]).fit(X, y)
    assert (backup / "member_0" / "fit_state.json").exists()
    resumed = TabularRegressor(**kwargs, backup_dir=str(backup)).fit(X, y)
    assert resumed.history_.keys() == expected.history_.keys()
    for key, values in expected.history_.items():
        np.testing.assert_allclose(resumed.history_[key], values, rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(resumed.predict(X), expected.predict(X), rtol=1e-5, atol=1e-6)
    assert not backup.exists()


@pytest.mark.torch_only
def test_nan_in_a_list_of_labels_is_missing(rng):
    X = rng.normal(size=(22, 2))
    y = ["a", "b"] * 10 + [float("nan"), float("nan")]
    with pytest.warns(UserWarning, match="Dropped 2 of 22 rows"):
        clf = TabularClassifier(**TINY).fit(X, y)
    assert list(clf.classes_) == ["a", "b"]
