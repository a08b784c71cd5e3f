"""Scaling benchmark: training cost and peak memory against the number of training rows.

For each model and each size ``n`` (default 10k, 30k, 100k, 300k and 1M training rows) one
worker process (so that its peak memory is its own) builds a synthetic table of ``n``
training and ``n / 4`` validation rows with 20 columns (16 numeric, 4 categorical of 10
categories; a binary target from a fixed random non-linear function of them, 10% of labels
flipped), fits the model and records:

- ``epoch_seconds``: wall time of one training epoch, its validation included, after the
  first epoch (which includes compilation): what each further epoch of a fit costs;
- ``fit_seconds`` and ``epochs``: a whole fit with early stopping (patience 16, at most
  ``--fit-epochs`` epochs; default: the estimators' ``epochs="auto"``), for sizes up to
  ``--fit-max-rows`` (a fit of the larger tables takes hours on 2 cores);
- ``peak_rss_mib``: the worker's peak resident memory (``ru_maxrss``), data included.

The tabattn models run as the estimators build them (``TabularClassifier``, with
``model="auto"``, ``"tabm"``, ``"tabr"`` and ``"modernnca"``), with ``random_state=0`` and the estimators'
defaults; LightGBM (the same table with its own categorical support, at most 2000 rounds, early
stopping after 50) records ``fit_seconds`` and seconds per 100 boosting rounds in place of
``epoch_seconds``. ``report.py`` fits the exponent ``b`` of ``cost = a * rows^b`` (least
squares in log-log) per model and draws ``scaling.png``.

Usage::

    KERAS_BACKEND=jax python benchmarks/scaling.py                 # hours on 2 cores
    python benchmarks/scaling.py --models tabattn_auto lightgbm --rows 10000 100000
    python benchmarks/scaling.py --smoke --out /tmp/scaling        # the test suite's run
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

ROWS = (10_000, 30_000, 100_000, 300_000, 1_000_000)
MODELS = ("tabattn_auto", "tabattn_tabm", "tabattn_tabr", "tabattn_modernnca", "lightgbm")
N_NUMERIC, N_CATEGORICAL, N_CATEGORIES = 16, 4, 10


def synthetic_table(n, seed=0):
    """``(frame, y)``: ``n`` rows of the 20-column table described in the module docstring."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(n, N_NUMERIC)).astype("float32")
    categorical = rng.integers(0, N_CATEGORIES, size=(n, N_CATEGORICAL))
    # A fixed random function: a small tanh network of the numeric columns plus a random
    # effect per category, the same for every n (its own seed).
    weights = np.random.default_rng(1234)
    hidden = np.tanh(numeric @ weights.normal(size=(N_NUMERIC, 32)) / 4)
    score = hidden @ weights.normal(size=32) / 4
    effects = weights.normal(scale=0.5, size=(N_CATEGORICAL, N_CATEGORIES))
    score += effects[np.arange(N_CATEGORICAL), categorical].sum(axis=1)
    y = (score > np.median(score)).astype("int64")
    flip = rng.random(n) < 0.1
    y[flip] = 1 - y[flip]
    frame = pd.DataFrame(numeric, columns=[f"x{j}" for j in range(N_NUMERIC)])
    for j in range(N_CATEGORICAL):
        frame[f"c{j}"] = pd.Categorical([f"v{v}" for v in categorical[:, j]])
    return frame, y


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_tabattn(model, n, fit, fit_epochs, smoke):
    import keras

    from tabattn import TabularClassifier

    class EpochTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            # Validation has run by now (Keras calls on_epoch_end after it).
            self.times.append(time.perf_counter() - self.start)

    frame, y = synthetic_table(n + n // 4)
    X_train, y_train, X_val, y_val = frame.iloc[:n], y[:n], frame.iloc[n:], y[n:]
    timer = EpochTimer()
    params = {"tabm": {"k": 4, "d_block": 16}, "tabr": {"d_main": 16},
              "modernnca": {"d_main": 16}}
    name = model.removeprefix("tabattn_")
    estimator = TabularClassifier(
        model=name, epochs=fit_epochs if fit else 2, random_state=0, verbose=0,
        callbacks=[timer],
        model_params=(params.get(name) if smoke else None),
    )
    started = time.perf_counter()
    estimator.fit(X_train, y_train, eval_set=(X_val, y_val))
    seconds = time.perf_counter() - started
    result = {
        "model_name": estimator.model_name_,
        "epoch_seconds": float(np.median(timer.times[1:])) if len(timer.times) > 1 else None,
        "first_epoch_seconds": timer.times[0],
        "n_parameters": int(sum(m.count_params() for m in estimator.models_)),
    }
    if fit:
        result.update(fit_seconds=seconds, epochs=len(timer.times),
                      best_epoch=estimator.best_epoch_)
    return result


def run_lightgbm(n, smoke):
    import lightgbm

    frame, y = synthetic_table(n + n // 4)
    model = lightgbm.LGBMClassifier(n_estimators=20 if smoke else 2000, random_state=0,
                                    verbose=-1)
    started = time.perf_counter()
    model.fit(frame.iloc[:n], y[:n], eval_set=[(frame.iloc[n:], y[n:])],
              callbacks=[lightgbm.early_stopping(5 if smoke else 50, verbose=False)])
    seconds = time.perf_counter() - started
    rounds = int(model.booster_.current_iteration())
    return {"fit_seconds": seconds, "epochs": rounds,
            "best_epoch": int(model.best_iteration_ or rounds),
            "seconds_per_100_rounds": 100 * seconds / rounds}


def worker(args):
    """One (model, rows) measurement in this process; prints its result as JSON."""
    n = args.worker_rows
    fit = n <= args.fit_max_rows
    try:
        if args.worker_model == "lightgbm":
            result = run_lightgbm(n, args.smoke)
        else:
            result = run_tabattn(args.worker_model, n, fit, args.fit_epochs, args.smoke)
        result["status"] = "ok"
    except Exception as error:  # reported in the record; the run goes on
        result = {"status": "error", "error": f"{type(error).__name__}: {error}"}
    result["peak_rss_mib"] = _peak_rss_mib()
    print("RESULT " + json.dumps(result))
    return 0


def measure(model, n, args):
    command = [sys.executable, os.path.abspath(__file__), "--worker-model", model,
               "--worker-rows", str(n), "--fit-max-rows", str(args.fit_max_rows),
               "--fit-epochs", str(args.fit_epochs)] + (["--smoke"] if args.smoke else [])
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [l for l in completed.stdout.splitlines() if l.startswith("RESULT ")]
    if not lines:
        return {"status": "error", "error": f"worker exited with {completed.returncode}: "
                f"{completed.stderr[-2000:]}"}
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--rows", nargs="+", type=int, help=f"training rows (default {ROWS})")
    parser.add_argument("--fit-max-rows", type=int, default=100_000,
                        help="run whole fits up to this many rows (default 100,000)")
    parser.add_argument("--fit-epochs", default="auto",
                        type=lambda v: v if v == "auto" else int(v),
                        help="epoch cap of the whole fits (default: the estimators' 'auto')")
    parser.add_argument("--out", help="folder for the JSON records (default "
                        "benchmarks/results; benchmarks/results/smoke with --smoke)")
    parser.add_argument("--smoke", action="store_true", help="tiny models and tables")
    parser.add_argument("--worker-model", help=argparse.SUPPRESS)
    parser.add_argument("--worker-rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker_model:
        return worker(args)
    rows = args.rows or ((400, 800) if args.smoke else ROWS)
    if args.smoke:
        args.fit_epochs = 3 if args.fit_epochs == "auto" else min(args.fit_epochs, 3)
    out = args.out or os.path.join(_common.DEFAULT_RESULTS_DIR, *(["smoke"] if args.smoke else []))
    machine, versions = _common.machine_info(), _common.versions()
    backend, commit = _common.keras_backend(), _common.source_commit()
    errors = 0
    for model in args.models:
        for n in rows:
            record = {
                "kind": "scaling", "model": model, "rows": n, "backend": backend,
                "keras_model": model != "lightgbm", "n_features": N_NUMERIC + N_CATEGORICAL,
                "machine": machine, "versions": versions, "commit": commit,
                "smoke": args.smoke, "started": _common.now_utc(),
                **measure(model, n, args),
            }
            errors += record["status"] != "ok"
            keras_part = f"__{backend}" if record["keras_model"] else ""
            _common.write_record(out, f"scaling__{model}{keras_part}__{n}", record)
            shown = {k: record.get(k) for k in ("epoch_seconds", "fit_seconds", "epochs",
                                                 "peak_rss_mib", "error") if k in record}
            print(f"[{record['status']}] {model} {n} rows: {shown}", flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
