"""Fitting and predicting on Parquet read in batches (tabattn.streaming)."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tabattn import TabularClassifier, TabularRegressor, streaming
from tabattn.data import TabularPreprocessor

# The reading, hashing and preprocessing do not depend on the backend.
pytestmark = pytest.mark.torch_only

N_ROWS = 3000
SMALL_TABM = {"k": 2, "n_blocks": 1, "d_block": 32}


def _table(seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "a": rng.normal(size=N_ROWS),
        "b": rng.choice(["x", "y", "z", "w"], N_ROWS, p=[0.4, 0.3, 0.29, 0.01]),
        "c": rng.integers(0, 50, N_ROWS).astype("float64"),
        "flag": rng.integers(0, 2, N_ROWS),
    })
    frame.loc[rng.random(N_ROWS) < 0.05, "c"] = np.nan
    signal = frame["a"] + (frame["b"] == "x") + 0.02 * frame["c"].fillna(25)
    frame["y"] = np.where(signal + 0.5 * rng.normal(size=N_ROWS) > 1.0, "pos", "neg")
    frame["r"] = signal + 0.3 * rng.normal(size=N_ROWS)
    return frame


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """The table in memory, and as 3 Parquet files in a directory."""
    frame = _table()
    folder = tmp_path_factory.mktemp("parts")
    for i, part in enumerate(np.array_split(np.arange(N_ROWS), 3)):
        pq.write_table(pa.Table.from_pandas(frame.iloc[part], preserve_index=False),
                       folder / f"part-{i}.parquet", row_group_size=400)
    return frame, str(folder)


@pytest.fixture(scope="module")
def streamed(table):
    """A small TabM classifier fitted on the directory (all training rows in the sample)."""
    _, folder = table
    clf = TabularClassifier(model="tabm", model_params=SMALL_TABM, epochs=3, batch_size=128,
                            verbose=0, random_state=0)
    return clf.fit(_projected(folder, ["a", "b", "c", "flag", "y"]), "y")


def _projected(folder, columns):
    # A Dataset of only some columns: write them to a sibling folder.
    import os

    out = folder + "-" + "-".join(columns)
    if not os.path.isdir(out):
        os.makedirs(out)
        for name in sorted(os.listdir(folder)):
            pq.write_table(pq.read_table(os.path.join(folder, name), columns=columns),
                           os.path.join(out, name), row_group_size=400)
    return out


def _hashed_split(frame, fraction=0.2, seed=0):
    rows = np.arange(len(frame))
    is_val = streaming.validation_mask(rows, fraction, seed)
    return rows[~is_val], rows[is_val]


def test_validation_rows_are_the_same_on_every_pass(table):
    frame, folder = table
    source = streaming.ParquetSource(folder)
    seen = []
    for read_rows in (128, 1000):
        rows = np.concatenate([r for r, _ in source.batches(["a"], read_rows,
                                                            np.random.default_rng(read_rows))])
        seen.append(np.sort(rows[streaming.validation_mask(rows, 0.2, 0)]))
    np.testing.assert_array_equal(seen[0], seen[1])
    assert abs(len(seen[0]) / N_ROWS - 0.2) < 0.03
    # Another seed, other rows.
    assert not np.array_equal(seen[0], np.flatnonzero(streaming.validation_mask(
        np.arange(N_ROWS), 0.2, 1)))


def test_validation_batches_repeat(table, streamed):
    frame, folder = table
    batches = streaming.ParquetBatches(
        streamed, streaming.ParquetSource(folder), "y", "validation",
        n_rows=int(streaming.validation_mask(np.arange(N_ROWS), 0.2, 0).sum()),
        batch_size=100, seed=0, read_rows=256, shuffle_rows=512,
    )
    first = [batches[i] for i in range(len(batches))]
    batches.on_epoch_end()
    second = [batches[i] for i in range(len(batches))]
    assert len(first) == len(second) == len(batches)
    for (x1, y1), (x2, y2) in zip(first, second):
        np.testing.assert_array_equal(x1["numeric"], x2["numeric"])
        np.testing.assert_array_equal(y1, y2)
    # The validation rows, in row order, as an in-memory transform gives them.
    _, val = _hashed_split(frame)
    expected = streamed.preprocessor_.transform(frame.iloc[val][["a", "b", "c", "flag"]])
    got = np.concatenate([x["numeric"] for x, _ in first])
    np.testing.assert_allclose(got, expected["numeric"], rtol=1e-6)


def test_preprocessing_equals_in_memory_fit_on_the_sample(table):
    frame, folder = table
    source = streaming.ParquetSource(folder)
    found = streaming.scan(source, ["a", "b", "c", "flag"], "y", "classification", 0.2, 0,
                           sample_rows=300, read_rows=256)
    train, _ = _hashed_split(frame)
    keys = streaming.row_uniform(train, 0, streaming.SAMPLE_SALT)
    sample_rows = np.sort(train[np.argsort(keys)[:300]])
    np.testing.assert_array_equal(found.sample_rows, sample_rows)
    features = frame.iloc[sample_rows][["a", "b", "c", "flag"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(found.sample[["a", "b", "c", "flag"]], features)
    streamed = TabularPreprocessor(random_state=0).fit(found.sample[["a", "b", "c", "flag"]])
    in_memory = TabularPreprocessor(random_state=0).fit(features)
    assert streamed.to_dict() == in_memory.to_dict()
    assert sorted(found.classes) == ["neg", "pos"]
    assert found.n_train == len(train)


def test_regression_target_statistics_from_the_stream(table):
    frame, folder = table
    found = streaming.scan(streaming.ParquetSource(folder), ["a"], "r", "regression", 0.2, 0,
                           sample_rows=100, read_rows=256)
    # All rows with a target, as an in-memory fit without eval_set standardises it.
    assert found.mean == pytest.approx(frame["r"].mean(), rel=1e-12)
    assert found.std == pytest.approx(frame["r"].std(ddof=0), rel=1e-12)


def test_streamed_fit_matches_in_memory_fit(table, streamed):
    frame, folder = table
    features = ["a", "b", "c", "flag"]
    train, val = _hashed_split(frame)
    in_memory = TabularClassifier(model="tabm", model_params=SMALL_TABM, epochs=3,
                                  batch_size=128, verbose=0, random_state=0)
    in_memory.fit(frame.iloc[train][features], frame["y"].iloc[train],
                  eval_set=(frame.iloc[val][features], frame["y"].iloc[val]))
    # The whole training split is the sample: the same preprocessing.
    assert streamed.preprocessor_.to_dict() == in_memory.preprocessor_.to_dict()
    # Same model, data and validation rows; only the order of the training rows differs.
    # Tolerance: 0.03 in log loss (about 0.3 here).
    assert min(streamed.history_["val_loss"]) == pytest.approx(
        min(in_memory.history_["val_loss"]), abs=0.03
    )
    # Predictions streamed equal predictions in memory.
    np.testing.assert_allclose(streamed.predict_proba(folder),
                               streamed.predict_proba(frame[features]), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(streamed.predict(ds.dataset(folder, format="parquet")),
                                  streamed.predict(frame[features]))


def test_streamed_tabr_stores_a_sample_of_training_rows(table):
    frame, folder = table
    reg = TabularRegressor(model="tabr", epochs=1, batch_size=256, verbose=0, random_state=0,
                           model_params={"d_main": 16, "max_context_rows": 500,
                                         "refresh_rows": 250})
    reg.fit(_projected(folder, ["a", "b", "c", "r"]), "r")
    train, val = _hashed_split(frame)
    assert len(reg.context_rows_) == 500
    assert set(reg.context_rows_.tolist()) <= set(train.tolist())
    assert reg.target_mean_ == pytest.approx(frame["r"].mean())
    assert reg.predict(_projected(folder, ["a", "b", "c", "r"])).shape == (N_ROWS,)
    # Training rows stored in the context skip themselves: their row_index is their place.
    batches = streaming.ParquetBatches(
        reg, streaming.ParquetSource(_projected(folder, ["a", "b", "c", "r"])), "r", "train",
        n_rows=len(train), batch_size=1000, seed=0, context_rows=reg.context_rows_,
    )
    row_index = np.concatenate([batches[i][0]["row_index"] for i in range(len(batches))])
    place = {row: i for i, row in enumerate(reg.context_rows_.tolist())}
    np.testing.assert_array_equal(row_index, [place.get(row, -1) for row in train.tolist()])


def test_files_that_disagree_are_refused(tmp_path):
    frame = _table()
    pq.write_table(pa.Table.from_pandas(frame.iloc[:100], preserve_index=False),
                   tmp_path / "a.parquet")
    other = frame.iloc[100:200].assign(c=lambda f: f["c"].astype(str))
    pq.write_table(pa.Table.from_pandas(other, preserve_index=False), tmp_path / "b.parquet")
    with pytest.raises(ValueError, match=r"b\.parquet.*column 'c' of type (large_)?string"):
        TabularClassifier().fit(str(tmp_path), "y")
    (tmp_path / "b.parquet").unlink()
    pq.write_table(pa.Table.from_pandas(frame.iloc[100:200].drop(columns="flag"),
                                        preserve_index=False), tmp_path / "b.parquet")
    with pytest.raises(ValueError, match=r"b\.parquet.*no column 'flag'"):
        TabularClassifier().fit(str(tmp_path), "y")


def test_bad_target_arguments(table):
    _, folder = table
    with pytest.raises(ValueError, match="Target column 'income' is not in"):
        TabularClassifier().fit(folder, "income")
    with pytest.raises(ValueError, match="must be the name of the target column"):
        TabularClassifier().fit(folder, np.zeros(N_ROWS))


def test_cli_fit_and_predict_stream(table, tmp_path):
    import json

    from click.testing import CliRunner

    from tabattn import load
    from tabattn.cli import main

    frame, folder = table
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "fit", folder, "--target", "y", "--drop", "r", "--model", "tabm", "--epochs", "1",
        "--model-params", '{"k": 2, "n_blocks": 1, "d_block": 16}', "--batch-size", "256",
        "--out", str(out), "--verbose", "0",
    ])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    test = streaming.test_mask(np.arange(N_ROWS), 0.2, 0)
    assert metrics["rows"]["train"] + metrics["rows"]["validation"] == int((~test).sum())
    assert set(metrics["test"]) >= {"accuracy", "log_loss"}
    estimator = load(out)
    expected = estimator.predict_proba(frame[["a", "b", "c", "flag"]])
    for name in ("predictions.parquet", "predictions.csv"):
        result = CliRunner().invoke(main, ["predict", str(out), folder, "-o", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        written = (pd.read_parquet if name.endswith("parquet") else pd.read_csv)(tmp_path / name)
        assert len(written) == N_ROWS
        np.testing.assert_allclose(written["proba_pos"], expected[:, 1], rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "predictions.csv", "predictions.parquet", "run"]
    result = CliRunner().invoke(main, ["evaluate", str(out), folder, "--target", "y"])
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.stdout[result.stdout.index("{"):])
    expected_loss = estimator.target_.evaluate(frame["y"], expected)["log_loss"]
    assert evaluated["log_loss"] == pytest.approx(expected_loss, rel=1e-5)


def test_interrupted_streamed_cli_fit_leaves_no_output(table, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tabattn.cli import main

    _, folder = table

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(streaming.ParquetBatches, "_batches", interrupted)
    result = CliRunner().invoke(main, [
        "fit", folder, "--target", "y", "--drop", "r", "--model", "tabm", "--epochs", "1",
        "--model-params", '{"k": 2, "n_blocks": 1, "d_block": 16}',
        "--out", str(tmp_path / "run"), "--verbose", "0",
    ])
    assert result.exit_code != 0
    assert list(tmp_path.iterdir()) == []  # no model folder, staging folder or backup


class _Interrupt(__import__("keras").callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


def test_an_interrupted_streamed_fit_resumes_to_the_same_model(table, tmp_path):
    # The resumed fit's first epoch reads its rows in the order the uninterrupted fit did.
    frame, folder = table
    source = _projected(folder, ["a", "b", "c", "flag", "r"])
    kwargs = dict(model="tabm", model_params=SMALL_TABM, epochs=3, batch_size=256, verbose=0,
                  random_state=4, patience=10)
    expected = TabularRegressor(**kwargs).fit(source, "r")
    backup = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        TabularRegressor(**kwargs, backup_dir=str(backup), callbacks=[_Interrupt()]).fit(
            source, "r")
    resumed = TabularRegressor(**kwargs, backup_dir=str(backup)).fit(source, "r")
    for key, values in expected.history_.items():
        np.testing.assert_allclose(resumed.history_[key], values, rtol=1e-5, err_msg=key)
    X = frame[["a", "b", "c", "flag"]]
    np.testing.assert_allclose(resumed.predict(X), expected.predict(X), rtol=1e-5, atol=1e-6)
    assert not backup.exists()
