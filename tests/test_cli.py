"""The ``tabattn`` command line end to end on real Adult rows, and every bad input."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import tabattn
from tabattn.cli import main

# The CLI reads, splits, saves and reports the same way on every backend: its tests run on
# PyTorch (which compiles nothing); the estimators it drives are tested on each backend.
pytestmark = pytest.mark.torch_only


# The default model (--model auto: TabM on these small tables), small; FT_SMALL for
# --model ft_transformer.
SMALL = '{"k": 8, "d_block": 32}'
FT_SMALL = '{"n_blocks": 2, "d_token": 32, "num_heads": 4}'


@pytest.fixture(scope="module")
def adult_csv(adult_small, tmp_path_factory):
    train, test = adult_small
    frame = pd.concat(
        [train.iloc[:2000].assign(split="train"), test.iloc[:600].assign(split="test")]
    )
    path = tmp_path_factory.mktemp("data") / "adult_part.csv.gz"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def fitted_run(adult_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    result = CliRunner().invoke(
        main,
        ["fit", str(adult_csv), "--target", "income", "--epochs", "4", "--out", str(out),
         "--verbose", "0", "--learning-rate", "5e-3", "--batch-size", "64",
         "--model-params", SMALL, "--ensemble-size", "2"],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out, result.output


def test_fit_with_the_ft_transformer(adult_csv, tmp_path):
    out = tmp_path / "ft"
    result = CliRunner().invoke(
        main,
        ["fit", str(adult_csv), "--target", "income", "--epochs", "2", "--out", str(out),
         "--verbose", "0", "--model", "ft_transformer", "--model-params", FT_SMALL],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert json.loads((out / "estimator.json").read_text())["model_name"] == "ft_transformer"
    importance = pd.read_csv(out / "feature_importance.csv")
    assert (importance["importance"] > 0).all()  # attention gives every column some weight


def test_fit_writes_model_metrics_and_importances(fitted_run, adult_csv):
    out, output = fitted_run
    names = set(os.listdir(out))
    assert {"model.keras", "model_1.keras", "preprocessing.json", "estimator.json",
            "metrics.json", "feature_importance.csv", "feature_importance.png"} <= names
    metrics = json.loads((out / "metrics.json").read_text())
    for split in ("train", "validation", "test"):
        assert set(metrics[split]) == {"accuracy", "roc_auc", "log_loss"}
    assert metrics["rows"] == {"train": 1600, "validation": 400, "test": 600}
    assert metrics["ensemble_size"] == 2 and len(metrics["member_epochs"]) == 2
    assert metrics["backend"] in ("jax", "torch", "tensorflow") and metrics["seconds"] > 0
    majority = (pd.read_csv(adult_csv).query("split == 'test'")["income"] == "<=50K").mean()
    assert metrics["test"]["accuracy"] > majority + 0.03, (metrics["test"], majority)
    importance = pd.read_csv(out / "feature_importance.csv")
    assert len(importance) == 14 and abs(importance["importance"].sum() - 1) < 1e-6
    assert (out / "feature_importance.png").read_bytes()[:4] == b"\x89PNG"
    assert "Keras backend:" in output and "Most important features" in output
    assert "2 models averaged" in output
    # What the model is worth beside a guess, and why training ended.
    assert metrics["baseline"]["accuracy"] == pytest.approx(majority)
    assert len(metrics["stopped_by"]) == 2
    assert set(metrics["stopped_by"]) <= {"early stopping", "time limit", "epochs"}
    assert "baseline" in output and "(test; majority class)" in output and "stopped by" in output
    assert "test" in output and "roc_auc" in output


def test_predict_and_evaluate(fitted_run, adult_csv, tmp_path):
    out, _ = fitted_run
    predictions = tmp_path / "predictions.csv"
    result = CliRunner().invoke(main, ["predict", str(out), str(adult_csv), "-o", str(predictions)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(predictions)
    data = pd.read_csv(adult_csv)
    expected = tabattn.load(out).predict_proba(data.drop(columns=["income", "split"]))
    assert list(table.columns) == ["prediction", "proba_<=50K", "proba_>50K"]
    np.testing.assert_allclose(table["proba_>50K"], expected[:, 1], rtol=1e-6)
    result = CliRunner().invoke(main, ["evaluate", str(out), str(adult_csv), "--target", "income"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout[result.stdout.index("{"):])
    assert 0.5 < metrics["accuracy"] <= 1


def test_explain_writes_contributions_and_a_plot_per_row(fitted_run, adult_csv, tmp_path):
    out, _ = fitted_run
    folder = tmp_path / "why"
    result = CliRunner().invoke(
        main, ["explain", str(out), str(adult_csv), "--out", str(folder), "--max-rows", "2",
               "--max-evals", "29"],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert sorted(p.name for p in folder.iterdir()) == [
        "contributions.csv", "row_0.png", "row_1.png"
    ]
    table = pd.read_csv(folder / "contributions.csv")
    assert len(table) == 2 * 14 * 2  # rows x columns x classes
    rows = pd.read_csv(adult_csv).drop(columns=["income", "split"]).iloc[:2]
    proba = tabattn.load(out).predict_proba(rows)
    total = table.groupby(["row", "class"])[["contribution", "base_value"]].agg(
        {"contribution": "sum", "base_value": "first"}
    ).sum(axis=1)
    np.testing.assert_allclose(total.to_numpy(), proba.reshape(-1), atol=1e-5)
    # A second run into the same folder fails and keeps the first one's files.
    again = CliRunner().invoke(
        main, ["explain", str(out), str(adult_csv), "--out", str(folder), "--max-rows", "1",
               "--max-evals", "29"],
    )
    assert again.exit_code != 0 and "--out" in again.output
    assert len(pd.read_csv(folder / "contributions.csv")) == len(table)


def _frame(n=40):
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"x": rng.normal(size=n), "c": rng.choice(["a", "b"], n), "y": rng.choice(["p", "q"], n)}
    )


def _write(tmp_path, frame, name="data.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def _bad_inputs(tmp_path):
    frame = _frame()
    all_nan = frame.assign(y=np.nan)
    single = frame.assign(y="p")
    strings = frame.assign(x=["1.5"] * 39 + ["big"])
    infinite = frame.assign(x=[np.inf] + [0.0] * 39)
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "garbage.parquet").write_bytes(b"\x00\xffnot parquet")
    return {
        "unreadable file": ([str(tmp_path / "garbage.parquet"), "--target", "y"],
                            "Could not read"),
        "missing file": ([str(tmp_path / "nope.csv"), "--target", "y"], "not found"),
        "empty file": ([str(tmp_path / "empty.csv"), "--target", "y"], "empty"),
        "no target": ([_write(tmp_path, frame), "--target", "z"], "Target column 'z' not found"),
        "target all NaN": ([_write(tmp_path, all_nan, "n.csv"), "--target", "y"], "no values"),
        "only one class": ([_write(tmp_path, single, "s.csv"), "--target", "y"], "only one class"),
        "non-numeric": ([_write(tmp_path, strings, "t.csv"), "--target", "y", "--numeric", "x"],
                        "'x' holds non-numeric values"),
        "inf": ([_write(tmp_path, infinite, "i.csv"), "--target", "y"], "infinite"),
        "no target given": ([_write(tmp_path, frame)], "--target is required"),
        "unknown column": ([_write(tmp_path, frame), "--target", "y", "--categorical", "w"],
                           "not in the data"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing file", "unreadable file", "empty file", "no target", "target all NaN", "only one class", "non-numeric",
     "inf", "no target given", "unknown column"],
)
def test_bad_input_is_a_clear_error_and_leaves_no_output(case, tmp_path):
    args, message = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["fit", *args, "--epochs", "1", "--out", str(out), "--model-params", SMALL]
    )
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tabattn-")]


@pytest.mark.parametrize("text", ["{bad json", "[1, 2]"])
def test_bad_model_params(text, tmp_path):
    result = CliRunner().invoke(
        main, ["fit", _write(tmp_path, _frame()), "--target", "y", "--model-params", text]
    )
    assert result.exit_code == 2 and "--model-params" in result.output


def test_nan_target_rows_dropped_with_warning(tmp_path):
    frame = _frame(60)
    frame.loc[:2, "y"] = np.nan
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["fit", _write(tmp_path, frame), "--target", "y", "--epochs", "1", "--out", str(out),
         "--verbose", "0", "--model-params", SMALL, "--ensemble-size", "1"],
    )
    assert result.exit_code == 0, result.output
    assert "Dropped 3 of 60 rows" in result.output


def test_predict_with_missing_column_is_an_error(fitted_run, adult_csv, tmp_path):
    out, _ = fitted_run
    data = pd.read_csv(adult_csv).drop(columns=["age"])
    result = CliRunner().invoke(
        main, ["predict", str(out), _write(tmp_path, data), "-o", str(tmp_path / "p.csv")]
    )
    assert result.exit_code != 0 and "missing feature columns" in result.output
    assert "['age']" in result.output and not (tmp_path / "p.csv").exists()
    result = CliRunner().invoke(main, ["predict", str(tmp_path / "nomodel"), str(adult_csv)])
    assert result.exit_code != 0 and "No saved tabattn model" in result.output
