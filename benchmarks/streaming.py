"""Streaming benchmark: one epoch of the default estimator on a Parquet table read in batches,
against the same fit in memory; peak resident memory and training rows per second.

Writes a synthetic table of ``--rows`` rows x 20 feature columns (15 numeric, 3% missing in
one, and 5 categorical of 10 categories) and a binary target, as Parquet files of at most
250,000 rows (row groups of 65,536), written chunk by chunk. Then, each in its own worker
process (so that its peak memory is its own):

- ``stream``: ``TabularClassifier(epochs=1, random_state=0).fit(folder, "y")`` (the default
  model, TabR above 2,000 training rows), reading the table in batches;
- ``memory`` (for tables up to ``--memory-max-rows``): the table read with pandas, then
  ``fit(X, y)`` with the same estimator.

Recorded per mode: ``train_rows_per_s`` (rows of the training steps after the first 20,
which include compilation, over their wall time), ``fit_seconds`` (the whole ``fit``: scan,
epoch, validation on all validation rows, importances) and ``peak_rss_mib``
(``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the worker at the end). With
``--max-steps`` the epoch stops after that many training steps (TabR trains a few hundred
to a few thousand rows per second on 2 CPU cores: a whole epoch of 1M rows takes an hour);
validation still covers every validation row.

Usage::

    KERAS_BACKEND=jax python benchmarks/streaming.py --rows 1000000 --out /tmp/streaming
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

N_NUMERIC, N_CATEGORICAL, FILE_ROWS = 15, 5, 250_000


def write_table(folder, n_rows, seed=0):
    """``n_rows`` synthetic rows as Parquet files in ``folder`` (created); chunk by chunk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=N_NUMERIC)
    effects = rng.normal(size=(N_CATEGORICAL, 10))
    for i, start in enumerate(range(0, n_rows, FILE_ROWS)):
        n = min(FILE_ROWS, n_rows - start)
        numeric = rng.normal(size=(n, N_NUMERIC))
        codes = rng.integers(0, 10, size=(n, N_CATEGORICAL))
        logit = np.tanh(numeric @ weights / 3) * 2 + effects[np.arange(N_CATEGORICAL), codes].sum(1)
        y = (logit + rng.logistic(size=n) > 0).astype("int64")
        columns = {f"x{j}": numeric[:, j] for j in range(N_NUMERIC)}
        columns["x0"] = np.where(rng.random(n) < 0.03, np.nan, columns["x0"])
        for j in range(N_CATEGORICAL):
            columns[f"c{j}"] = pa.array(np.char.add("k", codes[:, j].astype(str)))
        columns["y"] = y
        pq.write_table(pa.table(columns), os.path.join(folder, f"part-{i:04d}.parquet"),
                       row_group_size=65_536)


WARMUP_STEPS = 20


def worker(mode, folder, max_steps):
    """One fit; prints a JSON record on its last line of stdout."""
    import keras

    from tabattn import TabularClassifier

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == WARMUP_STEPS - 1:
                self.start = time.perf_counter()
            self.steps = batch + 1
            if max_steps and self.steps >= max_steps:
                self.model.stop_training = True

        def on_test_begin(self, logs=None):
            self.train_seconds = time.perf_counter() - self.start

    max_steps = int(max_steps)
    clock = Clock()
    estimator = TabularClassifier(epochs=1, random_state=0, verbose=0, callbacks=[clock])
    started = time.perf_counter()
    if mode == "stream":
        estimator.fit(folder, "y")
        from tabattn import streaming

        n_train = int((~streaming.validation_mask(
            np.arange(streaming.ParquetSource(folder).n_rows), 0.2, 0)).sum())
    else:
        import pandas as pd

        frame = pd.read_parquet(folder)
        estimator.fit(frame.drop(columns="y"), frame["y"])
        n_train = int(round(len(frame) * 0.8))
    fit_seconds = time.perf_counter() - started
    record = {
        "mode": mode, "model": estimator.model_name_, "backend": keras.backend.backend(),
        "train_rows": n_train, "steps": clock.steps, "batch_size": 256,
        "train_seconds": round(clock.train_seconds, 2),
        "train_rows_per_s": round((clock.steps - WARMUP_STEPS) * 256 / clock.train_seconds, 1),
        "fit_seconds": round(fit_seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "val_loss": estimator.history_["val_loss"][0],
    }
    print(json.dumps(record))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--memory-max-rows", type=int, default=1_000_000)
    parser.add_argument("--modes", nargs="+", default=["stream", "memory"])
    parser.add_argument("--out", default="streaming-benchmark")
    parser.add_argument("--max-steps", type=int, default=0,
                        help="Stop the epoch after this many training steps (0: whole epoch).")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker)
    records = []
    for n_rows in args.rows:
        folder = os.path.join(args.out, f"table-{n_rows}")
        if not os.path.isdir(folder):
            started = time.perf_counter()
            write_table(folder, n_rows)
            print(f"wrote {n_rows} rows in {time.perf_counter() - started:.0f} s", flush=True)
        for mode in args.modes:
            if mode == "memory" and n_rows > args.memory_max_rows:
                continue
            done = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--worker", mode, folder,
                 str(args.max_steps)],
                capture_output=True, text=True,
            )
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{mode} worker failed on {n_rows} rows")
            record = dict(json.loads(done.stdout.strip().splitlines()[-1]), rows=n_rows,
                          max_steps=args.max_steps)
            print(json.dumps(record), flush=True)
            records.append(record)
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as file:
        json.dump(records, file, indent=1)


if __name__ == "__main__":
    main()
