"""Reading tables, inferring roles and tasks, and the JSON-saved preprocessing."""

import numpy as np
import pandas as pd
import pytest

from tabattn.data import TabularPreprocessor, drop_missing_target, infer_task, read_table


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
