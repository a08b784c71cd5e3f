"""The ``tabattn`` command line on damaged files, unwritable folders, concurrent and killed runs
and damaged model folders: a one-line error naming what is wrong, and nothing half-written."""

import builtins
import errno
import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import tabattn
from tabattn import cli
from tabattn.cli import main

# The CLI's handling of files, folders and errors does not depend on the backend; training
# and resuming are tested on each backend in test_estimators.py and test_estimator_inputs.py.
pytestmark = pytest.mark.torch_only

FAST = ["--model", "tabm", "--model-params", '{"k": 2, "d_block": 8, "n_blocks": 1}',
        "--epochs", "2", "--verbose", "0"]


def _table(n=60):
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "id": np.arange(1000, 1000 + n),
        "x": rng.normal(size=n),
        "c": rng.choice(["a", "b"], n),
        "day": [f"2024-01-{day:02d}" for day in rng.integers(1, 29, n)],
        "y": rng.choice(["p", "q"], n),
    })


def _write(folder, frame=None, name="data.csv"):
    path = folder / name
    (_table() if frame is None else frame).to_csv(path, index=False)
    return path


def _fit(data, out, *args):
    return CliRunner().invoke(main, ["fit", str(data), "--target", "y", "--out", str(out),
                                     *FAST, *args])


def _clear_error(result, *words):
    """A one-line error (exit status 1, no traceback) that holds ``words``."""
    assert result.exit_code == 1, result.output + repr(result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and "Aborted" not in result.output
    for word in words:
        assert word in result.output, result.output


def _staging(folder):
    return [name for name in os.listdir(folder) if name.startswith(".tabattn-")]


def _digests(folder):
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
            for name in os.listdir(folder)}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A model fitted with ``--drop id`` under umask 022 into a folder whose parents do not
    exist yet; returns its folder, the command's output and the data file."""
    base = tmp_path_factory.mktemp("fitted")
    data = _write(base)
    out = base / "new" / "deeper" / "model"
    previous = os.umask(0o022)
    try:
        result = _fit(data, out, "--drop", "id")
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out, result.output, data


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A folder no one may write to. Root may write anywhere, so for root writes into it are
    refused by patching ``os.mkdir`` and ``open``."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        def refuse(real):
            def call(path, *args, **kwargs):
                if isinstance(path, (str, os.PathLike)) and (
                    os.path.dirname(os.path.abspath(path)) == str(folder)
                ):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
                return real(path, *args, **kwargs)
            return call

        monkeypatch.setattr(os, "mkdir", refuse(os.mkdir))
        monkeypatch.setattr(builtins, "open", refuse(builtins.open))
    yield folder
    folder.chmod(0o755)


def test_truncated_compressed_or_parquet_file_is_named_as_corrupt(tmp_path):
    out = tmp_path / "out"
    for name in ("data.csv.gz", "data.parquet"):
        path = tmp_path / name
        if name.endswith(".gz"):
            _table().to_csv(path, index=False)
        else:
            _table().to_parquet(path)
        content = path.read_bytes()
        path.write_bytes(content[: len(content) // 2])
        _clear_error(_fit(path, out), "corrupt or truncated", repr(str(path)))
    assert not out.exists() and not _staging(tmp_path)


def test_split_column_without_value_or_with_other_values(tmp_path):
    frame = _table().assign(split=["train"] * 45 + ["test"] * 15)
    frame.loc[3, "split"] = np.nan
    _clear_error(_fit(_write(tmp_path, frame), tmp_path / "out"),
                 "Column 'split'", "no value in 1 of 60 rows", "fill them")
    frame = _table().assign(part=["train"] * 40 + ["test"] * 10 + ["valid"] * 10)
    _clear_error(_fit(_write(tmp_path, frame), tmp_path / "out", "--split-column", "part"),
                 "--split-column 'part'", "10 rows", "'valid'")
    assert not (tmp_path / "out").exists()


def test_out_in_read_only_folder_is_a_clear_error(tmp_path, read_only):
    result = _fit(_write(tmp_path), read_only / "model")
    _clear_error(result, "Cannot create the output folder", "Permission denied",
                 repr(str(read_only)))
    assert os.listdir(read_only) == []


def test_out_in_missing_folder_creates_it(fitted):
    out, output, _ = fitted
    assert {"model.keras", "estimator.json", "metrics.json"} <= set(os.listdir(out))
    assert f"Saved model, metrics and feature importances to {out}" in output
    assert not _staging(out.parent)


def test_predict_output_in_missing_or_read_only_folder(fitted, tmp_path, read_only):
    out, _, data = fitted
    missing = tmp_path / "nope" / "p.csv"
    result = CliRunner().invoke(main, ["predict", str(out), str(data), "-o", str(missing)])
    _clear_error(result, "does not exist", repr(str(missing.parent)))
    result = CliRunner().invoke(
        main, ["predict", str(out), str(data), "-o", str(read_only / "p.csv")]
    )
    _clear_error(result, "Cannot write --output", "Permission denied")
    assert os.listdir(read_only) == [] and not (tmp_path / "nope").exists()


def test_second_fit_into_same_out_fails_and_keeps_the_first(fitted, tmp_path, monkeypatch):
    out, _, data = fitted
    before = _digests(out)
    _clear_error(_fit(data, out), "exists and is not empty")
    assert _digests(out) == before
    # Another run saves to the same --out while this one trains.
    shared = tmp_path / "shared"
    train = cli._train

    def train_while_another_run_saves(*args):
        metrics = train(*args)
        shared.mkdir()
        (shared / "model.keras").write_text("the other run's model")
        return metrics

    monkeypatch.setattr(cli, "_train", train_while_another_run_saves)
    _clear_error(_fit(data, shared), "filled by another run", "its files are kept")
    assert os.listdir(shared) == ["model.keras"]
    assert (shared / "model.keras").read_text() == "the other run's model"
    assert not _staging(tmp_path)


def test_model_folder_honours_the_umask(fitted):
    out, _, _ = fitted
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(out / "model.keras").st_mode) == 0o644


def test_staging_folders_of_killed_runs_are_removed(tmp_path):
    killed = subprocess.Popen([sys.executable, "-c", ""])
    killed.wait()
    host = socket.gethostname()
    stale = tmp_path / f".tabattn-{host}-{killed.pid}-{'0' * 16}"
    running = tmp_path / f".tabattn-{host}-{os.getpid()}-{'1' * 16}"
    elsewhere = tmp_path / f".tabattn-other-host-{killed.pid}-{'2' * 16}"
    for folder in (stale, running, elsewhere):
        folder.mkdir()
        (folder / "model.keras").write_text("partial")
    result = _fit(_write(tmp_path), tmp_path / "model")
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"Removed {stale}, left by an interrupted run" in result.output
    assert not stale.exists() and running.exists() and elsewhere.exists()


CORRUPTIONS = {
    "estimator.json not JSON": ("estimator.json", '{"class": ', ValueError, "is corrupt"),
    "estimator.json without entries": ("estimator.json", "{}", ValueError, "is corrupt"),
    "preprocessing.json not JSON": ("preprocessing.json", "\x00\x01", ValueError, "is corrupt"),
    "preprocessing.json missing": ("preprocessing.json", None, FileNotFoundError, "is missing"),
    "model.keras missing": ("model.keras", None, FileNotFoundError, "is missing"),
    "model.keras not a zip": ("model.keras", "not a zip", ValueError, "is corrupt"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_damaged_model_folder_names_the_file(case, fitted, tmp_path):
    out, _, data = fitted
    name, content, error, problem = CORRUPTIONS[case]
    model = shutil.copytree(out, tmp_path / "model")
    if content is None:
        (model / name).unlink()
    else:
        (model / name).write_text(content)
    with pytest.raises(error, match=f"not a complete tabattn model: {name} {problem}"):
        tabattn.load(model)
    result = CliRunner().invoke(main, ["evaluate", str(model), str(data), "--target", "y"])
    _clear_error(result, repr(str(model)), name, problem)


@pytest.mark.parametrize("case", ["not UTF-8", "not CSV", "disk full", "Ctrl-C"])
def test_cli_shows_os_and_parse_errors_as_messages(case, tmp_path, monkeypatch):
    data, out = _write(tmp_path), tmp_path / "out"
    if case == "not UTF-8":
        data.write_bytes("x,y\n1,caf\xe9\n".encode("latin-1"))
    elif case == "not CSV":
        data.write_text("x,y\n1,p\n2,q,3,4\n")
    else:
        from tabattn.estimators import TabularClassifier

        def fit(self, *args, **kwargs):
            if case == "Ctrl-C":
                raise KeyboardInterrupt
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "x"))

        monkeypatch.setattr(TabularClassifier, "fit", fit)
    result = _fit(data, out)
    if case == "Ctrl-C":  # Click's answer to Ctrl-C; the staging folder is gone all the same
        assert result.exit_code == 1 and "Aborted!" in result.output
    else:
        expected = {"not UTF-8": "not UTF-8 text", "not CSV": "Expected 2 fields",
                    "disk full": "No space left on device"}[case]
        _clear_error(result, expected)
    assert not out.exists() and not _staging(tmp_path)


def test_drop_leaves_columns_out_and_warnings_are_single_lines(fitted, tmp_path):
    out, output, data = fitted
    assert tabattn.load(out)._columns == ["x", "c", "day"]
    assert "features: 3" in output
    warning = "Warning: Column 'day' holds dates as text"
    assert any(line.startswith(warning) for line in output.splitlines()), output
    assert "Column 'id'" not in output and "UserWarning" not in output
    _clear_error(_fit(data, tmp_path / "out", "--drop", "nope"), "--drop", "['nope']")
    _clear_error(_fit(data, tmp_path / "out", "--drop", "y"), "target column 'y'")
    assert not (tmp_path / "out").exists()


def test_predict_and_evaluate_name_missing_model_columns(fitted, tmp_path):
    out, _, _ = fitted
    data = _write(tmp_path, _table().drop(columns=["x"]))
    predictions = tmp_path / "p.csv"
    result = CliRunner().invoke(main, ["predict", str(out), str(data), "-o", str(predictions)])
    _clear_error(result, "missing feature columns", "['x']")
    result = CliRunner().invoke(main, ["evaluate", str(out), str(data), "--target", "y"])
    _clear_error(result, "missing feature columns", "['x']")
    assert not predictions.exists() and not _staging(tmp_path)


def test_an_interrupted_fit_resumes_with_resume(tmp_path, monkeypatch):
    from tabattn import estimators

    data = _write(tmp_path)
    args = ["--epochs", "4", "--time-limit", "0", "--drop", "id", "--drop", "day"]
    assert _fit(data, tmp_path / "whole", *args).exit_code == 0
    expected = json.loads((tmp_path / "whole" / "metrics.json").read_text())

    seed_epoch = estimators._EpochSeed.on_epoch_begin

    def interrupt(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt
        seed_epoch(self, epoch, logs)

    with monkeypatch.context() as patch:
        patch.setattr(estimators._EpochSeed, "on_epoch_begin", interrupt)
        assert _fit(data, tmp_path / "out", *args).exit_code != 0
    backup = tmp_path / ".out.backup"
    assert backup.is_dir() and not (tmp_path / "out").exists()
    _clear_error(_fit(data, tmp_path / "out", *args), "--resume")  # not without it
    result = _fit(data, tmp_path / "out", *args, "--resume")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["test"] == pytest.approx(expected["test"], rel=1e-5)
    assert metrics["epochs"] == expected["epochs"] == 4 and not backup.exists()
    _clear_error(_fit(data, tmp_path / "other", *args, "--resume"), "no interrupted fit")
