"""The benchmark harness keeps working: ``benchmarks/accuracy.py --smoke`` and ``report.py``.

Runs in-process on the current ``KERAS_BACKEND`` with tiny subsets of penguins and Adult.
Models whose optional library (the ``bench`` extra) is missing must be recorded as skipped,
never fail the test. No test looks at absolute times or at the quality of the smoke numbers.
"""

import dataclasses
import importlib.util
import json
import math
import os
import sys
import types

import numpy as np
import pytest

pytest.importorskip("pandas")
pytest.importorskip("sklearn")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "datasets")


def _load(name):
    if BENCH not in sys.path:
        sys.path.insert(0, BENCH)
    path = os.path.join(BENCH, f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def accuracy():
    return _load("accuracy")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """penguins from the shared datasets (if present) and Adult from the package."""
    import pandas as pd

    from tabattn.data import adult_path

    folder = tmp_path_factory.mktemp("bench-data")
    os.symlink(adult_path(), folder / "adult.csv.gz")
    penguins = os.path.join(SHARED_DATA, "penguins.csv.gz")
    if os.path.exists(penguins):
        os.symlink(penguins, folder / "penguins.csv.gz")
    else:  # a penguins-shaped stand-in, so the test runs without ../shared
        rng = np.random.default_rng(0)
        frame = pd.DataFrame({
            "island": rng.choice(["Biscoe", "Dream", "Torgersen"], 344),
            "bill_length_mm": rng.normal(44, 5, 344),
            "body_mass_g": rng.normal(4200, 800, 344),
            "species": rng.choice(["Adelie", "Chinstrap", "Gentoo"], 344),
        })
        frame.to_csv(folder / "penguins.csv.gz", index=False)
    return str(folder)


def test_splits_follow_the_protocol(accuracy, data_dir):
    datasets = accuracy.find_datasets(data_dir)
    frame, target, task, official = accuracy.load_dataset(datasets["penguins"])
    assert (target, task, official) == ("species", "classification", False)
    split = accuracy.make_split("penguins", frame, target, task, official, seed=0)
    sizes = np.array([len(split.y_train), len(split.y_val), len(split.y_test)])
    np.testing.assert_allclose(sizes / sizes.sum(), [0.64, 0.16, 0.20], atol=0.01)
    # Stratified: class shares agree between train and test.
    shares = [np.mean(y == "Adelie") for y in (split.y_train, split.y_test)]
    assert abs(shares[0] - shares[1]) < 0.03
    # Same seed, same rows; another seed, other rows.
    again = accuracy.make_split("penguins", frame, target, task, official, seed=0)
    assert split.X_test.equals(again.X_test)
    other = accuracy.make_split("penguins", frame, target, task, official, seed=1)
    assert not split.X_test.equals(other.X_test)

    frame, target, task, official = accuracy.load_dataset(datasets["adult"])
    assert (target, official) == ("income", True)
    split = accuracy.make_split("adult", frame, target, task, official, seed=0)
    assert len(split.y_test) == 16281  # the official test file
    assert len(split.y_train) + len(split.y_val) == 32561
    assert abs(len(split.y_val) / 32561 - 0.2) < 0.001
    assert "split" not in split.X_train.columns


@pytest.mark.torch_only  # the harness and report do not depend on the backend
def test_smoke_run_and_report(accuracy, data_dir, tmp_path):
    import keras

    out = tmp_path / "results"
    models = list(accuracy.MODELS)
    status = accuracy.main([
        "--smoke", "--data-dir", data_dir, "--datasets", "penguins", "adult",
        "--max-rows", "300", "--out", str(out), "--models", *models,
    ])
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    errors = [(r["model"], r.get("error"), r.get("traceback")) for r in records
              if r["status"] == "error"]
    assert not errors, errors
    assert status == 0

    by_key = {(r["dataset"], r["model"]): r for r in records}
    for dataset in ("penguins", "adult"):
        for model in models:
            record = by_key[(dataset, model)]  # every model leaves a record, ok or skipped
            if record["status"] == "skipped":
                assert "pip install" in record["reason"], record["reason"]
                continue
            assert record["status"] == "ok"
            assert record["backend"] == keras.backend.backend()
            assert record["versions"]["keras"] == keras.__version__
            assert record["machine"]["cpu_count"] >= 1
            assert record["epochs"] >= 1 and record["train_seconds"] > 0
            metrics = record["metrics"]
            assert 0.0 <= metrics["accuracy"] <= 1.0
            assert math.isfinite(metrics["log_loss"])
    # The models that ran saw exactly the same split.
    for dataset in ("penguins", "adult"):
        sizes = {json.dumps(r["rows"]) for r in records
                 if r["dataset"] == dataset and r["status"] == "ok"}
        assert len(sizes) == 1, sizes
    # On small tables the default model is TabM: the same fit, the same predictions.
    assert by_key[("penguins", "tabattn_auto")]["metrics"] == (
        by_key[("penguins", "tabattn_tabm")]["metrics"])
    assert by_key[("penguins", "tabattn_auto")]["budget"]["tabattn_batch_size"] == 128
    # Models without an optional dependency are not counted as failures.
    assert by_key[("adult", "tabattn_ft")]["status"] == "ok"
    assert by_key[("adult", "hist_gbdt")]["status"] == "ok"

    report = _load("report")
    markdown = tmp_path / "BENCHMARKS.md"
    assert report.main(["--results", str(out), "--out", str(markdown)]) == 0
    text = markdown.read_text()
    assert "### penguins" in text and "### adult" in text
    assert f"| tabattn_ft ({keras.backend.backend()}) |" in text
    assert "| hist_gbdt |" in text
    assert "## Machines and versions" in text
    # The report compares JAX records of the default model (the benchmarks' backend).
    assert f"## Default model: `{report.DEFAULT_MODEL}` against LightGBM" in text or (
        by_key[("adult", "lightgbm")]["status"] == "skipped" or keras.backend.backend() != "jax"
    )
    for record in records:
        if record["status"] == "skipped":
            assert record["reason"] in text


def test_speed_smoke(tmp_path):
    """Two layer cases and the model section run and give records the report renders."""
    import keras

    speed = _load("speed")
    out = tmp_path / "speed"
    status = speed.main(["--smoke", "--cases", "RowAttention", "MultiHeadAttention",
                         "--out", str(out)])
    assert status == 0
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    layers = [r for r in records if r["kind"] == "speed"]
    assert {(r["case"], r["pass"]) for r in layers} == {
        (case, which) for case in ("RowAttention", "MultiHeadAttention")
        for which in ("forward", "forward+backward")
    }
    for record in layers:
        assert record["status"] == "ok" and record["tabattn_ms"] > 0
        assert record["backend"] == keras.backend.backend()
        # The Keras peer is always there; KerasFactory's only with the bench extra.
        assert record["peer_ms"] or "pip install" in record["peer_reason"]
    models = {r["implementation"]: r for r in records if r["kind"] == "speed_model"}
    ours = models["tabattn FTTransformer"]
    assert ours["train_rows_per_s"] > 0 and ours["matmul_gflops"] > 0
    assert 0 < ours["fraction_of_matmul_peak"]
    assert ours["peak_rss_mib"] > 0

    report = _load("report")
    markdown = tmp_path / "BENCHMARKS.md"
    assert report.main(["--results", str(out), "--out", str(markdown)]) == 0
    text = markdown.read_text()
    assert "## Speed" in text and "| RowAttention |" in text
    assert "### Models" in text and "| tabattn TabR |" in text
    tabr = models["tabattn TabR"]
    assert tabr["latency_ms_batch_1"] > 0 and tabr["context_rows"] == 512


def test_report_names_the_estimators_default_model(monkeypatch):
    accuracy, report = _load("accuracy"), _load("report")
    assert report.DEFAULT_MODEL == "tabattn_auto"
    seen = {}
    monkeypatch.setattr(accuracy, "run_tabattn",
                        lambda split, seed, budget, model, params: seen.setdefault("m", model))
    split = types.SimpleNamespace(y_train=np.zeros(10))
    accuracy.MODELS[report.DEFAULT_MODEL].run(split, 0, accuracy.Budget())
    assert seen["m"] == "auto"


def _record(dataset, model, seed, value, train_rows=1000, seconds=10.0, **extra):
    task = "classification" if dataset == "adult" else "regression"
    metric = "accuracy" if task == "classification" else "rmse"
    return {"kind": "accuracy", "status": "ok", "dataset": dataset, "model": model,
            "seed": seed, "metrics": {metric: value}, "task": task, "train_seconds": seconds,
            "backend": "jax", "keras_model": model != "lightgbm", "machine": {"thread_limit": 2},
            "budget": {}, "target": "y", "n_features": 3, "epochs": 10,
            "rows": {"total": 2 * train_rows, "train": train_rows, "validation": 10,
                     "test": 10}, **extra}


def test_report_states_each_target_and_whether_it_is_reached():
    report = _load("report")
    records, previous = [], []
    for seed in range(2):
        records += [
            _record("california_housing", report.DEFAULT_MODEL, seed, 0.41, 13_000, 90.0),
            _record("california_housing", report.PEER, seed, 0.45),
            _record("adult", report.DEFAULT_MODEL, seed, 0.86, 26_000, 200.0),
            _record("adult", report.PEER, seed, 0.87),
            _record("adult", "tabattn_tabm", seed, 0.85),
            _record("diamonds", report.PEER, seed, 540.0),
        ]
        previous += [_record("california_housing", "tabattn_tabr", seed, 0.40 + 0.02 * seed,
                             tag="nolimit"),
                     _record("adult", "tabattn_tabr", seed, 0.871 + 0.001 * seed,
                             tag="nolimit")]
    records.append({"kind": "speed_model", "status": "ok", "implementation": "tabattn TabR",
                    "backend": "jax", "latency_ms_batch_1": 0.7, "context_rows": 16384})
    records += [{"kind": "scaling", "status": "ok", "model": report.DEFAULT_MODEL, "rows": n,
                 "epoch_seconds": n / 1000, "peak_rss_mib": 1000.0, "n_features": 20}
                for n in (10_000, 100_000, 1_000_000)]
    text = "\n".join(report.default_model_section(records, report.DEFAULT_MODEL, previous))
    # 30 s + 5 s per 1,000 training rows
    assert "- california_housing: a whole fit in 90 s, against at most 95 s" in text
    assert "training rows): **reached**." in text
    assert "- adult: a whole fit in 200 s, against at most 160 s" in text
    # two seeds; 200 s over 26 (thousand) training rows
    assert "| adult | accuracy | 0.8600 | 0.8700 | -0.0100 | LightGBM | 2 | 200.0 | 7.7 |" in text
    assert "| 0.8500 |" in text  # TabM's column
    # diamonds has no run of the default model: it counts as not beaten.
    assert "1 of 3 (1 without a run of the default model): **not reached**." in text
    # previous default: adult 0.8715 ± 0.0007 (0.86 is worse), California 0.41 ± 0.0141
    assert "worse on adult (0.8600 against 0.8715 ± 0.0007): **not reached**" in text
    assert "0.70 ms: **reached**" in text
    assert "fitted exponent 1.00 from 10,000 to 1,000,000 rows (at most 1.1): **reached**" in text
    assert "1000 s, 1.0 GiB: **not reached**" in text


def test_tagged_runs_are_kept_apart_from_the_headline():
    accuracy, report = _load("accuracy"), _load("report")
    ours = _record("diamonds", report.DEFAULT_MODEL, 0, 560.0, budget={"time_limit": None})
    other = _record("diamonds", report.DEFAULT_MODEL, 0, 520.0, tag="k32",
                    note="32 neighbours")
    peer = _record("diamonds", report.PEER, 0, 540.0)
    assert accuracy.record_name(other) == f"diamonds__{report.DEFAULT_MODEL}@k32__jax__seed0"
    assert accuracy.record_name(ours) == f"diamonds__{report.DEFAULT_MODEL}__jax__seed0"
    headline = "\n".join(report.default_model_section([ours, other, peer],
                                                      report.DEFAULT_MODEL))
    assert "| diamonds | rmse | 560.0 | 540.0 |" in headline  # the tagged run is not mixed in
    assert (f"- `{report.DEFAULT_MODEL}@k32` on diamonds (until early stop, 2 cores, 1 seed): "
            "rmse 520.0 against LightGBM's 540.0 (tabattn better)." in headline)
    tables = "\n".join(report.accuracy_section([ours, other, peer]))
    assert f"| {report.DEFAULT_MODEL}@k32 (jax) | 520.0000" in tables
    notes = "\n".join(report.notes_section([ours, other, peer]))
    assert f"`{report.DEFAULT_MODEL}@k32`: 32 neighbours" in notes
    with pytest.raises(ValueError, match="tag"):
        accuracy.run({}, [], [], accuracy.Budget(), "unused", tag="a/b")


def test_protocol_budget_is_the_harness_default():
    accuracy, report = _load("accuracy"), _load("report")
    defaults = dataclasses.asdict(accuracy.Budget())
    assert {k: defaults[k] for k in report.PROTOCOL_BUDGET} == report.PROTOCOL_BUDGET


def test_comparisons_use_the_seeds_both_have():
    report = _load("report")
    records = [_record("california_housing", report.PEER, s, 0.45) for s in (0, 1)]
    records += [_record("california_housing", report.DEFAULT_MODEL, s, 0.44) for s in (0, 1)]
    records.append(_record("california_housing", report.DEFAULT_MODEL, 2, 0.30))
    records += [_record("california_housing", "tabattn_tabr", s, v)
                for s, v in ((0, 0.40), (1, 0.40), (2, 0.90))]
    text = "\n".join(report.default_model_section(records, report.DEFAULT_MODEL))
    assert "| california_housing | rmse | 0.4400 | 0.4500 |" in text
    assert "| 0.4000 |" in text  # TabR's column on the seeds of the table, not its own


@pytest.mark.torch_only  # the estimators in worker processes: the harness is the same on all
def test_scaling_smoke_and_plot(tmp_path):
    scaling, report = _load("scaling"), _load("report")
    out = tmp_path / "scaling"
    # LightGBM is a benchmark peer (the `bench` extra), not a test dependency.
    models = ["tabattn_auto"] + (["lightgbm"] if importlib.util.find_spec("lightgbm") else [])
    assert scaling.main(["--smoke", "--models", *models, "--rows", "300", "600",
                         "--out", str(out)]) == 0
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    assert {(r["model"], r["rows"]) for r in records} == {
        (m, n) for m in models for n in (300, 600)}
    for record in records:
        assert record["status"] == "ok", record.get("error")
        assert record["peak_rss_mib"] > 0 and record["fit_seconds"] > 0
    auto = {r["rows"]: r for r in records if r["model"] == "tabattn_auto"}
    assert auto[600]["epoch_seconds"] > 0 and auto[600]["model_name"] == "tabm"
    frame, y = scaling.synthetic_table(50)
    assert frame.shape == (50, 20) and set(np.unique(y)) <= {0, 1}
    markdown = tmp_path / "BENCHMARKS.md"
    assert report.main(["--results", str(out), "--out", str(markdown)]) == 0
    text = markdown.read_text()
    assert "## Cost against rows" in text and "![Cost against training rows](" in text
    assert (out / "scaling.png").stat().st_size > 1000
    assert report.fitted_exponent({10: 1.0, 100: 10.0, 1000: 100.0}) == pytest.approx(1.0)
