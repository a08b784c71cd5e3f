"""``tabattn`` command line: ``fit``, ``predict``, ``evaluate`` and ``explain``, thin over the
Python API.

The backend is Keras's ``KERAS_BACKEND``; when it is unset the CLI uses JAX (the fastest of
the three on CPU in our measurements) and says so. Needs the ``cli`` extra.
"""

import contextlib
import datetime
import errno
import json
import os
import re
import secrets
import shutil
import socket
import sys
import time
import warnings

try:
    import click
except ImportError as error:  # pragma: no cover
    raise ImportError("The tabattn CLI needs click. Install it with: pip install 'tabattn[cli]'") from error

BUNDLED_TARGET = "income"


class _AutoOr(click.ParamType):
    """``auto``, or a number of ``kind`` (``int`` or ``float``) of at least ``minimum``."""

    def __init__(self, kind, minimum):
        self.kind, self.minimum = kind, minimum
        self.name = f"{'INTEGER' if kind is int else 'SECONDS'}|auto"

    def convert(self, value, param, ctx):
        if value == "auto" or (isinstance(value, self.kind) and value >= self.minimum):
            return value
        try:
            number = self.kind(value)
        except (TypeError, ValueError):
            number = None
        if number is None or number < self.minimum or number != number:
            self.fail(f"expected 'auto' or a number >= {self.minimum}, got {value!r}", param,
                      ctx)
        return number


# --time-limit auto: the training time the default model aims at (BENCHMARKS.md, "Default
# model"). On a slower machine TabR anneals its learning rate over the epochs that the limit
# leaves room for, and keeps its best epoch.
AUTO_SECONDS, AUTO_SECONDS_PER_1000_ROWS = 30.0, 5.0


def _select_backend():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
    except ImportError as error:
        raise click.ClickException(
            f"Could not import Keras with backend {os.environ['KERAS_BACKEND']!r}: {error}. "
            "Install one, e.g. pip install 'tabattn[jax,cli]'."
        ) from error
    return keras.backend.backend()


def _data_name(data):
    if data is None:
        return "adult"
    name = os.path.basename(os.path.normpath(data))
    for suffix in (".gz", ".bz2", ".xz", ".zip", ".csv", ".parquet", ".pq", ".txt"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or "data"


# What bad input, files or folders raise; the CLI shows these as one-line errors.
_USER_ERRORS = (ValueError, OSError, EOFError)


def _message(error):
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        hint = ": check its permissions" if isinstance(error, PermissionError) else ""
        return f"{error.strerror}: {error.filename!r}{hint}"
    return str(error)


def _fail(error):
    raise click.ClickException(_message(error)) from error


@contextlib.contextmanager
def _warnings_as_lines():
    """Show warnings (as Python's filters let through) as one ``Warning: ...`` line on stderr."""
    from tabattn.data import ColumnWarning

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        if issubclass(category, ColumnWarning):
            text += " (on the command line: --drop COLUMN)"
        click.echo(f"Warning: {text}", err=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


# Staging entries are named after the machine and process that wrote them, so that a later
# run can tell those of killed runs (kill -9, power loss) from those of runs still going.
_STAGING = re.compile(r"\.tabattn-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{16}")


def _staging_path(folder):
    return os.path.join(
        folder, f".tabattn-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(8)}"
    )


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_stale_staging(folder):
    """Remove the staging entries in ``folder`` of this machine's runs that were killed."""
    if os.name != "posix":  # os.kill(pid, 0) would end the process on Windows
        return
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = _STAGING.fullmatch(name)
        if not match or match["host"] != socket.gethostname() or _running(int(match["pid"])):
            continue
        path = os.path.join(folder, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        except OSError:
            continue
        click.echo(f"Removed {path}, left by an interrupted run", err=True)


def _make_folders(folder):
    """``mkdir -p folder``; returns the folders it created, deepest first."""
    missing = []
    while not os.path.exists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    if missing:
        os.makedirs(missing[0], exist_ok=True)
    return missing


def _remove_folders(folders):
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:  # not empty: another run uses it
            return


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tabattn")
def main():
    """Attention models for tables: train, evaluate, predict, explain."""


@main.command()
@click.argument("data", required=False, type=click.Path())
@click.option("--target", help="Target column (default for the bundled Adult data: income).")
@click.option("--task", type=click.Choice(["classification", "regression"]),
              help="Override the task inferred from the target.")
@click.option("--epochs", type=_AutoOr(int, 1), default="auto", show_default=True,
              help="Maximum epochs (early stopping with patience 16 on validation loss). "
                   "'auto': for TabR, its learning rate annealed over them, 30 on "
                   "classification and 40 on regression; 1000 for the other models.")
@click.option("--time-limit", type=_AutoOr(float, 0), default="auto", show_default=True,
              help="Seconds from start to the end of training: no epoch starts that would "
                   "end later (the best epoch is kept). 'auto': 30 s + 5 s per 1,000 "
                   "training rows. 0: no limit.")
@click.option("--batch-size", type=_AutoOr(int, 1), default="auto", show_default=True,
              help="Rows per step, or 'auto': 256, fewer on tables under 4,096 training rows.")
@click.option("--model", "model_name",
              type=click.Choice(["auto", "tabm", "tabr", "modernnca", "ft_transformer"]),
              default="auto", show_default=True,
              help="Model: TabM (an MLP trained as an ensemble of 32), TabR (retrieval over "
                   "training rows), ModernNCA (nearest neighbours in a learned embedding), "
                   "FT-Transformer, or the default chosen on the benchmarks "
                   "(TabM on training splits of at most 2,000 rows, TabR above; see "
                   "BENCHMARKS.md).")
@click.option("--ensemble-size", type=click.IntRange(min=1), default=None,
              help="Models (seeds) to train and average (default 1).")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="AdamW learning rate (default: TabM 2e-3, TabR 2e-3, ModernNCA 0.01, "
                   "FT-Transformer 1e-4).")
@click.option("--model-params", default=None, metavar="JSON",
              help='JSON object overriding the model\'s default_config(), e.g. '
                   '\'{"k": 16}\' (TabM), \'{"d_main": 96}\' (TabR) or \'{"n_blocks": 2}\' '
                   '(FT-Transformer).')
@click.option("--categorical", multiple=True, help="Force a column to be categorical (repeatable).")
@click.option("--numeric", multiple=True, help="Force a column to be numeric (repeatable).")
@click.option("--drop", multiple=True, metavar="COLUMN",
              help="Leave a column out of the features, e.g. an identifier (repeatable).")
@click.option("--split-column", default=None,
              help="Column whose values 'train'/'test' give the test split (default: a column "
                   "named 'split' with exactly those values; otherwise a random 20% test split).")
@click.option("--class-weight", type=click.Choice(["none", "balanced"]), default="none",
              show_default=True, help="Class weights for imbalanced classification.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False),
              help="Output directory (default runs/<data-name>-<UTC timestamp>).")
@click.option("--resume", is_flag=True,
              help="Go on from the last epoch of an interrupted fit into --out (run with the "
                   "same arguments; training state is saved after every epoch).")
@click.option("--stream", is_flag=True,
              help="Read Parquet DATA in batches, never all rows at once (the default for a "
                   "directory of Parquet files and for Parquet files over 1 GiB): test and "
                   "validation rows are chosen by a hash of the row number, preprocessing is "
                   "fitted on a sample of 100,000 training rows (see tabattn.streaming).")
@click.option("--verbose", type=click.IntRange(0, 2), default=None,
              help="0 silent, 1 progress bar, 2 one line per epoch (default: 1 on a "
                   "terminal, 2 when the output goes to a file or pipe).")
@click.option("--distribution", type=click.Choice(["none", "auto", "data-parallel"]),
              default=None,
              help="Split every batch over several devices (GPUs, TPUs) with Keras's "
                   "data-parallel training, on the JAX backend: 'data-parallel' (an error on "
                   "another backend), or 'auto' (when the backend is JAX and there are several "
                   "devices; otherwise one device). Default: 'none' (one device), or "
                   "'data-parallel' when --devices is given.")
@click.option("--devices", type=click.IntRange(min=1), default=None,
              help="Use the first N devices (default: all of them with --distribution "
                   "data-parallel or auto).")
def fit(data, target, task, epochs, time_limit, batch_size, model_name, ensemble_size,
        learning_rate, model_params, categorical, numeric, drop, split_column, class_weight,
        seed, out, resume, stream, verbose, distribution, devices):
    """Train on DATA (CSV, CSV.GZ, Parquet or a directory of Parquet files; default: the
    bundled Adult data), evaluate on a held-out test split, and save the model, metrics and
    feature importances."""
    started = time.monotonic()
    model_params = _parse_model_params(model_params)
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    if resume and out is None:
        raise click.UsageError("--resume needs the --out of the interrupted fit")
    backend = _select_backend()
    click.echo(f"Keras backend: {backend}")
    distribution = _distribution(distribution, devices)
    out = out or os.path.join(
        "runs", f"{_data_name(data)}-{datetime.datetime.now(datetime.timezone.utc):%Y%m%dT%H%M%SZ}"
    )
    params = dict(
        model=model_name, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        model_params=model_params, categorical=list(categorical) or None,
        numeric=list(numeric) or None, random_state=seed, verbose=verbose,
        ensemble_size=ensemble_size,
        class_weight=None if class_weight == "none" else class_weight,
        backup_dir=_backup_path(out), distribution=distribution,
    )
    _check_backup(out, resume)
    staging, created, saved = None, [], False
    try:
        with _warnings_as_lines():
            streamed = _streamed(data, stream)
            estimator, splits, task, target = (_prepare_fit_stream if streamed else _prepare_fit)(
                data, target, task, drop, split_column, seed, out, params
            )
            parent = os.path.dirname(os.path.abspath(out))
            try:
                created = _make_folders(parent)
                _remove_stale_staging(parent)
                staging = _staging_path(parent)
                os.mkdir(staging)  # with the umask's permissions, as any new folder
            except OSError as error:
                where = os.path.dirname(error.filename) if error.filename else parent
                raise click.ClickException(
                    f"Cannot create the output folder {out!r}: {error.strerror or error} (in "
                    f"{where!r}). Choose an --out in a folder you can write to"
                ) from error
            # The time budget covers the whole command, so count what was spent before training.
            if time_limit == "auto":
                rows = splits["train_rows"] if streamed else len(splits["train"][1])
                time_limit = AUTO_SECONDS + AUTO_SECONDS_PER_1000_ROWS * rows / 1000
            remaining = max(time_limit - (time.monotonic() - started), 1.0) if time_limit else None
            estimator.set_params(time_limit=remaining)
            metrics = (_train_stream if streamed else _train)(estimator, splits, staging)
            metrics.update(task=task, backend=backend, target=target,
                           seconds=round(time.monotonic() - started, 2))
            with open(os.path.join(staging, "metrics.json"), "w", encoding="utf-8") as file:
                json.dump(metrics, file, indent=1)
            importances = _write_importances(estimator, staging)
        _move_into_place(staging, out)
        saved = True
    except _USER_ERRORS as error:
        _fail(error)
    finally:
        if not saved:  # also on Ctrl-C: nothing half-written stays
            if staging:
                shutil.rmtree(staging, ignore_errors=True)
            _remove_folders(created)
    _print_results(metrics, importances)
    click.echo(f"Saved model, metrics and feature importances to {out}")


def _distribution(choice, devices):
    """The estimator's ``distribution`` for ``--distribution`` and ``--devices``."""
    if choice is None:
        choice = "none" if devices is None else "data-parallel"
    if choice == "none":
        if devices is not None:
            raise click.UsageError(
                "--devices needs --distribution data-parallel or auto (or no --distribution)"
            )
        return None
    from tabattn import _distribute

    try:
        resolved = _distribute.resolve(choice)  # an error here: data-parallel off JAX
    except ValueError as error:
        raise click.UsageError(
            str(error).replace(f"distribution={choice!r}", f"--distribution {choice}")
            .replace("distribution=None", "--distribution none")
        ) from error
    if resolved is None:
        if devices is not None and devices > 1:
            raise click.UsageError(
                f"--devices {devices}: --distribution {choice} trains on one device here "
                "(data-parallel training needs the JAX backend and more than one device)"
            )
        click.echo("Distribution: none (one device)")
        return None
    import keras

    available = keras.distribution.list_devices()
    if devices is not None and devices > len(available):
        raise click.UsageError(
            f"--devices {devices}: there are only {len(available)} devices "
            f"({', '.join(available)})"
        )
    if devices == 1:
        click.echo("Distribution: none (--devices 1)")
        return None
    if devices is not None:
        available = available[:devices]
        choice = keras.distribution.DataParallel(devices=available, auto_shard_dataset=False)
    click.echo(f"Distribution: data-parallel over {len(available)} devices "
               f"({', '.join(available)})")
    return choice


def _backup_path(out):
    """Where a fit into ``out`` keeps its training state until it completes."""
    out = os.path.abspath(out)
    return os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.backup")


def _check_backup(out, resume):
    backup = _backup_path(out)
    if resume and not os.path.isdir(backup):
        raise click.ClickException(
            f"--resume: there is no interrupted fit into {out!r} to go on from (no {backup!r})"
        )
    if not resume and os.path.exists(backup):
        raise click.ClickException(
            f"An interrupted fit into {out!r} left its training state in {backup!r}: add "
            "--resume (with the same arguments) to go on from it, or remove that folder to "
            "start over"
        )
    if resume:
        click.echo(f"Resuming from the training state in {backup}")


def _prepare_fit(data, target, task, drop, split_column, seed, out, params):
    """Read and split the data: the unfitted estimator, the splits, the task and the target."""
    from tabattn import data as tdata

    if os.path.isdir(out) and os.listdir(out):
        raise ValueError(f"Output directory {out!r} exists and is not empty; choose another --out")
    if data is None:
        frame, target = tdata.load_adult(), target or BUNDLED_TARGET
        click.echo("Data: bundled UCI Adult census income (48,842 rows, official test split)")
    else:
        if target is None:
            raise click.UsageError("--target is required when DATA is given")
        frame = tdata.read_table(data)
    frame = _drop_columns(tdata.drop_missing_target(frame, target), drop, target, data)
    task = task or tdata.infer_task(frame[target])
    train, validation, test, split_used = tdata.split_rows(
        frame, target, task, seed, split_column
    )
    X_fit, y_fit = train.drop(columns=[target]), train[target]
    X_val, y_val = validation.drop(columns=[target]), validation[target]
    click.echo(
        f"Task: {task}; rows: {len(X_fit)} train, {len(X_val)} validation, {len(test)} test "
        f"({split_used}); features: {X_fit.shape[1]}"
    )
    estimator = _make_estimator(task, params)
    splits = {"train": (X_fit, y_fit), "validation": (X_val, y_val),
              "test": (test.drop(columns=[target]), test[target])}
    return estimator, splits, task, target


def _drop_columns(frame, drop, target, data):
    unknown = [column for column in drop if column not in frame.columns]
    if unknown:
        raise ValueError(
            f"--drop names columns that are not in {data or 'the data'}: {unknown}. "
            f"Available columns: {list(frame.columns)}"
        )
    if target in drop:
        raise ValueError(f"--drop names the target column {target!r}; leave it out of --drop")
    return frame.drop(columns=list(dict.fromkeys(drop)))


def _train(estimator, splits, staging):
    """Fit on the train split (early stopping on validation), save to ``staging``; metrics."""
    from tabattn.estimators import evaluation_metrics

    estimator.fit(*splits["train"], eval_set=splits["validation"])
    metrics = {name: evaluation_metrics(estimator, X, y) for name, (X, y) in splits.items()}
    metrics["baseline"] = _baseline_metrics(estimator, splits["train"][1], splits["test"][1])
    metrics.update(
        feature_importances_noise=estimator.feature_importances_noise_,
        stopped_by=estimator.stop_reasons_,
        rows={name: len(y) for name, (_, y) in splits.items()},
        epochs=len(estimator.history_["loss"]), best_epoch=estimator.best_epoch_,
        ensemble_size=len(estimator.models_),
        member_epochs=[len(history["loss"]) for history in estimator.histories_],
    )
    estimator.save(staging)
    return metrics


def _make_estimator(task, params):
    """The classifier or regressor for ``task``; ``class_weight`` applies to the first only."""
    from tabattn.estimators import TabularClassifier, TabularRegressor

    params = dict(params)
    class_weight = params.pop("class_weight")
    if task == "classification":
        return TabularClassifier(class_weight=class_weight, **params)
    return TabularRegressor(**params)


def _move_into_place(staging, out):
    """Rename ``staging`` to ``out`` in one step that fails if ``out`` holds files, so that
    of two runs saving to the same ``out`` the second fails instead of mixing files."""
    try:
        try:
            os.rename(staging, out)  # POSIX replaces an empty folder
        except FileExistsError:
            os.rmdir(out)  # Windows does not; fails if ``out`` is not empty
            os.rename(staging, out)
    except OSError as error:
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise click.ClickException(
                f"Output directory {out!r} was filled by another run while this one trained; "
                "its files are kept and this run's model is discarded. Choose another --out"
            ) from error
        raise click.ClickException(
            f"Could not save the model to {out!r}: {_message(error)}"
        ) from error


def _parse_model_params(text):
    if text is None:
        return None
    try:
        params = json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not valid JSON ({error})", param_hint="--model-params")
    if not isinstance(params, dict):
        raise click.BadParameter(
            f"expected a JSON object, received {text!r}", param_hint="--model-params"
        )
    return params


def _write_importances(estimator, directory):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    table = pd.DataFrame(
        {"feature": estimator._columns, "importance": estimator.feature_importances_}
    )
    if estimator.feature_importances_std_ is not None:
        table["std"] = estimator.feature_importances_std_
    table = table.sort_values("importance", ascending=False, ignore_index=True)
    table.to_csv(os.path.join(directory, "feature_importance.csv"), index=False)
    shown = table.head(30).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(shown) + 1.2))
    ax.barh(shown["feature"], shown["importance"], color="#3b75af",
            xerr=shown["std"] if "std" in shown else None)
    if estimator.model_name_ == "ft_transformer":
        ax.set_xlabel("importance ([CLS] attention, averaged over heads, blocks and rows)")
        ax.set_title("FT-Transformer feature importance")
    else:
        ax.set_xlabel("importance (loss of log loss or R² when the column is shuffled, "
                      "normalised; bars: spread over 4 shuffles)")
        ax.set_title("Permutation feature importance")
    fig.tight_layout()
    fig.savefig(os.path.join(directory, "feature_importance.png"), dpi=120)
    plt.close(fig)
    return table


def _baseline_metrics(estimator, y_train, y_test):
    """Test metrics of the prediction that ignores the features: the training classes'
    frequencies (the majority class wins), or the training mean."""
    import numpy as np

    target = estimator.target_
    n = len(y_test)
    if estimator.target_.task == "classification":
        counts = np.asarray([(np.asarray(y_train) == c).sum() for c in target.classes_], float)
        output = np.tile(counts / counts.sum(), (n, 1))
    else:
        output = np.full(n, float(np.mean(target._numbers(y_train))))
    return target.evaluate(y_test, output)


def _print_results(metrics, importances):
    names = list(metrics["test"])
    click.echo("")
    click.echo(f"{'split':<12}" + "".join(f"{n:>10}" for n in names))
    for split in ("train", "validation", "test"):
        click.echo(f"{split:<12}" + "".join(f"{metrics[split][n]:>10.4f}" for n in names))
    baseline = metrics["baseline"]
    click.echo(f"{'baseline':<12}" + "".join(
        f"{baseline[n]:>10.4f}" if n in baseline else f"{'':>10}" for n in names
    ) + "   (test; " + ("majority class" if "accuracy" in names else "training mean") + ")")
    trained = f"{metrics['epochs']} epochs (best {metrics['best_epoch']})"
    if metrics["ensemble_size"] > 1:
        trained = (f"{metrics['ensemble_size']} models averaged, epochs "
                   + ", ".join(map(str, metrics["member_epochs"])))
    stopped = ", ".join(dict.fromkeys(metrics["stopped_by"]))
    click.echo(f"\n{trained}, stopped by {stopped}; {metrics['seconds']:.0f} s on "
               f"{metrics['backend']}")
    click.echo("\nMost important features:")
    if metrics["feature_importances_noise"]:
        click.echo("  (no column's importance stands out from the noise of shuffling: read "
                   "this ranking as uninformative)")
    for row in importances.head(10).itertuples():
        click.echo(f"  {row.feature:<24}{row.importance:.4f}")


def _model_columns(estimator, frame, data):
    """The columns of ``frame`` the model was trained on, in its order (others are left out:
    a file to predict may hold an identifier or the target)."""
    missing = [c for c in estimator._columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{data} is missing feature columns the model was trained on: {missing}"
        )
    return frame[estimator._columns]


@main.command()
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("data", type=click.Path())
@click.option("-o", "--output", default="predictions.csv", show_default=True,
              type=click.Path(dir_okay=False),
              help="File to write: Parquet if it ends in .parquet or .pq, else CSV.")
def predict(model_dir, data, output):
    """Predict DATA with the model saved in MODEL_DIR; write one row per input row.

    Parquet DATA (a file or a directory of files) is read and written in batches of 65,536
    rows, never all at once."""
    click.echo(f"Keras backend: {_select_backend()}", err=True)
    import pandas as pd

    from tabattn import data as tdata
    from tabattn.estimators import TabularClassifier, load

    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise click.ClickException(
            f"The folder of --output {output!r} does not exist: create {folder!r} first, or "
            "choose another --output"
        )
    staging, saved = None, False
    try:
        with _warnings_as_lines():
            _remove_stale_staging(folder)
            staging = _staging_path(folder)
            try:
                open(staging, "x").close()  # fails now, not after predicting, if read-only
            except OSError as error:
                raise click.ClickException(
                    f"Cannot write --output {output!r}: {error.strerror or error} (in "
                    f"{folder!r}). Choose an --output in a folder you can write to"
                ) from error
            estimator = load(model_dir)
            if _streamed(data, stream=data.lower().endswith((".parquet", ".pq"))):
                from tabattn import streaming

                written = streaming.write_predictions(estimator, data, output, staging)
                saved = True
                click.echo(f"Wrote {written} predictions to {output}", err=True)
                return
            frame = _model_columns(estimator, tdata.read_table(data), data)
            result = pd.DataFrame({"prediction": estimator.predict(frame)})
            if isinstance(estimator, TabularClassifier):
                proba = estimator.predict_proba(frame)
                for j, label in enumerate(estimator.classes_):
                    result[f"proba_{label}"] = proba[:, j]
        if output.lower().endswith((".parquet", ".pq")):
            result.to_parquet(staging, index=False)
        else:
            result.to_csv(staging, index=False)
        os.replace(staging, output)
        saved = True
    except _USER_ERRORS as error:
        _fail(error)
    finally:
        if staging and not saved:
            with contextlib.suppress(OSError):
                os.remove(staging)
    click.echo(f"Wrote {len(result)} predictions to {output}", err=True)


@main.command()
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("data", type=click.Path())
@click.option("--target", required=True, help="Target column in DATA.")
def evaluate(model_dir, data, target):
    """Evaluate the model in MODEL_DIR on DATA; print the metrics as JSON. Parquet DATA (a
    file or a directory of files) is read in batches."""
    click.echo(f"Keras backend: {_select_backend()}", err=True)
    from tabattn import data as tdata
    from tabattn.estimators import evaluation_metrics, load

    try:
        with _warnings_as_lines():
            estimator = load(model_dir)
            if _streamed(data, stream=data.lower().endswith((".parquet", ".pq"))):
                from tabattn import streaming

                click.echo(json.dumps(streaming.evaluate_stream(estimator, data, target), indent=1))
                return
            frame = tdata.read_table(data)
            if target not in frame.columns:
                raise ValueError(
                    f"Target column {target!r} not found. Available columns: {list(frame.columns)}"
                )
            metrics = evaluation_metrics(
                estimator, _model_columns(estimator, frame, data), frame[target]
            )
    except _USER_ERRORS as error:
        _fail(error)
    click.echo(json.dumps(metrics, indent=1))


@main.command()
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-o", "--out", default="explanations", show_default=True,
              type=click.Path(file_okay=False), help="Folder to write (must not hold files).")
@click.option("--max-rows", type=click.IntRange(min=1), default=20, show_default=True,
              help="Explain the first N rows of DATA (each costs about 50,000 predictions).")
@click.option("--max-evals", type=_AutoOr(int, 1), default="auto", show_default=True,
              help="Model evaluations per row of the SHAP permutation explainer.")
@click.option("--seed", type=int, default=0, show_default=True)
def explain(model_dir, data, out, max_rows, max_evals, seed):
    """Explain the predictions of the model in MODEL_DIR for the rows of DATA: SHAP values
    per row and column (contributions.csv), the training rows TabR or ModernNCA predicted
    from (neighbors.csv) or the FT-Transformer's attention over columns (attention.csv), and
    a plot per row."""
    click.echo(f"Keras backend: {_select_backend()}", err=True)
    from tabattn import data as tdata
    from tabattn.estimators import load

    if os.path.isdir(out) and os.listdir(out):
        raise click.ClickException(
            f"The output folder {out!r} already holds files; choose another --out"
        )
    staging, created, saved = None, [], False
    try:
        with _warnings_as_lines():
            estimator = load(model_dir)
            frame = _model_columns(estimator, tdata.read_table(data), data).iloc[:max_rows]
            parent = os.path.dirname(os.path.abspath(out))
            try:
                created = _make_folders(parent)
                _remove_stale_staging(parent)
                staging = _staging_path(parent)
                os.mkdir(staging)
            except OSError as error:
                raise click.ClickException(
                    f"Cannot create the output folder {out!r}: {error.strerror or error}. "
                    "Choose an --out in a folder you can write to"
                ) from error
            explanation = estimator.explain(frame, max_evals=max_evals, random_state=seed)
            _write_explanation(explanation, staging)
        _move_into_place(staging, out)
        saved = True
    except _USER_ERRORS as error:
        _fail(error)
    finally:
        if not saved:
            if staging:
                shutil.rmtree(staging, ignore_errors=True)
            _remove_folders(created)
    click.echo(f"Explained {len(frame)} rows in {out}", err=True)


def _write_explanation(explanation, directory):
    """contributions.csv, neighbors.csv or attention.csv, and row_<i>.png per row: the SHAP
    waterfall of the row's prediction (a classifier's: of its most probable class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import shap

    explanation.to_frame().to_csv(os.path.join(directory, "contributions.csv"), index=False)
    if explanation.neighbors is not None:
        explanation.neighbors.to_csv(os.path.join(directory, "neighbors.csv"), index=False)
    if explanation.attention is not None:
        explanation.attention.to_csv(
            os.path.join(directory, "attention.csv"), index_label="row"
        )
    for i in range(len(explanation.predictions)):
        row = explanation.shap[i]
        title = f"row {i}"
        if explanation.classes is not None:
            c = int(np.argmax(explanation.predictions[i]))
            row = row[:, c]
            title += f": probability of {explanation.classes[c]!r}"
        else:
            title += ": predicted value"
        shap.plots.waterfall(row, max_display=15, show=False)
        figure = plt.gcf()
        figure.suptitle(title)
        figure.savefig(os.path.join(directory, f"row_{i}.png"), dpi=100, bbox_inches="tight")
        plt.close(figure)


# --- streamed fits (tables larger than memory; tabattn.streaming) ------------------------------
# A Parquet file of more than this many bytes is read in batches without --stream.
STREAM_FILE_BYTES = 2**30
TEST_FRACTION = 0.2


def _streamed(data, stream):
    """Whether DATA is read in batches: a directory, a Parquet file over STREAM_FILE_BYTES,
    or (``stream``) any Parquet file."""
    if data is None:
        return False
    if os.path.isdir(data):
        return True
    parquet = data.lower().endswith((".parquet", ".pq"))
    if stream and not parquet:
        raise click.UsageError(f"--stream reads Parquet files; {data!r} is not one")
    return parquet and (stream or (os.path.isfile(data) and os.path.getsize(data) > STREAM_FILE_BYTES))


def _prepare_fit_stream(data, target, task, drop, split_column, seed, out, params):
    """``_prepare_fit`` for a table read in batches: test rows are those whose
    ``tabattn.streaming.test_mask`` (a hash of the global row number and --seed) is set, 20%
    of them; the estimator then validates on ``validation_mask``'s share of the others."""
    from tabattn import streaming

    if os.path.isdir(out) and os.listdir(out):
        raise ValueError(f"Output directory {out!r} exists and is not empty; choose another --out")
    if target is None:
        raise click.UsageError("--target is required when DATA is given")
    if split_column is not None:
        raise click.UsageError("--split-column is not supported with streamed Parquet input "
                               "(test rows are chosen by a hash of the row number)")
    source = streaming.ParquetSource(data)
    source.require([target], "target column")
    unknown = [column for column in drop if column not in source.columns]
    if unknown:
        raise ValueError(f"--drop names columns that are not in {data}: {unknown}. "
                         f"Available columns: {source.columns}")
    if target in drop:
        raise ValueError(f"--drop names the target column {target!r}; leave it out of --drop")
    columns = [c for c in source.columns if c not in drop]
    train = streaming.ParquetSource(
        data, columns, rows=lambda rows: ~streaming.test_mask(rows, TEST_FRACTION, seed))
    test = streaming.ParquetSource(
        data, columns, rows=lambda rows: streaming.test_mask(rows, TEST_FRACTION, seed))
    if task is None:
        from tabattn import data as tdata

        # From the target of the first 100,000 rows.
        head = next(iter(source.batches([target], 100_000)))[1].column(target).to_pandas()
        task = tdata.infer_task(head)
    n_rows = source.n_rows
    click.echo(
        f"Task: {task}; rows: {n_rows} read in batches, about {1 - TEST_FRACTION:.0%} train "
        f"and validation, {TEST_FRACTION:.0%} test (hash of the row number); features: "
        f"{len(columns) - 1}"
    )
    estimator = _make_estimator(task, params)
    splits = {"train": train, "test": test, "target": target,
              "train_rows": int(n_rows * (1 - TEST_FRACTION) * (1 - estimator.validation_fraction))}
    return estimator, splits, task, target


def _train_stream(estimator, splits, staging):
    """``_train`` for a streamed fit. Metrics: ``test`` on every test row, ``validation``
    on the sample of at most 2,048 validation rows, ``train`` on the training sample (at
    most 100,000 rows); the baseline from the training sample's target."""
    from tabattn import streaming
    from tabattn.estimators import evaluation_metrics

    target = splits["target"]
    estimator.fit(splits["train"], target)
    scan = estimator._stream_scan
    metrics = {
        "train": evaluation_metrics(estimator, scan.sample[estimator._columns], scan.sample[target]),
        "validation": evaluation_metrics(
            estimator, scan.validation[estimator._columns], scan.validation[target]),
        "test": streaming.evaluate_stream(estimator, splits["test"], target),
    }
    metrics["baseline"] = _baseline_metrics(
        estimator, scan.sample[target], _test_targets(splits["test"], target)
    )
    metrics.update(
        feature_importances_noise=estimator.feature_importances_noise_,
        stopped_by=estimator.stop_reasons_,
        rows={"train": scan.n_train, "validation": scan.n_validation},
        epochs=len(estimator.history_["loss"]), best_epoch=estimator.best_epoch_,
        ensemble_size=len(estimator.models_),
        member_epochs=[len(history["loss"]) for history in estimator.histories_],
    )
    del estimator._stream_scan  # the samples: not needed any more
    estimator.save(staging)
    return metrics


def _test_targets(source, target):
    """The test rows' target values (no missing ones), read alone (for the baseline)."""
    import pandas as pd

    parts = [batch.column(target).to_pandas() for _, batch in source.batches([target])]
    values = pd.concat(parts, ignore_index=True)
    return values[values.notna()].infer_objects().to_numpy()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
