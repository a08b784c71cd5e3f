"""Reading tables, inferring roles and tasks, and the JSON-saved preprocessing."""

import json
import pathlib

import numpy as np
import pandas as pd
import pytest
import sklearn
from scipy.stats import norm
from sklearn.utils.validation import check_is_fitted

from tabattn.data import TabularPreprocessor, drop_missing_target, infer_task, read_table

DATA = pathlib.Path(__file__).parent / "data"


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "age": [20.0, 35.0, np.nan, 50.0, 41.0, 29.0],
            "hours": [40, 45, 38, 60, 20, 40],
            "city": ["a", "b", "a", None, "c", "b"],
            "member": [True, False, True, True, False, False],
            "zip": [101, 102, 101, 103, 102, 101],
        }
    )


def test_roles_inferred_and_forced(frame):
    pre = TabularPreprocessor(categorical=["zip"]).fit(frame)
    assert pre.numeric_columns_ == ["age", "hours"]
    assert pre.categorical_columns_ == ["city", "member", "zip"]
    assert pre.missing_flag_columns_ == ["age"]
    assert pre.token_columns_ == ["age", "hours", "age", "city", "member", "zip"]
    assert pre.categorical_cardinalities == (3, 2, 3)


def test_numeric_columns_with_two_values_are_categories():
    frame = pd.DataFrame({"flag": [0, 1, 1, 0, np.nan], "rate": [0.5, 1.0, 1.5, 2.0, 2.5],
                          "const": [3.0] * 5})
    pre = TabularPreprocessor().fit(frame)
    assert pre.categorical_columns_ == ["flag", "const"] and pre.numeric_columns_ == ["rate"]
    codes = pre.transform(pd.DataFrame({"flag": [1, 0, np.nan, 7], "rate": [1.0] * 4,
                                        "const": [3.0, 3.0, 3.0, 4.0]}))["categorical"]
    np.testing.assert_array_equal(codes, [[2, 1], [1, 1], [0, 1], [0, 0]])  # 0: missing/new
    forced = TabularPreprocessor(numeric=["flag"]).fit(frame)
    assert forced.numeric_columns_ == ["flag", "rate"]


def test_transform_codes_missing_flags_and_unseen(frame):
    pre = TabularPreprocessor().fit(frame)
    out = pre.transform(frame)
    assert out["numeric"].dtype == np.float32 and out["numeric"].shape == (6, 4)
    np.testing.assert_array_equal(out["numeric"][:, -1], [0, 0, 1, 0, 0, 0])  # age missing flag
    assert np.isfinite(out["numeric"]).all()
    assert out["categorical"].dtype == np.int32
    np.testing.assert_array_equal(out["categorical"][:, 0], [1, 2, 1, 0, 3, 2])  # None → 0
    new = frame.copy()
    new.loc[0, "city"] = "never seen"
    assert pre.transform(new)["categorical"][0, 0] == 0


def test_quantile_transform_gives_normal_scores():
    values = np.random.default_rng(0).exponential(size=(3000, 1))
    pre = TabularPreprocessor().fit(pd.DataFrame({"x": values[:, 0]}))
    z = pre.transform(pd.DataFrame({"x": values[:, 0]}))["numeric"][:, 0]
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.1


def test_json_round_trip_is_exact(frame, tmp_path):
    pre = TabularPreprocessor(categorical=["zip"]).fit(frame)
    pre.save(tmp_path / "pre.json")
    again = TabularPreprocessor.load(tmp_path / "pre.json")
    a, b = pre.transform(frame), again.transform(frame)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert "pickle" not in (tmp_path / "pre.json").read_text()


def test_category_keys_stable_across_dtypes():
    train = pd.DataFrame({"code": [1, 2, 3, 2]})
    pre = TabularPreprocessor(categorical=["code"]).fit(train)
    as_float = pd.DataFrame({"code": [1.0, np.nan, 3.0]})
    as_str = pd.DataFrame({"code": ["1", "2", "9"]})
    np.testing.assert_array_equal(pre.transform(as_float)["categorical"][:, 0], [1, 0, 3])
    np.testing.assert_array_equal(pre.transform(as_str)["categorical"][:, 0], [1, 2, 0])


def test_forced_numeric_with_strings_is_an_error():
    data = pd.DataFrame({"size": ["1", "2", "large"]})
    with pytest.raises(ValueError, match=r"'size'.*non-numeric.*'large'"):
        TabularPreprocessor(numeric=["size"]).fit(data)


def test_inf_is_an_error(frame):
    pre = TabularPreprocessor().fit(frame)
    bad = frame.astype({"hours": "float64"})
    bad.loc[1, "hours"] = np.inf
    with pytest.raises(ValueError, match="'hours'.*infinite"):
        pre.transform(bad)
    with pytest.raises(ValueError, match="infinite"):
        TabularPreprocessor().fit(bad)


def test_unknown_forced_column_and_missing_column(frame):
    with pytest.raises(ValueError, match=r"`categorical` names columns.*\['nope'\]"):
        TabularPreprocessor(categorical=["nope"]).fit(frame)
    pre = TabularPreprocessor().fit(frame)
    with pytest.raises(ValueError, match=r"missing feature columns.*\['city'\]"):
        pre.transform(frame.drop(columns=["city"]))


def test_infer_task():
    assert infer_task(pd.Series(["a", "b"])) == "classification"
    assert infer_task(pd.Series([True, False])) == "classification"
    assert infer_task(pd.Series([1, 2, 3, 1])) == "classification"
    assert infer_task(pd.Series(np.arange(100))) == "regression"
    assert infer_task(pd.Series([0.5, 1.5, 2.0])) == "regression"


def test_drop_missing_target_warns_with_count(frame):
    frame["y"] = [1, np.nan, 0, 1, np.nan, 0]
    with pytest.warns(UserWarning, match="Dropped 2 of 6 rows"):
        kept = drop_missing_target(frame, "y")
    assert len(kept) == 4
    frame["y"] = np.nan
    with pytest.raises(ValueError, match="'y' has no values"):
        drop_missing_target(frame, "y")
    with pytest.raises(ValueError, match="Target column 'nope' not found"):
        drop_missing_target(frame, "nope")


def test_read_table_formats_and_errors(frame, tmp_path):
    frame.to_csv(tmp_path / "t.csv.gz", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    assert read_table(tmp_path / "t.csv.gz").shape == frame.shape
    assert read_table(tmp_path / "t.parquet").shape == frame.shape
    assert read_table(frame).shape == frame.shape
    with pytest.raises(FileNotFoundError, match="not found"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="no rows"):
        read_table(tmp_path / "header.csv")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(ValueError, match="Unsupported file type"):
        read_table(tmp_path / "t.xlsx")


def test_split_rows_official_column_or_random_stratified():
    import pandas as pd

    from tabattn.data import split_rows

    frame = pd.DataFrame({"x": range(100), "y": ["a", "b"] * 50,
                          "split": ["train"] * 80 + ["test"] * 20})
    train, validation, test, how = split_rows(frame, "y", "classification", seed=0)
    assert how == "column 'split'" and len(test) == 20 and len(validation) == 16
    assert "split" not in train.columns and set(test["x"]) == set(range(80, 100))
    assert sorted(train["x"].tolist() + validation["x"].tolist()) == list(range(80))
    train, validation, test, how = split_rows(frame.drop(columns="split"), "y", "classification", 1)
    assert how == "random 20%" and (len(train), len(validation), len(test)) == (64, 16, 20)
    assert (test["y"] == "a").sum() == 10  # stratified
    frame.loc[3, "split"] = None
    with pytest.raises(ValueError, match="has no value in 1 of 100 rows"):
        split_rows(frame, "y", "classification", 0, split_column="split")


def _mixed_frames():
    """Training rows with missing values and mixed-type categories (1, "1", 1.0 and True,
    "True" are one category each), and new rows with unseen categories and missing values."""
    train = pd.DataFrame({
        "x": [0.5, np.nan, 2.0, 3.5, np.nan, -1.0, 4.0, 2.5],
        "n": [3, 1, 4, 1, 5, 9, 2, 6],
        "mixed": pd.Series([1, "1", True, "a", None, 2.0, "b", 1.0], dtype=object),
        "city": ["p", "q", None, "p", "r", "q", "p", "r"],
    })
    new = pd.DataFrame({
        "city": ["q", "s", None, "p"],  # another column order, an extra column: both fine
        "x": [np.nan, 100.0, -100.0, 1.0],
        "n": [np.nan, 0.0, 4.0, 20.0],
        "mixed": pd.Series([1.0, 3, "True", None], dtype=object),
        "extra": ["ignored"] * 4,
    })
    return train, new


def _reference_numeric(train, new, columns, random_state):
    """The documented numeric preprocessing in NumPy: median imputation, normal scores of
    quantiles fitted on slightly noisy values, then a 0/1 flag per column with NaN in fit."""
    fitted, values = train[columns].to_numpy(float), new[columns].to_numpy(float)
    medians = np.nanmedian(fitted, axis=0)
    filled = np.where(np.isnan(fitted), medians, fitted)
    noise = np.random.default_rng(random_state).normal(size=filled.shape)
    noisy = filled + noise * np.maximum(filled.std(axis=0), 1e-12) * 1e-3
    levels = np.linspace(0, 1, min(max(len(train) // 30, 10), len(train)))
    quantiles = np.maximum.accumulate(np.percentile(noisy, levels * 100, axis=0), axis=0)
    new_filled = np.where(np.isnan(values), medians, values)
    scores = np.empty_like(new_filled)
    for j in range(len(columns)):
        column, q = new_filled[:, j], quantiles[:, j]
        share = np.interp(column, q, levels)
        share[column + 1e-7 > q[-1]], share[column - 1e-7 < q[0]] = 1.0, 0.0
        # scikit-learn clips the normal scores at its 1e-7 tails.
        tail = 1e-7 - np.spacing(1)
        scores[:, j] = np.clip(norm.ppf(share), norm.ppf(tail), norm.ppf(1 - tail))
    flags = np.isnan(fitted).any(axis=0)
    return medians, quantiles, np.hstack([scores, np.isnan(values)[:, flags]])


def test_transform_matches_a_numpy_pandas_reference():
    train, new = _mixed_frames()
    pre = TabularPreprocessor(random_state=5).fit(train)
    assert pre.numeric_columns_ == ["x", "n"] and pre.missing_flag_columns_ == ["x"]
    assert pre.categorical_columns_ == ["mixed", "city"]
    assert pre.categories_ == {"mixed": ["1", "2", "True", "a", "b"], "city": ["p", "q", "r"]}
    medians, quantiles, numeric = _reference_numeric(train, new, ["x", "n"], 5)
    np.testing.assert_array_equal(pre.medians_, medians)
    np.testing.assert_allclose(np.asarray(pre.quantiles_).T, quantiles, rtol=1e-9)
    out = pre.transform(new)
    assert out["numeric"].dtype == np.float32 and out["numeric"].shape == (4, 3)
    np.testing.assert_allclose(out["numeric"], numeric, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["numeric"][:, 2], [1, 0, 0, 0])  # x's missing flag
    # Codes: 0 for missing or unseen, 1..n for the known keys in sorted order.
    expected = {"mixed": [1, 0, 3, 0], "city": [2, 0, 0, 1]}
    assert out["categorical"].dtype == np.int32
    np.testing.assert_array_equal(out["categorical"], np.column_stack(list(expected.values())))
    for column, codes in expected.items():  # the same from pandas, key by key
        keys = new[column].map(lambda v: None if pd.isna(v) else str(v).replace(".0", ""))
        lookup = {key: i + 1 for i, key in enumerate(pre.categories_[column])}
        assert keys.map(lambda k: lookup.get(k, 0)).tolist() == codes
    np.testing.assert_array_equal(
        pre.transform(train)["categorical"], [[1, 1], [1, 2], [3, 0], [4, 1], [0, 3],
                                              [2, 2], [5, 1], [1, 3]])


@pytest.mark.parametrize("columns", [["x", "n", "mixed", "city"], ["n", "mixed"], ["n"],
                                     ["city"]])
def test_json_round_trip_rebuilds_the_fitted_column_transformer(columns):
    train, new = _mixed_frames()
    pre = TabularPreprocessor().fit(train[columns])
    again = TabularPreprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    for fitted in (pre, again):
        transformer = fitted.column_transformer_
        check_is_fitted(transformer)
        for part in transformer.named_transformers_.values():
            check_is_fitted(part)
            for _, step in part.steps:
                check_is_fitted(step)
    a, b = pre.transform(new), again.transform(new)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
        assert a[key].dtype == b[key].dtype
    # The transformer alone gives the same numbers, as plain arrays whatever the output
    # configuration.
    with sklearn.config_context(transform_output="pandas"):
        direct = again.column_transformer_.transform(new[columns])
    assert isinstance(direct, np.ndarray) and direct.shape == (4, pre.n_numeric_tokens + len(
        pre.categorical_columns_))
    width = pre.n_numeric_tokens
    split = {"numeric": direct[:, :width].astype("float32"), "categorical": direct[:, width:]}
    for key in a:
        np.testing.assert_array_equal(split[key], a[key])
    assert list(again.column_transformer_.get_feature_names_out()) == list(
        pre.column_transformer_.get_feature_names_out())


def _v1_frames():
    """The training and new rows behind ``data/preprocessing_v1.json``."""
    rng = np.random.default_rng(7)
    n = 90
    train = pd.DataFrame({
        "x": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "count": rng.integers(0, 6, n),
        "huge": rng.normal(size=n) * 1e250,  # the std of the noise must not overflow
        "price": rng.choice(np.array(["1.5", "2", "10", None], dtype=object), n),
        "mixed": rng.choice(np.array([1, "1", True, "a", None, 2.0, "b"], dtype=object), n),
        "colour": pd.Categorical(rng.choice(np.array(["red", "green", None], dtype=object), n)),
        "flag": rng.choice([0.0, 1.0, np.nan], n),
    })
    new = pd.DataFrame({
        "x": [np.nan, 10.0, -10.0, 0.1, 0.0],
        "count": [np.nan, 2.0, 100.0, -1.0, 3.0],
        "huge": [1e251, -5e250, 0.0, np.nan, 1e249],
        "price": ["3", None, "1.5", "7", "2"],
        "mixed": pd.Series(["zzz", 3, "True", None, 1.0], dtype=object),
        "colour": pd.Categorical(["blue", "red", None, "green", "red"]),
        "flag": [1.0, 0.0, np.nan, 2.0, 0.0],
        "extra": [1, 2, 3, 4, 5],
    })
    return train, new


V1_PARAMS = {"numeric": ["price"], "random_state": 3}


def test_preprocessing_saved_before_the_column_transformer_loads_and_fits_the_same():
    # Written by the hand-written preprocessing this replaced (data/make_preprocessing_v1.py).
    saved = json.loads((DATA / "preprocessing_v1.json").read_text())
    train, new = _v1_frames()
    loaded = TabularPreprocessor.from_dict(saved["preprocessing"])
    check_is_fitted(loaded.column_transformer_)
    fitted = TabularPreprocessor(**V1_PARAMS).fit(train)
    for pre in (loaded, fitted):
        out = pre.transform(new)
        assert sorted(out) == sorted(saved["inputs"])
        np.testing.assert_array_equal(out["categorical"], saved["inputs"]["categorical"])
        n_scores = len(pre.numeric_columns_)
        np.testing.assert_array_equal(out["numeric"][:, n_scores:],
                                      np.asarray(saved["inputs"]["numeric"])[:, n_scores:])
        np.testing.assert_allclose(out["numeric"], saved["inputs"]["numeric"], rtol=1e-6)
    # Fitting now gives the state saved then (the quantiles up to rounding).
    state, then = fitted.to_dict(), saved["preprocessing"]
    np.testing.assert_allclose(state.pop("quantiles_"), then.pop("quantiles_"), rtol=1e-12)
    assert state == then
