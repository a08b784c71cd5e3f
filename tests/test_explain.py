"""Explanations of single predictions: SHAP values on the raw columns, TabR's and ModernNCA's
neighbours, the FT-Transformer's attention over columns."""

import numpy as np
import pandas as pd
import pytest

from tabattn import TabularClassifier, TabularRegressor, load

# SHAP values come from the shap library over the estimators' predictions, the same on every
# backend; the models' own parts (TabR's neighbours, the FT-Transformer's attention maps) are
# tested on each backend in test_tabr.py and test_ft_transformer.py.
pytestmark = pytest.mark.torch_only

TABR_SMALL = {"d_main": 16, "num_neighbors": 4}


def _table(n=160, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "a": rng.normal(size=n),
        "noise": rng.normal(size=n),
        "colour": rng.choice(["red", "green", "blue"], size=n),
    })
    X.loc[::17, "noise"] = np.nan
    X.loc[::23, "colour"] = None
    return X


@pytest.fixture(scope="module")
def tabr_classifier():
    X = _table()
    y = np.where((X["a"] > 0) | (X["colour"] == "red"), "yes", "no")
    clf = TabularClassifier(model="tabr", model_params=TABR_SMALL, epochs=8, batch_size=32,
                            learning_rate=3e-3, verbose=0, random_state=0)
    return clf.fit(X, y), X, y


def test_classifier_shap_values_add_up_to_each_probability(tabr_classifier):
    clf, X, _ = tabr_classifier
    rows = X.iloc[:8]
    explanation = clf.explain(rows, background=X.iloc[100:140], max_evals=49)
    values = explanation.shap.values
    assert values.shape == (8, 3, 2)
    assert list(explanation.shap.feature_names) == ["a", "noise", "colour"]
    proba = clf.predict_proba(rows)
    np.testing.assert_allclose(explanation.predictions, proba)
    np.testing.assert_allclose(explanation.shap.base_values + values.sum(axis=1), proba, atol=1e-6)
    # The base value is the mean prediction over the background rows.
    np.testing.assert_allclose(
        explanation.shap.base_values[0], clf.predict_proba(X.iloc[100:140]).mean(axis=0),
        atol=1e-6,
    )
    # The raw values, categorical and missing ones included, are kept.
    assert explanation.shap.data[1, 2] == X["colour"].iloc[1]
    # The label depends on `a` and `colour`, not on `noise`.
    mean_abs = np.abs(values[..., 1]).mean(axis=0)
    assert mean_abs[1] < 0.5 * max(mean_abs[0], mean_abs[2])
    frame = explanation.to_frame()
    assert len(frame) == 8 * 3 * 2
    assert set(frame["class"]) == {"no", "yes"}
    np.testing.assert_allclose(
        frame.groupby(["row", "class"])["contribution"].sum().to_numpy()
        + frame.groupby(["row", "class"])["base_value"].first().to_numpy(),
        proba.reshape(-1), atol=1e-6,
    )


def test_tabr_neighbours_are_training_rows_with_their_labels(tabr_classifier):
    clf, X, y = tabr_classifier
    explanation = clf.explain(X.iloc[:5], background=X.iloc[:10], max_evals=7)
    neighbors = explanation.neighbors
    assert list(neighbors.columns) == ["row", "rank", "training_row", "target", "weight"]
    assert len(neighbors) == 5 * TABR_SMALL["num_neighbors"]
    np.testing.assert_allclose(neighbors.groupby("row")["weight"].sum(), 1.0, atol=1e-5)
    assert (neighbors.groupby("row")["weight"].diff().dropna() <= 1e-6).all()  # nearest first
    # Positions in the X given to fit, whose labels the model retrieved.
    np.testing.assert_array_equal(
        neighbors["target"].to_numpy(), y[neighbors["training_row"].to_numpy()]
    )
    assert explanation.attention is None


def test_modernnca_neighbours_are_its_largest_weights():
    X = _table(120, seed=3)
    y = 2.0 * X["a"].to_numpy() + (X["colour"] == "red").to_numpy()
    reg = TabularRegressor(model="modernnca", model_params={"d_main": 16}, epochs=3,
                           batch_size=32, verbose=0, random_state=0).fit(X, y)
    explanation = reg.explain(X.iloc[:4], background=X.iloc[:10], max_evals=7)
    neighbors = explanation.neighbors
    assert list(neighbors.columns) == ["row", "rank", "training_row", "target", "weight"]
    assert len(neighbors) == 4 * 8
    assert (neighbors.groupby("row")["weight"].sum() <= 1 + 1e-6).all()
    assert (neighbors.groupby("row")["weight"].diff().dropna() <= 1e-6).all()
    # The stored values, back in the target's units, of the training rows named.
    np.testing.assert_allclose(
        neighbors["target"].to_numpy(dtype="float64"),
        y[neighbors["training_row"].to_numpy()], rtol=1e-5, atol=1e-5,
    )


def test_explanations_of_a_loaded_model_are_the_same(tabr_classifier, tmp_path):
    clf, X, _ = tabr_classifier
    clf.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    def values(frame):  # a missing category is None or NaN as pandas chooses
        return frame.astype(object).where(frame.notna(), None)

    pd.testing.assert_frame_equal(values(loaded.background_), values(clf.background_))
    assert len(clf.background_) == 100
    # The kept background rows are the default.
    before = clf.explain(X.iloc[:2], max_evals=7)
    after = loaded.explain(X.iloc[:2], max_evals=7)
    np.testing.assert_allclose(after.shap.values, before.shap.values, atol=1e-6)
    pd.testing.assert_frame_equal(after.neighbors, before.neighbors)


def test_regressor_shap_values_and_attention():
    X = _table(200, seed=1)
    y = 3.0 * X["a"].to_numpy() + 0.1 * np.random.default_rng(2).normal(size=len(X))
    reg = TabularRegressor(
        model="ft_transformer", model_params={"n_blocks": 1, "d_token": 16, "num_heads": 2},
        epochs=3, batch_size=64, verbose=0, random_state=0,
    ).fit(X, y)
    rows = X.iloc[:6]
    explanation = reg.explain(rows, background=X.iloc[100:130], max_evals=15)
    values = explanation.shap.values
    assert values.shape == (6, 3)
    np.testing.assert_allclose(
        explanation.shap.base_values + values.sum(axis=1), reg.predict(rows), atol=1e-5
    )
    attention = explanation.attention
    assert attention.shape == (6, 3) and list(attention.columns) == ["a", "noise", "colour"]
    assert (attention.to_numpy() >= 0).all() and (attention.sum(axis=1) <= 1 + 1e-6).all()
    assert explanation.neighbors is None
    frame = explanation.to_frame()
    assert list(frame.columns) == ["row", "column", "value", "base_value", "contribution"]


def test_bad_arguments_are_clear_errors(tabr_classifier):
    clf, X, _ = tabr_classifier
    with pytest.raises(ValueError, match="max_evals"):
        clf.explain(X.iloc[:1], max_evals=3)
    with pytest.raises(ValueError, match="background"):
        clf.explain(X.iloc[:1], background=X.iloc[:0])
    with pytest.raises(ValueError, match="feature names"):
        clf.explain(X.iloc[:1].rename(columns={"a": "b"}))
