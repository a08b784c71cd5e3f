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


def test_smoke_run_and_report(accuracy, data_dir, tmp_path):
    import keras

    out = tmp_path / "results"
    # TabR's variants run the same code with other model_params (tested with the model).
    models = [m for m in accuracy.MODELS
              if m not in ("tabattn_tabr_plain", "tabattn_tabr_epoch", "tabattn_tabr_ple")]
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
    # The default model averages seeds (two in smoke runs); its variant trains one.
    assert by_key[("penguins", "tabattn_tabr")]["ensemble_size"] == 2
    assert "ensemble_size" not in by_key[("penguins", "tabattn_tabr_single")]
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
    assert f"## Default model: `{report.DEFAULT_MODEL}` against LightGBM" in text or (
        by_key[("adult", "lightgbm")]["status"] == "skipped"
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


def test_report_names_the_estimators_default_model():
    from tabattn.estimators import _AUTO_MODEL

    assert _load("report").DEFAULT_MODEL == f"tabattn_{_AUTO_MODEL}"


def test_report_states_each_target_and_whether_it_is_reached():
    report = _load("report")

    def record(dataset, model, seed, metrics, task, seconds=1.0):
        return {"kind": "accuracy", "status": "ok", "dataset": dataset, "model": model,
                "seed": seed, "metrics": metrics, "task": task, "train_seconds": seconds,
                "backend": "jax", "budget": {"time_limit": 300.0},
                "machine": {"thread_limit": 2}}

    records = []
    for seed in range(2):
        records += [
            record("california_housing", report.DEFAULT_MODEL, seed, {"rmse": 0.41},
                   "regression"),
            record("california_housing", report.PEER, seed, {"rmse": 0.45}, "regression"),
            record("adult", report.DEFAULT_MODEL, seed, {"accuracy": 0.86}, "classification",
                   300.0),
            record("adult", report.PEER, seed, {"accuracy": 0.87}, "classification", 0.7),
            record("diamonds", report.PEER, seed, {"rmse": 540.0}, "regression"),
        ]
    records.append({"kind": "speed_model", "status": "ok", "implementation": "tabattn TabR",
                    "backend": "jax", "latency_ms_batch_1": 0.7, "context_rows": 26048})
    text = "\n".join(report.default_model_section(records, report.DEFAULT_MODEL))
    assert "0.4100 against 0.4500: **reached**" in text
    assert "0.8600 against 0.8700: **not reached**" in text
    assert ("300 s (300 s, 2 cores) against LightGBM's 0.7 s (until early stop, 2 cores"
            in text)
    # diamonds has no run of the default model: it counts as not beaten.
    assert "1 of 3 (1 without a run of the default model): **not reached**" in text
    assert "0.70 ms: **reached**" in text


def test_tagged_runs_are_kept_apart_from_the_headline():
    accuracy, report = _load("accuracy"), _load("report")
    base = {"kind": "accuracy", "status": "ok", "dataset": "diamonds", "seed": 0,
            "task": "regression", "train_seconds": 1.0, "backend": "jax", "keras_model": True,
            "machine": {"thread_limit": 2}, "target": "price", "n_features": 9,
            "rows": {"total": 10, "train": 6, "validation": 2, "test": 2}}
    ours = dict(base, model=report.DEFAULT_MODEL, metrics={"rmse": 560.0, "mae": 1.0,
                "r2": 0.9}, budget={"time_limit": 300.0}, epochs=10)
    longer = dict(ours, metrics={"rmse": 520.0, "mae": 1.0, "r2": 0.9}, tag="600s",
                  note="twice the budget", budget={"time_limit": 600.0}, epochs=20)
    peer = dict(base, model=report.PEER, keras_model=False, budget={}, epochs=100,
                metrics={"rmse": 540.0, "mae": 1.0, "r2": 0.9})
    assert accuracy.record_name(longer) == f"diamonds__{report.DEFAULT_MODEL}@600s__jax__seed0"
    assert accuracy.record_name(ours) == f"diamonds__{report.DEFAULT_MODEL}__jax__seed0"
    headline = "\n".join(report.default_model_section([ours, longer, peer],
                                                      report.DEFAULT_MODEL))
    assert "| diamonds | rmse | 560.0 | 540.0 |" in headline  # the tagged run is not mixed in
    assert (f"- `{report.DEFAULT_MODEL}@600s` on diamonds (600 s, 2 cores, 1 seed): rmse "
            "520.0 against LightGBM's 540.0 (tabattn better)." in headline)
    tables = "\n".join(report.accuracy_section([ours, longer, peer]))
    assert f"| {report.DEFAULT_MODEL}@600s (jax) | 520.0000" in tables
    assert "600 s, 2 cores" in tables
    notes = "\n".join(report.notes_section([ours, longer, peer]))
    assert f"`{report.DEFAULT_MODEL}@600s`: twice the budget" in notes
    with pytest.raises(ValueError, match="tag"):
        accuracy.run({}, [], [], accuracy.Budget(), "unused", tag="a/b")


def test_a_tagged_run_on_every_dataset_gets_its_own_count():
    report = _load("report")
    base = {"kind": "accuracy", "status": "ok", "task": "regression", "train_seconds": 1.0,
            "backend": "jax", "keras_model": True, "machine": {"thread_limit": 2},
            "target": "y", "n_features": 3, "epochs": 10,
            "rows": {"total": 10, "train": 6, "validation": 2, "test": 2}}

    def run(dataset, model, rmse, seed=0, **extra):
        return {**base, "dataset": dataset, "model": model, "seed": seed,
                "budget": {"time_limit": 300.0}, "metrics": {"rmse": rmse, "mae": 1.0, "r2": 0.9},
                **extra}

    longer = {"tag": "600s", "budget": {"time_limit": 600.0}}
    records = [run("diamonds", report.DEFAULT_MODEL, 560.0),
               run("diamonds", report.PEER, 540.0, keras_model=False),
               run("california_housing", report.DEFAULT_MODEL, 0.40),
               run("california_housing", report.PEER, 0.45, keras_model=False),
               run("diamonds", report.DEFAULT_MODEL, 520.0, **longer, note="first note")]
    name = f"{report.DEFAULT_MODEL}@600s"
    partial = "\n".join(report.default_model_section(records, report.DEFAULT_MODEL))
    assert "- Beats LightGBM on the majority of datasets: 1 of 2: **not reached**." in partial
    assert "every dataset" not in partial and f"with `{name}`" not in partial
    # once the tag covers every dataset and seed of the headline, it is counted on its own
    records.append(run("california_housing", report.DEFAULT_MODEL, 0.41, **longer,
                       note="second note"))
    complete = "\n".join(report.default_model_section(records, report.DEFAULT_MODEL))
    assert "beats LightGBM on 1 of 2 datasets." in complete  # the headline is unchanged
    assert (f"- `{name}` on every dataset of the table above, same seeds: beats LightGBM on "
            "2 of 2." in complete)
    assert (f"  - with `{name}` (600 s per fit, 2 cores): 2 of 2: **reached** at that "
            "budget." in complete)
    assert f"| {name}, 600 s per fit | tabattn_ft |" in complete  # a column of its own
    # a seed the tag lacks makes it incomplete again
    records += [run(d, m, v, seed=1) for d, m, v in [
        ("diamonds", report.DEFAULT_MODEL, 560.0), ("diamonds", report.PEER, 540.0),
        ("california_housing", report.DEFAULT_MODEL, 0.40),
        ("california_housing", report.PEER, 0.45)]]
    assert "every dataset" not in "\n".join(
        report.default_model_section(records, report.DEFAULT_MODEL))
    notes = "\n".join(report.notes_section(records))
    assert f"- `{name}` (on diamonds): first note" in notes
    # Runs without a time limit (the harness's protocol) on every dataset and seed LightGBM
    # ran become the headline; the budgeted runs are then counted on their own.
    unlimited = {"tag": "nolimit", "budget": dict(report.PROTOCOL_BUDGET)}
    records += [run(d, report.DEFAULT_MODEL, v, seed=s, **unlimited)
                for d, v in [("diamonds", 530.0), ("california_housing", 0.39)] for s in (0,)]
    section = "\n".join(report.default_model_section(records, report.DEFAULT_MODEL))
    assert "beats LightGBM on 1 of 2 datasets." in section  # seed 1 missing: not yet
    records += [run(d, report.DEFAULT_MODEL, v, seed=1, **unlimited)
                for d, v in [("diamonds", 530.0), ("california_housing", 0.39)]]
    section = "\n".join(report.default_model_section(records, report.DEFAULT_MODEL))
    assert f"the table compares its runs `{report.DEFAULT_MODEL}@nolimit` (no time" in section
    assert "| diamonds | rmse | 530.0 | 540.0 |" in section
    assert "with no time limit: the harness's protocol" in section
    assert ("tabattn's default model (JAX backend, no time limit, 2 cores) beats LightGBM on "
            "2 of 2 datasets." in section)
    assert "- Beats LightGBM on the majority of datasets: 2 of 2: **reached**." in section
    assert (f"  - with `{report.DEFAULT_MODEL}` (300 s per fit, 2 cores): 1 of 2: "
            "**not reached** at that budget." in section)
    assert (f"- `{report.DEFAULT_MODEL}` on diamonds (300 s, 2 cores, 2 seeds): rmse 560.0 "
            "against LightGBM's 540.0 (LightGBM better)." in section)
    assert f"with `{name}`" not in section  # the 600 s tag lacks seed 1
    assert f"- `{name}` (on california_housing): second note" in notes


def test_headline_prefers_complete_runs_without_a_time_limit():
    report = _load("report")

    def run(model, seed, limit, tag=None, dataset="diamonds"):
        return {"model": model, "seed": seed, "dataset": dataset, "tag": tag,
                "budget": dict(report.PROTOCOL_BUDGET, time_limit=limit)}

    by = {("diamonds", report.PEER): [run(report.PEER, s, None) for s in (0, 1)]}
    sets = {report.DEFAULT_MODEL: {"diamonds": [run(report.DEFAULT_MODEL, s, 300.0)
                                                for s in (0, 1)]},
            "x@b": {"diamonds": [run(report.DEFAULT_MODEL, s, None, "b") for s in (0, 1)]},
            "x@a": {"diamonds": [run(report.DEFAULT_MODEL, 0, None, "a")]}}
    # the budgeted untagged runs give way to the complete unlimited tag, not the partial one
    assert report.headline_name(sets, by, report.DEFAULT_MODEL) == "x@b"
    sets[report.DEFAULT_MODEL] = {"diamonds": [run(report.DEFAULT_MODEL, s, None)
                                               for s in (0, 1)]}
    assert report.headline_name(sets, by, report.DEFAULT_MODEL) == report.DEFAULT_MODEL
    del sets["x@b"], sets[report.DEFAULT_MODEL]
    assert report.headline_name(sets, by, report.DEFAULT_MODEL) == report.DEFAULT_MODEL
    # no time limit is not enough: the rest of the budget must be the protocol's too
    quick = [dict(run(report.DEFAULT_MODEL, s, None, "quick"), budget=dict(
        report.PROTOCOL_BUDGET, epochs=2)) for s in (0, 1)]
    bare = [dict(run(report.DEFAULT_MODEL, s, None, "bare"), budget={}) for s in (0, 1)]
    subsample = [dict(run(report.DEFAULT_MODEL, s, None, "sub"), smoke=True) for s in (0, 1)]
    sets = {"x@quick": {"diamonds": quick}, "x@bare": {"diamonds": bare},
            "x@sub": {"diamonds": subsample}}
    assert report.headline_name(sets, by, report.DEFAULT_MODEL) == report.DEFAULT_MODEL


def test_protocol_budget_is_the_harness_default():
    accuracy, report = _load("accuracy"), _load("report")
    defaults = dataclasses.asdict(accuracy.Budget())
    assert {k: defaults[k] for k in report.PROTOCOL_BUDGET} == report.PROTOCOL_BUDGET


def test_targets_use_the_seeds_both_have():
    report = _load("report")
    protocol = dict(report.PROTOCOL_BUDGET)

    def run(model, seed, rmse, dataset="california_housing", **extra):
        return {"kind": "accuracy", "status": "ok", "dataset": dataset, "model": model,
                "seed": seed, "metrics": {"rmse": rmse}, "task": "regression",
                "train_seconds": 1.0, "backend": "jax", "machine": {"thread_limit": 2},
                **extra}

    records = [run(report.PEER, s, 0.45, budget={}) for s in (0, 1)]
    records += [run(report.DEFAULT_MODEL, s, 0.44, budget=protocol) for s in (0, 1)]
    # a seed LightGBM lacks must not move the target (0.44 alone is above 0.42)
    records.append(run(report.DEFAULT_MODEL, 2, 0.30, budget=protocol))
    records += [run(report.DEFAULT_MODEL, s, v, tag="300s", budget=dict(protocol,
                    time_limit=300.0)) for s, v in ((0, 0.40), (1, 0.40), (2, 0.90))]
    text = "\n".join(report.default_model_section(records, report.DEFAULT_MODEL))
    assert "| california_housing | rmse | 0.4400 | 0.4500 |" in text
    assert "0.4400 against 0.4500: **not reached**" in text
    # the other set's column is on the same seeds as the headline, not its own
    assert "| 0.4000 |" in text
