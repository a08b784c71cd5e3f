"""``tabattn`` command line: ``fit``, ``predict`` and ``evaluate``, thin over the Python API.

The backend is Keras's ``KERAS_BACKEND``; when it is unset the CLI uses JAX (the fastest of
the three on CPU in our measurements) and says so. Needs the ``cli`` extra.
"""

import datetime
import json
import os
import shutil
import sys
import tempfile
import time
import warnings

try:
    import click
except ImportError as error:  # pragma: no cover
    raise ImportError("The tabattn CLI needs click. Install it with: pip install 'tabattn[cli]'") from error

BUNDLED_TARGET = "income"
_SPLIT_VALUES = {"train", "test"}


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


# --time-limit auto: the training time the default model aims at. On tables of more than a
# few thousand rows TabR needs longer to reach early stopping (BENCHMARKS.md, "Default
# model") and is stopped at the limit with its best epoch so far.
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


def _fail(error):
    raise click.ClickException(str(error).strip("'\""))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tabattn")
def main():
    """Attention models for tables: train, evaluate, predict."""


@main.command()
@click.argument("data", required=False, type=click.Path(dir_okay=False))
@click.option("--target", help="Target column (default for the bundled Adult data: income).")
@click.option("--task", type=click.Choice(["classification", "regression"]),
              help="Override the task inferred from the target.")
@click.option("--epochs", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Maximum epochs (early stopping with patience 16 on validation loss).")
@click.option("--time-limit", type=_AutoOr(float, 0), default="auto", show_default=True,
              help="Seconds from start to the end of training: no epoch starts that would "
                   "end later (the best epoch is kept). 'auto': 30 s + 5 s per 1,000 "
                   "training rows. 0: no limit.")
@click.option("--batch-size", type=_AutoOr(int, 1), default="auto", show_default=True,
              help="Rows per step, or 'auto': 256, fewer on tables under 4,096 training rows.")
@click.option("--model", "model_name",
              type=click.Choice(["auto", "tabm", "tabr", "ft_transformer"]), default="auto",
              show_default=True,
              help="Model: TabM (an MLP trained as an ensemble of 32), TabR (retrieval over "
                   "training rows), FT-Transformer, or the default chosen on the benchmarks "
                   "(TabM on training splits of at most 2,000 rows, TabR above; see "
                   "BENCHMARKS.md).")
@click.option("--ensemble-size", type=click.IntRange(min=1), default=None,
              help="Models (seeds) to train and average (default 1).")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="AdamW learning rate (default: TabM 2e-3, TabR 1e-3, FT-Transformer 1e-4).")
@click.option("--model-params", default=None, metavar="JSON",
              help='JSON object overriding the model\'s default_config(), e.g. '
                   '\'{"k": 16}\' (TabM), \'{"d_main": 96}\' (TabR) or \'{"n_blocks": 2}\' '
                   '(FT-Transformer).')
@click.option("--categorical", multiple=True, help="Force a column to be categorical (repeatable).")
@click.option("--numeric", multiple=True, help="Force a column to be numeric (repeatable).")
@click.option("--split-column", default=None,
              help="Column whose values 'train'/'test' give the test split (default: a column "
                   "named 'split' with exactly those values; otherwise a random 20% test split).")
@click.option("--class-weight", type=click.Choice(["none", "balanced"]), default="none",
              show_default=True, help="Class weights for imbalanced classification.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False),
              help="Output directory (default runs/<data-name>-<UTC timestamp>).")
@click.option("--verbose", type=click.IntRange(0, 2), default=1, show_default=True,
              help="0 silent, 1 progress bar, 2 one line per epoch.")
def fit(data, target, task, epochs, time_limit, batch_size, model_name, ensemble_size,
        learning_rate, model_params, categorical, numeric, split_column, class_weight, seed,
        out, verbose):
    """Train on DATA (CSV, CSV.GZ or Parquet; default: the bundled Adult data), evaluate on a
    held-out test split, and save the model, metrics and feature importances."""
    started = time.monotonic()
    model_params = _parse_model_params(model_params)
    backend = _select_backend()
    click.echo(f"Keras backend: {backend}")
    from tabattn import data as tdata
    from tabattn.estimators import TabularClassifier, TabularRegressor, evaluation_metrics

    try:
        if data is None:
            frame, target = tdata.load_adult(), target or BUNDLED_TARGET
            click.echo("Data: bundled UCI Adult census income (48,842 rows, official test split)")
        else:
            if target is None:
                raise click.UsageError("--target is required when DATA is given")
            frame = tdata.read_table(data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = tdata.drop_missing_target(frame, target)
        for warning in caught:
            click.echo(f"Warning: {warning.message}", err=True)
        task = task or tdata.infer_task(frame[target])
        train, test, split_used = _train_test(frame, target, split_column, task, seed)
        X_train, y_train = train.drop(columns=[target]), train[target]
        stratify = y_train if task == "classification" else None
        from sklearn.model_selection import train_test_split

        X_fit, X_val, y_fit, y_val = train_test_split(
            X_train, y_train, test_size=0.2, random_state=seed, stratify=stratify
        )
    except (ValueError, FileNotFoundError) as error:
        _fail(error)
    click.echo(
        f"Task: {task}; rows: {len(X_fit)} train, {len(X_val)} validation, {len(test)} test "
        f"({split_used}); features: {X_train.shape[1]}"
    )

    out = out or os.path.join(
        "runs", f"{_data_name(data)}-{datetime.datetime.now(datetime.timezone.utc):%Y%m%dT%H%M%SZ}"
    )
    if os.path.exists(out) and os.listdir(out):
        _fail(f"Output directory {out!r} exists and is not empty; choose another --out")
    # The time budget covers the whole command, so count what was spent before training.
    if time_limit == "auto":
        time_limit = AUTO_SECONDS + AUTO_SECONDS_PER_1000_ROWS * len(X_fit) / 1000
    remaining = max(time_limit - (time.monotonic() - started), 1.0) if time_limit else None
    params = dict(
        model=model_name, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        model_params=model_params, categorical=list(categorical) or None,
        numeric=list(numeric) or None, time_limit=remaining, random_state=seed,
        verbose=verbose, ensemble_size=ensemble_size,
    )
    if task == "classification":
        estimator = TabularClassifier(
            class_weight=None if class_weight == "none" else class_weight, **params
        )
    else:
        estimator = TabularRegressor(**params)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tabattn-", dir=parent)
    try:
        estimator.fit(X_fit, y_fit, eval_set=(X_val, y_val))
        metrics = {
            "train": evaluation_metrics(estimator, X_fit, y_fit),
            "validation": evaluation_metrics(estimator, X_val, y_val),
            "test": evaluation_metrics(estimator, test.drop(columns=[target]), test[target]),
        }
        seconds = time.monotonic() - started
        metrics.update(
            task=task, backend=backend, target=target,
            rows={"train": len(X_fit), "validation": len(X_val), "test": len(test)},
            epochs=len(estimator.history_["loss"]), best_epoch=estimator.best_epoch_,
            ensemble_size=len(estimator.models_),
            member_epochs=[len(history["loss"]) for history in estimator.histories_],
            seconds=round(seconds, 2),
        )
        estimator.save(staging)
        with open(os.path.join(staging, "metrics.json"), "w", encoding="utf-8") as file:
            json.dump(metrics, file, indent=1)
        importances = _write_importances(estimator, staging)
        if os.path.exists(out):
            os.rmdir(out)
        os.replace(staging, out)
    except (ValueError, FileNotFoundError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        _fail(error)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _print_results(metrics, importances)
    click.echo(f"Saved model, metrics and feature importances to {out}")


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


def _train_test(frame, target, split_column, task, seed):
    if split_column is None and "split" in frame.columns and target != "split":
        values = set(frame["split"].dropna().astype(str).unique())
        if values == _SPLIT_VALUES:
            split_column = "split"
    if split_column is not None:
        if split_column not in frame.columns:
            raise ValueError(
                f"--split-column {split_column!r} is not a column. Available: {list(frame.columns)}"
            )
        split = frame[split_column].astype(str)
        if not set(split.unique()) <= _SPLIT_VALUES:
            raise ValueError(
                f"--split-column {split_column!r} must hold only 'train' and 'test'. "
                f"Received values: {sorted(set(split.unique()))[:5]}"
            )
        rest = frame.drop(columns=[split_column])
        train, test = rest[split == "train"], rest[split == "test"]
        if len(train) == 0 or len(test) == 0:
            raise ValueError(f"--split-column {split_column!r} leaves no train or no test rows")
        return train, test, f"column {split_column!r}"
    from sklearn.model_selection import train_test_split

    stratify = frame[target] if task == "classification" else None
    train, test = train_test_split(frame, test_size=0.2, random_state=seed, stratify=stratify)
    return train, test, "random 20%"


def _write_importances(estimator, directory):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    table = pd.DataFrame(
        {"feature": estimator._columns, "importance": estimator.feature_importances_}
    ).sort_values("importance", ascending=False, ignore_index=True)
    table.to_csv(os.path.join(directory, "feature_importance.csv"), index=False)
    shown = table.head(30).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(shown) + 1.2))
    ax.barh(shown["feature"], shown["importance"], color="#3b75af")
    if estimator.model_name_ == "ft_transformer":
        ax.set_xlabel("importance ([CLS] attention, averaged over heads, blocks and rows)")
        ax.set_title("FT-Transformer feature importance")
    else:
        ax.set_xlabel("importance (score drop when the column is shuffled, normalised)")
        ax.set_title("TabR permutation feature importance")
    fig.tight_layout()
    fig.savefig(os.path.join(directory, "feature_importance.png"), dpi=120)
    plt.close(fig)
    return table


def _print_results(metrics, importances):
    names = list(metrics["test"])
    click.echo("")
    click.echo(f"{'split':<12}" + "".join(f"{n:>10}" for n in names))
    for split in ("train", "validation", "test"):
        click.echo(f"{split:<12}" + "".join(f"{metrics[split][n]:>10.4f}" for n in names))
    trained = f"{metrics['epochs']} epochs (best {metrics['best_epoch']})"
    if metrics["ensemble_size"] > 1:
        trained = (f"{metrics['ensemble_size']} models averaged, epochs "
                   + ", ".join(map(str, metrics["member_epochs"])))
    click.echo(f"\n{trained}, {metrics['seconds']:.0f} s on {metrics['backend']}")
    click.echo("\nMost important features:")
    for row in importances.head(10).itertuples():
        click.echo(f"  {row.feature:<24}{row.importance:.4f}")


@main.command()
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-o", "--output", default="predictions.csv", show_default=True,
              type=click.Path(dir_okay=False), help="CSV file to write.")
def predict(model_dir, data, output):
    """Predict DATA with the model saved in MODEL_DIR; write one row per input row."""
    click.echo(f"Keras backend: {_select_backend()}", err=True)
    import pandas as pd

    from tabattn import data as tdata
    from tabattn.estimators import TabularClassifier, load

    try:
        estimator = load(model_dir)
        frame = tdata.read_table(data)
        result = pd.DataFrame({"prediction": estimator.predict(frame)})
        if isinstance(estimator, TabularClassifier):
            proba = estimator.predict_proba(frame)
            for j, label in enumerate(estimator.classes_):
                result[f"proba_{label}"] = proba[:, j]
    except (ValueError, FileNotFoundError) as error:
        _fail(error)
    result.to_csv(output, index=False)
    click.echo(f"Wrote {len(result)} predictions to {output}", err=True)


@main.command()
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--target", required=True, help="Target column in DATA.")
def evaluate(model_dir, data, target):
    """Evaluate the model in MODEL_DIR on DATA; print the metrics as JSON."""
    click.echo(f"Keras backend: {_select_backend()}", err=True)
    from tabattn import data as tdata
    from tabattn.estimators import evaluation_metrics, load

    try:
        estimator = load(model_dir)
        frame = tdata.read_table(data)
        if target not in frame.columns:
            raise ValueError(
                f"Target column {target!r} not found. Available columns: {list(frame.columns)}"
            )
        metrics = evaluation_metrics(estimator, frame.drop(columns=[target]), frame[target])
    except (ValueError, FileNotFoundError) as error:
        _fail(error)
    click.echo(json.dumps(metrics, indent=1))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
