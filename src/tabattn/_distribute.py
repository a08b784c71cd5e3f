"""Data-parallel training of the estimators on ``keras.distribution`` (JAX backend).

The estimators' ``distribution`` argument (see ``TabularClassifier``) is resolved here into a
``keras.distribution.Distribution``; Keras's own JAX trainer does the rest (the batch split
over the devices, the gradients' all-reduce, replicated variables). What this module adds is
what Keras leaves to the caller:

- every batch must split evenly over the devices, so each process's rows are padded to a
  multiple of its devices with copies of one row at weight 0, and the epoch losses are
  rescaled to the mean over the real rows (``Feed``, ``LossScale``);
- with several processes (``jax.distributed.initialize``), every process passes its own share
  of the rows: the shares are exchanged (``gather_shares``) so that every process fits the
  same preprocessing, target encoding, split and (TabR) stored rows, as one process would
  on the whole table; each then feeds the training steps an equal part of the rows (every
  ``processes``-th one: the same number of steps on every process); decisions taken from a
  process's clock (``time_limit``) are agreed (``agreed``); after training each process
  gets a copy of the models on its own device (``localized``) for prediction.
"""

import contextlib
import os
import pickle
import tempfile

import keras
import numpy as np

CHOICES = ("auto", "data-parallel")


def resolve(distribution):
    """The ``keras.distribution.Distribution`` that the ``distribution`` argument names, or
    ``None`` (train and predict as without one).

    Raises:
        ValueError: ``"data-parallel"`` or a ``Distribution`` on a backend other than JAX;
            a ``Distribution`` over several processes that shards the data itself.
    """
    if distribution is None:
        return None
    backend = keras.backend.backend()
    if backend != "jax":
        if distribution == "auto":
            return None
        raise ValueError(
            f"distribution={distribution!r} needs the JAX backend, and the Keras backend is "
            f"{backend!r}: data-parallel training runs on Keras's distribution API, which "
            "this package supports on JAX only. Set KERAS_BACKEND=jax before Keras is imported "
            "(pip install 'tabattn[jax]'), or train on one device with distribution=None "
            "(\"auto\" falls back to one device off JAX)."
        )
    if isinstance(distribution, str):
        devices = keras.distribution.list_devices()
        if len(devices) < 2:
            return None  # one device: as without a distribution
        # Each process passes its own rows (see gather_shares), so Keras must not shard them.
        return keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    if distribution.num_processes > 1:
        if not isinstance(distribution, keras.distribution.DataParallel):
            raise ValueError(
                "Over several processes the estimators support a "
                "keras.distribution.DataParallel distribution only; received "
                f"{type(distribution).__name__}"
            )
        if distribution.auto_shard_dataset:
            raise ValueError(
                "distribution: over several processes each process passes the estimator its "
                "own share of the rows, so the distribution must not shard them again: build "
                "it with keras.distribution.DataParallel(auto_shard_dataset=False), or pass "
                "distribution=\"data-parallel\""
            )
    return distribution


def is_multi_process(distribution):
    return distribution is not None and distribution.num_processes > 1


@contextlib.contextmanager
def active(distribution):
    """Make ``distribution`` Keras's current one (``None``: none), and restore the caller's."""
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(distribution)
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)


def _allgather(array):
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(np.asarray(array)))


def agreed(flag):
    """``flag`` of this process, or in a fit over several processes whether it is set on any
    of them: decisions taken from a process's own clock must be the same on all of them,
    which otherwise wait for each other's training steps forever."""
    distribution = keras.distribution.distribution()
    if not is_multi_process(distribution):
        return bool(flag)
    return bool(_allgather(np.asarray([bool(flag)])).any())


def smallest(value):
    """``value`` (a number) of this process, or in a fit over several processes the smallest
    of theirs: like ``agreed``, for a setting that each process derives from its own clock."""
    distribution = keras.distribution.distribution()
    if not is_multi_process(distribution):
        return value
    return type(value)(_allgather(np.asarray([value], dtype="float64")).min())


def _gather_objects(value):
    """``value`` of every process, in process order (pickled: the processes of one job)."""
    payload = np.frombuffer(pickle.dumps(value), dtype=np.uint8)
    sizes = _allgather(np.asarray([payload.size], dtype=np.int64)).reshape(-1)
    padded = np.zeros(int(sizes.max()), dtype=np.uint8)
    padded[: payload.size] = payload
    gathered = _allgather(padded)
    return [pickle.loads(gathered[i, : sizes[i]].tobytes()) for i in range(len(sizes))]


def gather_shares(X, y, sample_weight, eval_set):
    """Every process's ``X``, ``y``, ``sample_weight`` and ``eval_set``, concatenated in
    process order: the same table on every process, which each fits the preprocessing, the
    target and the split on as one process would (``Feed`` then gives each process an equal
    part of the training and validation rows)."""
    import pandas as pd

    from tabattn.estimators import _as_frame, _as_target

    frame = _as_frame(X)
    target = _as_target(y, len(frame))
    weights = None if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    evaluation = None
    if eval_set is not None:
        frame_val = _as_frame(eval_set[0])
        evaluation = (frame_val, _as_target(eval_set[1], len(frame_val)))
    shares = _gather_objects((frame, target, weights, evaluation))
    columns = [list(share[0].columns) for share in shares]
    if any(c != columns[0] for c in columns):
        raise ValueError(
            "distribution: the processes' X have different columns "
            f"({[c[:5] for c in columns]}); every process must pass its rows of the same table"
        )
    for position, name in ((2, "sample_weight"), (3, "eval_set")):
        given = [share[position] is not None for share in shares]
        if any(given) and not all(given):
            raise ValueError(
                f"distribution: {name} was given on processes {np.flatnonzero(given).tolist()} "
                "only; pass it on every process or on none"
            )

    def joined(parts):
        return pd.concat(parts, ignore_index=True)

    X = joined([share[0] for share in shares])
    y = joined([share[1] for share in shares]).infer_objects().rename(target.name)
    if weights is not None:
        sample_weight = np.concatenate([share[2] for share in shares])
    if evaluation is not None:
        eval_set = (joined([share[3][0] for share in shares]),
                    joined([share[3][1] for share in shares]).infer_objects()
                    .rename(evaluation[1].name))
    return X, y, sample_weight, eval_set


def _rows(arrays, index):
    return {k: v[index] for k, v in arrays.items()}


class Feed:
    """What one process gives ``model.fit`` in a distributed fit: its rows, padded.

    Keras splits each batch over the devices, and JAX needs every part the same size, so the
    batch size must be a multiple of the devices (``batch_size="auto"`` is rounded up to one;
    an explicit one that is not is an error), and each process's rows are padded to the same
    multiple of its devices (the largest share of any process) with copies of the first row
    at weight 0. The loss is a mean over rows, padding included: ``factors`` are what scale
    the epoch losses back to the mean over the real rows.
    """

    def __init__(self, distribution, batch_size, auto):
        shards = distribution.num_model_replicas
        if batch_size % shards:
            if not auto:
                lower = batch_size - batch_size % shards
                raise ValueError(
                    f"batch_size={batch_size} does not split evenly over the {shards} devices "
                    "of `distribution` (each device takes an equal part of every batch): "
                    f"use a multiple of {shards}, e.g. {lower or shards} or "
                    f"{lower + shards}, or batch_size=\"auto\""
                )
            batch_size += shards - batch_size % shards
        self.processes = distribution.num_processes
        self.local_shards = max(shards // self.processes, 1)
        self.global_batch_size = batch_size
        self.batch_size = batch_size // self.processes  # this process's rows per step
        self.factors = {}

    def _padded_length(self, n_local):
        if self.processes > 1:
            n_local = int(_allgather(np.asarray([n_local], dtype=np.int64)).max())
        return -(-max(n_local, 1) // self.local_shards) * self.local_shards

    def padded_batches(self, n_rows, key):
        """For rows read in batches (a streamed fit, one process): record the loss factor of
        ``key`` when the last of ``n_rows`` rows' batches is padded to a multiple of the
        devices (``tabattn.streaming``), and return that multiple."""
        last = n_rows % self.batch_size or self.batch_size
        padding = -last % self.local_shards
        if padding:
            self.factors[key] = (n_rows + padding) / n_rows
        return self.local_shards

    def rows(self, inputs, targets, weights, key):
        """This process's rows of ``inputs``, ``targets``, ``weights`` (every process holds
        them all: each takes every ``processes``-th row), padded; records the loss factor of
        ``key``."""
        index = np.arange(len(targets))
        if self.processes > 1:
            import jax

            index = index[index % self.processes == jax.process_index()]
        n_padded = self._padded_length(len(index))
        padding = n_padded - len(index)
        if padding == 0 and self.processes == 1:
            return inputs, targets, weights
        self.factors[key] = n_padded * self.processes / len(targets)
        return padded_rows(inputs, targets, weights, index, padding)


def padded_rows(inputs, targets, weights, index, padding):
    """Rows ``index`` of ``inputs`` (a dict), ``targets`` and ``weights`` (``None``: all
    1), then ``padding`` copies of row 0 at weight 0."""
    if weights is None:
        weights = np.ones(len(targets), dtype="float32")
    index = np.concatenate([index, np.zeros(padding, dtype=index.dtype)])
    weights = weights[index].astype("float32")
    weights[len(index) - padding :] = 0.0
    return _rows(inputs, index), targets[index], weights


class LossScale(keras.callbacks.Callback):
    """Scale the epoch logs ``loss``/``val_loss`` by ``factors`` (see ``Feed``): first in the
    callback list, so that early stopping and the history see the mean over the real rows."""

    def __init__(self, factors):
        super().__init__()
        self.factors = factors

    def on_epoch_end(self, epoch, logs=None):
        for key, factor in self.factors.items():
            if logs is not None and key in logs:
                logs[key] = float(logs[key]) * factor


# PyTorch's CPU matmul computes the rows past the last whole group of 4 (or, below 12 rows,
# of 8) with another kernel, which sums a row's products in another order: a row predicted
# alone, or at the end of a batch of 10, differed in its last bits from the same row among
# 256, and TabR could then retrieve another of two stored rows at nearly the same distance.
# Every call to the model gets a multiple of this many rows.
PREDICT_ROW_MULTIPLE = 8


def predict_rows(model, inputs, batch_size):
    """``model.predict(inputs)`` in batches of a multiple of ``PREDICT_ROW_MULTIPLE`` rows
    (``batch_size`` rounded up, the rows padded with copies of row 0 whose predictions are
    dropped), so that a row's prediction does not depend on how many rows are predicted with
    it, nor on its place among them."""
    n = len(next(iter(inputs.values())))
    padding = -n % PREDICT_ROW_MULTIPLE
    if padding:
        inputs = _rows(inputs, np.concatenate([np.arange(n), np.zeros(padding, dtype=int)]))
    batch_size += -batch_size % PREDICT_ROW_MULTIPLE
    return model.predict(inputs, batch_size=batch_size, verbose=0)[:n]


def predict(model, inputs, batch_size, distribution):
    """``predict_rows`` under ``distribution``: the rows padded to a multiple of the devices
    (and the padding's predictions dropped). Over several processes each process predicts
    its own rows on its own device, with the model of ``localized``."""
    if distribution is None:
        return predict_rows(model, inputs, batch_size)
    if is_multi_process(distribution):
        with active(None):
            return predict_rows(model, inputs, batch_size)
    shards = distribution.num_model_replicas
    n = len(next(iter(inputs.values())))
    padding = -n % shards
    if padding:
        inputs = _rows(inputs, np.concatenate([np.arange(n), np.zeros(padding, dtype=int)]))
    with active(distribution):
        outputs = model.predict(
            inputs, batch_size=max(shards, batch_size - batch_size % shards), verbose=0
        )
    return outputs[:n]


def localized(model):
    """A copy of ``model`` on this process's device alone (through a ``.keras`` file)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        with active(None):
            return keras.saving.load_model(path)


def check_multi_process(random_state, backup_dir):
    """What a fit over several processes needs of the estimator's arguments."""
    if random_state is None:
        raise ValueError(
            "distribution: a fit over several processes needs random_state, the same integer "
            "on every process, so that they split the rows and initialise the weights alike"
        )
    if backup_dir is not None:
        raise ValueError(
            "backup_dir is not supported in a fit over several processes (their backups "
            "could stop at different epochs); pass backup_dir=None"
        )
