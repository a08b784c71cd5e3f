"""Tables larger than memory: fitting and predicting on Parquet read in record batches.

``TabularClassifier.fit``/``TabularRegressor.fit`` take, as ``X``, a path to a Parquet file
(``.parquet``/``.pq``), a directory of Parquet files (read recursively in sorted path order;
names starting with ``.`` or ``_`` are skipped) or a ``pyarrow.dataset.Dataset``, with ``y``
the **name of the target column** (a string). ``predict``/``predict_proba`` take the same
sources. They call ``fit_stream`` and ``predict_outputs`` here, which take the options.

No pass holds all rows at once. A row's *global row number* is its position in the files
read in order (a ``Dataset``: in the order of its fragments). What a streamed fit does:

1. One pass over the table (``scan``): the validation rows are those whose
   ``row_uniform(row, seed, VALIDATION_SALT)`` is below ``validation_fraction`` (a fixed
   integer hash, splitmix64, of the global row number and the estimator's ``random_state``,
   0 when ``None``): the same rows on every pass and every machine. Rows whose target is
   missing are left out (with a warning that counts them). The pass collects the target's
   classes (classification) or its mean and standard deviation (regression), and a uniform
   sample of at most ``sample_rows`` training rows (default 100,000): the rows with the
   smallest ``row_uniform(row, seed, SAMPLE_SALT)`` (a bottom-k sample, a reservoir sample
   that does not depend on batch sizes or file boundaries), kept in global row order.
2. The ``TabularPreprocessor`` (medians, quantiles, category vocabularies, missing-value
   flags) is fitted on that sample: **categories absent from the sample are treated as
   unseen** (code 0), and a numeric column with no missing value in the sample gets no
   missing flag. TabR's stored rows (``max_context_rows``, 16,384 by default in the
   estimator) are drawn from the sample too, as for an in-memory fit from its training rows.
   ``model="auto"`` and ``batch_size="auto"`` count all training rows of the table.
3. Training reads the training rows through a ``keras.utils.PyDataset``
   (``ParquetBatches``): record batches of ``read_rows`` rows are gathered into a buffer of
   ``shuffle_rows`` rows (default 65,536), shuffled (seeded with ``(random_state, epoch)``;
   the files' order is shuffled too), preprocessed and cut into ``(inputs, target)``
   batches (``(inputs, target, weights)`` with ``class_weight``). A background thread
   prepares the next batches while the model trains.
4. Validation (early stopping) streams all validation rows the same way, unshuffled, every
   epoch. ``feature_importances_`` are computed on a sample of at most 2,048 of them.

Not supported with a streamed ``X``: ``sample_weight`` and ``eval_set`` (a ``ValueError``).
"""

import math
import os
import queue
import threading
import warnings

import keras
import numpy as np

try:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq
except ImportError as error:  # pragma: no cover
    raise ImportError(
        "tabattn.streaming needs pandas and pyarrow. Install them with: pip install 'tabattn[cli]'"
    ) from error

DEFAULT_SAMPLE_ROWS = 100_000
DEFAULT_SHUFFLE_ROWS = 65_536
DEFAULT_READ_ROWS = 65_536
# Record batches PyArrow reads ahead of the one in use (its default, 16, holds a million rows
# of 65,536-row batches).
READAHEAD_BATCHES = 2
VALIDATION_SAMPLE_ROWS = 2048
VALIDATION_SALT, SAMPLE_SALT, TEST_SALT = 0x5EED0001, 0x5EED0002, 0x5EED0003
PARQUET_SUFFIXES = (".parquet", ".pq")

_MASK64 = (1 << 64) - 1


# --- sources ---------------------------------------------------------------------------------
def is_stream_source(X):
    """Whether ``X`` is read as a stream: a ``pyarrow.dataset.Dataset``, a directory, or a
    path (``str``/``os.PathLike``) ending in ``.parquet`` or ``.pq``."""
    if isinstance(X, (ds.Dataset, ParquetSource)):
        return True
    if isinstance(X, (str, os.PathLike)):
        path = os.fspath(X)
        return os.path.isdir(path) or path.lower().endswith(PARQUET_SUFFIXES)
    return False


def _parquet_files(directory):
    files = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        files += [os.path.join(root, n) for n in names
                  if n.lower().endswith(PARQUET_SUFFIXES) and not n.startswith((".", "_"))]
    return sorted(files)


def check_schemas(files):
    """The schema of ``files[0]``, after checking that every file has the same columns with
    the same types.

    Raises:
        ValueError: a file lacks a column of the first, has one the first lacks, or has a
            column of another type; the message names the file and the column.
    """
    first = pq.read_schema(files[0])
    for path in files[1:]:
        schema = pq.read_schema(path)
        for field in first:
            if field.name not in schema.names:
                raise ValueError(
                    f"Parquet file {path!r} has no column {field.name!r}, which {files[0]!r} "
                    "has: every file of the table must have the same columns"
                )
            other = schema.field(field.name).type
            if other != field.type:
                raise ValueError(
                    f"Parquet file {path!r} has column {field.name!r} of type {other}, but "
                    f"{files[0]!r} has it as {field.type}: every file must give a column "
                    "the same type"
                )
        extra = [name for name in schema.names if name not in first.names]
        if extra:
            raise ValueError(
                f"Parquet file {path!r} has column {extra[0]!r}, which {files[0]!r} lacks: "
                "every file of the table must have the same columns"
            )
    return first


class ParquetSource:
    """A table read in record batches, with global row numbers.

    Args:
        source: a Parquet file path, a directory of Parquet files or a
            ``pyarrow.dataset.Dataset``.
        columns: the columns to read (default: all); others are left out of ``columns``.
        rows: ``None``, or a function of int64 global row numbers ``(n,)`` returning bool
            ``(n,)``: the rows that belong to this table (e.g. the CLI's training rows).
            Rows keep their global numbers.

    Attributes: ``dataset``, ``schema``, ``columns`` (names), ``n_rows`` (int: rows of the
    files, before ``rows``), ``name`` (for messages).

    Raises:
        FileNotFoundError: the path does not exist, or a directory holds no Parquet file.
        ValueError: the files disagree on columns or types (see ``check_schemas``); the
            table has no rows.
    """

    def __init__(self, source, columns=None, rows=None):
        self.row_filter = rows
        if isinstance(source, ds.Dataset):
            self.name = "the dataset"
            files = getattr(source, "files", None)
            if files and all(f.lower().endswith(PARQUET_SUFFIXES) for f in files):
                check_schemas(files)
            self.dataset = source
        else:
            path = os.fspath(source)
            self.name = path
            if not os.path.exists(path):
                raise FileNotFoundError(f"Data file not found: {path!r}")
            files = _parquet_files(path) if os.path.isdir(path) else [path]
            if not files:
                raise FileNotFoundError(f"No Parquet file (.parquet, .pq) in {path!r}")
            schema = check_schemas(files)
            self.dataset = ds.dataset(files, schema=schema, format="parquet")
        self.schema = self.dataset.schema
        # pandas stores a frame's index as columns (e.g. __index_level_0__) and
        # pandas.read_parquet makes them the index again: they are not features.
        metadata = self.schema.pandas_metadata or {}
        index = {c for c in metadata.get("index_columns", []) if isinstance(c, str)}
        self.columns = [c for c in self.schema.names if c not in index]
        if columns is not None:
            self.require(columns)
            self.columns = [c for c in self.columns if c in set(columns)]
        self._fragments = list(self.dataset.get_fragments())
        counts = [f.count_rows() for f in self._fragments]
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype("int64")
        self.n_rows = int(self._starts[-1])
        if self.n_rows == 0:
            raise ValueError(f"The table {self.name} has no rows (columns: {self.columns})")

    def require(self, columns, what="column"):
        """Raise ``ValueError`` naming the first of ``columns`` that is not in the table."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise ValueError(
                f"{what.capitalize()} {missing[0]!r} is not in {self.name}"
                + (f" (nor {missing[1:]})" if len(missing) > 1 else "")
                + f". Available columns: {self.columns}"
            )

    def batches(self, columns, read_rows=DEFAULT_READ_ROWS, rng=None):
        """Yield ``(rows, batch)``: int64 global row numbers ``(n,)`` and a
        ``pyarrow.RecordBatch`` of ``columns``. With ``rng`` (a NumPy Generator) the
        fragments (files) come in a random order; rows keep their numbers."""
        order = np.arange(len(self._fragments))
        if rng is not None:
            rng.shuffle(order)
        for i in order:
            start = int(self._starts[i])
            for batch in self._fragments[i].to_batches(
                schema=self.schema, columns=list(columns), batch_size=read_rows,
                batch_readahead=READAHEAD_BATCHES, fragment_readahead=1,
            ):
                rows = np.arange(start, start + batch.num_rows, dtype="int64")
                start += batch.num_rows
                if self.row_filter is not None:
                    keep = np.asarray(self.row_filter(rows), dtype=bool)
                    if not keep.any():
                        continue
                    rows, batch = rows[keep], batch.filter(pa.array(keep))
                yield rows, batch


# --- hashing ---------------------------------------------------------------------------------
def row_hash(rows, seed, salt):
    """splitmix64 of ``rows + f(seed, salt)``: uint64 ``(n,)``, the same on every machine."""
    offset = (int(seed) * 0x9E3779B97F4A7C15 + int(salt) * 0xD1B54A32D192ED03) & _MASK64
    with np.errstate(over="ignore"):
        z = np.asarray(rows, dtype=np.uint64) + np.uint64(offset)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def row_uniform(rows, seed, salt):
    """float64 ``(n,)`` in [0, 1): ``row_hash``'s top 53 bits, uniform over rows."""
    return (row_hash(rows, seed, salt) >> np.uint64(11)).astype("float64") / 2.0**53


def validation_mask(rows, fraction, seed):
    """bool ``(n,)``: the global ``rows`` that a streamed fit validates on."""
    return row_uniform(rows, seed, VALIDATION_SALT) < fraction


# --- the first pass --------------------------------------------------------------------------
class _BottomK:
    """The ``k`` rows with the smallest keys seen so far (a uniform sample without
    replacement when keys are uniform), as Arrow tables; at most ``2 k`` rows held."""

    def __init__(self, k):
        self.k, self.threshold = k, np.inf
        self.keys, self.rows, self.tables, self.held = [], [], [], 0

    def add(self, keys, rows, batch):
        take = keys < self.threshold
        if not take.any():
            return
        self.keys.append(keys[take])
        self.rows.append(rows[take])
        self.tables.append(pa.Table.from_batches([batch]).filter(pa.array(take)))
        self.held += int(take.sum())
        if self.held > 2 * self.k:
            self._compact()

    def _compact(self):
        keys, rows = np.concatenate(self.keys), np.concatenate(self.rows)
        table = pa.concat_tables(self.tables)
        if len(keys) > self.k:
            keep = np.argpartition(keys, self.k - 1)[:self.k]
            self.threshold = float(keys[keep].max())
            keys, rows, table = keys[keep], rows[keep], table.take(pa.array(keep))
        self.keys, self.rows, self.tables, self.held = [keys], [rows], [table], len(keys)

    def result(self):
        """``(rows, table, keys)`` in global row order (empty when nothing was added)."""
        if not self.tables:
            return np.zeros(0, "int64"), None, np.zeros(0)
        self._compact()
        order = np.argsort(self.rows[0], kind="stable")
        return self.rows[0][order], self.tables[0].take(pa.array(order)), self.keys[0][order]


class Scan:
    """What ``scan``'s pass over the table found (see the module docstring).

    Attributes: ``n_rows`` (rows of the table), ``n_train``, ``n_validation`` (rows with a
    target in each part), ``n_missing_target``, ``sample_rows``/``sample`` (int64 global row
    numbers and a pandas DataFrame of the training sample, features then target, in row
    order), ``sample_keys`` (their sample keys), ``validation_rows``/``validation`` (the same
    for at most 2,048 validation rows), ``classes`` (sorted unique target values with their
    ``class_counts``; classification) or ``mean``, ``std`` (regression).
    """


def _has_target(batch, target):
    # bool (n,): neither null nor NaN, as pandas's isna in an in-memory fit.
    column = batch.column(target)
    present = column.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_floating(column.type):
        present &= ~np.isnan(column.to_numpy(zero_copy_only=False))
    return present


def _target_values(column):
    # A target column as NumPy values, for class sets and statistics.
    return column.to_pandas().infer_objects().to_numpy()


def scan(source, features, target, task, validation_fraction, seed,
         sample_rows=DEFAULT_SAMPLE_ROWS, read_rows=DEFAULT_READ_ROWS):
    """One pass over ``source`` (a ``ParquetSource``): the split's sizes, the training
    sample, a validation sample and the target's statistics (a ``Scan``).

    Raises:
        ValueError: ``target`` or a feature is not a column; no row has a target value, or
            a part (training or validation) has none; a regression target with non-numeric
            or infinite values.
    """
    from tabattn.targets import RegressionTarget

    source.require([target], "target column")
    source.require(features, "feature column")
    columns = list(features) + [target]
    train_sample, val_sample = _BottomK(sample_rows), _BottomK(VALIDATION_SAMPLE_ROWS)
    result = Scan()
    result.n_rows = source.n_rows
    result.n_train = result.n_validation = result.n_missing_target = 0
    counts = {}
    n, mean, m2 = 0, 0.0, 0.0  # Chan et al.'s parallel variance
    for rows, batch in source.batches(columns, read_rows):
        present = _has_target(batch, target)
        result.n_missing_target += int((~present).sum())
        is_val = validation_mask(rows, validation_fraction, seed)
        train, val = present & ~is_val, present & is_val
        result.n_train += int(train.sum())
        result.n_validation += int(val.sum())
        train_sample.add(
            row_uniform(rows[train], seed, SAMPLE_SALT), rows[train],
            batch.filter(pa.array(train)),
        )
        val_sample.add(
            row_uniform(rows[val], seed, SAMPLE_SALT), rows[val], batch.filter(pa.array(val))
        )
        values = _target_values(batch.column(target).filter(pa.array(present)))
        if task == "classification":
            labels, label_counts = np.unique(values.astype(object) if values.dtype == object
                                             else values, return_counts=True)
            for label, count in zip(labels.tolist(), label_counts.tolist()):
                counts[label] = counts.get(label, 0) + count
        elif len(values):
            numbers = RegressionTarget._numbers(values)
            if np.isinf(numbers).any():
                raise ValueError(
                    f"The regression target {target!r} holds infinite values; replace or "
                    "drop those rows"
                )
            b_n, b_mean = len(numbers), float(numbers.mean())
            b_m2 = float(((numbers - b_mean) ** 2).sum())
            delta = b_mean - mean
            total = n + b_n
            mean += delta * b_n / total
            m2 += b_m2 + delta**2 * n * b_n / total
            n = total
    if result.n_missing_target:
        warnings.warn(
            f"Dropped {result.n_missing_target} of {result.n_rows} rows whose target "
            f"{target!r} is missing", stacklevel=3,
        )
    if result.n_train == 0 or result.n_validation == 0:
        raise ValueError(
            f"Target column {target!r} leaves {result.n_train} training and "
            f"{result.n_validation} validation rows with a value; fit needs both"
        )
    result.sample_rows, table, result.sample_keys = train_sample.result()
    result.sample = table.to_pandas()
    result.validation_rows, table, _ = val_sample.result()
    result.validation = table.to_pandas()
    if task == "classification":
        result.classes = list(counts)
        result.class_counts = counts
    else:
        result.mean, result.std = mean, math.sqrt(m2 / n) if n else 0.0
    return result


# --- batches for Keras -----------------------------------------------------------------------
class ParquetBatches(keras.utils.PyDataset):
    """Model batches of one part (``"train"``, ``"validation"``) of a streamed table.

    Each item is ``(inputs, target)`` or ``(inputs, target, weights)``: ``inputs`` as
    ``TabularPreprocessor.transform`` gives them (plus int32 ``"row_index"`` ``(n,)`` when
    ``context_rows`` is given: a row's position among TabR's stored rows, -1 if not stored),
    ``target`` as ``estimator.target_.encode``, ``weights`` float32 ``(n,)``. All batches
    have ``batch_size`` rows but the last, which is padded to a multiple of ``multiple``
    rows with copies of its first row at weight 0 (``_pad``).

    Batches are made in order by a background thread; ``__getitem__`` expects indices
    0, 1, 2, ... (as Keras asks with ``workers=1`` and ``shuffle=False``), and restarts the
    pass (skipping ahead) when asked for another. Each epoch (``on_epoch_end``, or
    ``set_epoch``) draws a new shuffle from ``(seed, epoch)``.
    """

    def __init__(self, estimator, source, target, part, n_rows, batch_size, seed,
                 shuffle=False, shuffle_rows=DEFAULT_SHUFFLE_ROWS, read_rows=DEFAULT_READ_ROWS,
                 context_rows=None, class_weights=None, prefetch=8, multiple=1):
        super().__init__(workers=1, use_multiprocessing=False, max_queue_size=prefetch)
        self.estimator, self.source, self.target, self.part = estimator, source, target, part
        self.n_rows, self.batch_size, self.seed = n_rows, batch_size, seed
        self.shuffle, self.shuffle_rows, self.read_rows = shuffle, shuffle_rows, read_rows
        self.context_rows = context_rows
        self.class_weights = class_weights
        self.prefetch, self.multiple = prefetch, multiple
        self.epoch = 0
        self._thread = self._stop = self._queue = None
        self._next = 0

    @property
    def num_batches(self):
        return -(-self.n_rows // self.batch_size)

    def __len__(self):
        return self.num_batches

    def __getitem__(self, index):
        if self._thread is None or index != self._next:
            self._start(skip=index)
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._halt()
            raise item
        self._next = index + 1
        return item

    def on_epoch_end(self):
        self._halt()
        self.epoch += 1

    def set_epoch(self, epoch):
        """Shuffle for ``epoch`` from now on (a resumed fit's first epoch), dropping the
        batches read ahead for another."""
        if epoch != self.epoch:
            self._halt()
            self.epoch = epoch

    def _start(self, skip):
        self._halt()
        self._queue, self._stop = queue.Queue(self.prefetch), threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(skip,), daemon=True)
        self._thread.start()

    def _halt(self):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        self._thread, self._next = None, 0

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, skip):
        try:
            for i, batch in enumerate(self._batches()):
                if self._stop.is_set():
                    return
                if i >= skip and not self._put(batch):
                    return
        except BaseException as error:  # raised in the training thread by __getitem__
            self._put(error)

    def _batches(self):
        rng = np.random.default_rng([self.seed, self.epoch]) if self.shuffle else None
        columns = list(self.estimator._columns) + [self.target]
        buffered, held, carry = [], 0, None
        for rows, batch in self.source.batches(columns, self.read_rows, rng):
            keep = _has_target(batch, self.target)
            is_val = validation_mask(rows, self.estimator.validation_fraction, self.seed_split)
            keep &= is_val if self.part == "validation" else ~is_val
            if not keep.any():
                continue
            buffered.append((rows[keep], batch.filter(pa.array(keep))))
            held += int(keep.sum())
            if held >= self.shuffle_rows:
                carry = yield from self._emit(buffered, carry, rng, final=False)
                buffered, held = [], 0
        yield from self._emit(buffered, carry, rng, final=True)

    @property
    def seed_split(self):
        return self.estimator._stream_seed

    def _emit(self, buffered, carry, rng, final):
        # Preprocess the whole buffer at once (far faster than batch by batch), then cut it.
        arrays = carry
        if buffered:
            rows = np.concatenate([r for r, _ in buffered])
            table = pa.Table.from_batches([b for _, b in buffered])
            if rng is not None:
                order = rng.permutation(len(rows))
                rows, table = rows[order], table.take(pa.array(order))
            frame = table.to_pandas()
            inputs = self.estimator.preprocessor_.transform(frame[self.estimator._columns])
            encoded = self.estimator.target_.encode(frame[self.target])
            if self.context_rows is not None:
                order = np.argsort(self.context_rows, kind="stable")
                stored = self.context_rows[order]
                position = np.minimum(np.searchsorted(stored, rows), len(stored) - 1)
                found = stored[position] == rows
                inputs["row_index"] = np.where(found, order[position], -1).astype("int32")
            new = [inputs, encoded]
            if self.class_weights is not None:
                labels = np.asarray(encoded).reshape(len(rows), -1)[:, 0].astype(int)
                new.append(self.class_weights[labels].astype("float32"))
            elif self.multiple > 1:  # weights for the padding of the last batch
                new.append(np.ones(len(rows), dtype="float32"))
            arrays = new if carry is None else _concat(carry, new)
        if arrays is None:
            return None
        n = len(arrays[1])
        end = n if final else n - n % self.batch_size
        for start in range(0, end, self.batch_size):
            batch = [_slice(a, start, min(start + self.batch_size, end)) for a in arrays]
            yield tuple(_pad(batch, self.multiple) if final else batch)
        return None if end == n else [_slice(a, end, n) for a in arrays]


def _pad(batch, multiple):
    """``batch`` (inputs, target, weights) grown to a multiple of ``multiple`` rows with
    copies of its first row at weight 0: each device of a data-parallel fit takes an equal
    part of every batch (see ``tabattn._distribute.Feed``)."""
    from tabattn._distribute import padded_rows

    n = len(batch[1])
    padding = -n % multiple
    return list(padded_rows(*batch, np.arange(n), padding)) if padding else batch


def _slice(value, start, stop):
    if isinstance(value, dict):
        return {k: v[start:stop] for k, v in value.items()}
    return value[start:stop]


def _concat(first, second):
    return [
        {k: np.concatenate([a[k], b[k]]) for k in a} if isinstance(a, dict)
        else np.concatenate([a, b])
        for a, b in zip(first, second)
    ]


# --- the estimator's side ----------------------------------------------------------------------
class StreamSplit:
    """The training or validation part of a streamed fit, in the shape of
    ``tabattn.estimators._Split`` for the code they share: ``frame``, ``target`` and
    ``rows`` are a bounded sample (the rows TabR stores are drawn from it), ``n_rows`` the
    rows of the whole part, ``batches(batch_size, context_rows)`` its ``ParquetBatches``."""

    def __init__(self, frame, target, rows, n_rows, make_batches):
        self.frame, self.target, self.rows, self.weights = frame, target, rows, None
        self.n_rows, self.batches = n_rows, make_batches


def fit_stream(estimator, source, target, sample_weight=None, eval_set=None, *,
               sample_rows=DEFAULT_SAMPLE_ROWS, shuffle_rows=DEFAULT_SHUFFLE_ROWS,
               read_rows=DEFAULT_READ_ROWS, started=None):
    """Fit ``estimator`` (a ``TabularClassifier`` or ``TabularRegressor``) on a table read
    in batches (see the module docstring); what ``estimator.fit(source, target)`` calls.

    Args:
        source: a Parquet file, a directory of Parquet files or a ``pyarrow.dataset.Dataset``.
        target: the name (str) of the target column; every other column is a feature.
        sample_rows: at most this many training rows (a uniform sample) fit the
            preprocessing and hold TabR's stored rows. Default 100,000.
        shuffle_rows: rows shuffled together in training. Default 65,536.
        read_rows: rows per record batch read. Default 65,536.

    Returns:
        ``estimator``, fitted; ``context_rows_`` holds global row numbers.

    Raises:
        ValueError: ``target`` is not a string, or not a column; ``sample_weight`` or
            ``eval_set`` given; the files disagree on columns or types (the message names
            the file and the column); any error of an in-memory fit on the sample.
        FileNotFoundError: the path does not exist or holds no Parquet file.
    """
    import time

    from tabattn.data import TabularPreprocessor
    from tabattn.estimators import _check_target_copies, auto_model
    from tabattn.explain import BACKGROUND_ROWS
    from tabattn.targets import target_for_task

    started = time.monotonic() if started is None else started
    if not isinstance(target, str):
        raise ValueError(
            "When X is a Parquet file, a directory of Parquet files or a pyarrow Dataset, y "
            f"must be the name of the target column (a str). Received: {type(target).__name__}"
        )
    if sample_weight is not None or eval_set is not None:
        raise ValueError(
            "sample_weight and eval_set are not supported when X is read as a stream (the "
            "validation rows are chosen by a hash of the row number; see tabattn.streaming)"
        )
    source = source if isinstance(source, ParquetSource) else ParquetSource(source)
    source.require([target], "target column")
    features = [c for c in source.columns if c != target]
    if not features:
        raise ValueError("The table has no feature columns besides the target")
    seed = 0 if estimator.random_state is None else estimator.random_state
    estimator._stream_seed = seed
    task = estimator._task
    found = scan(source, features, target, task, estimator.validation_fraction, seed,
                 sample_rows, read_rows)
    estimator._stream_scan = found  # the samples, for the CLI's metrics
    estimator.feature_names_in_ = np.asarray(features, dtype=object)
    estimator.n_features_in_ = len(features)
    estimator._columns = list(features)
    sample, sample_target = found.sample[features], found.sample[target].infer_objects()
    _check_target_copies(sample, sample_target.rename(target))
    if task == "classification":
        fitted = target_for_task(task).fit(pd.Series(found.classes).infer_objects())
    else:
        fitted = target_for_task(task).fit(sample_target)  # checks values
        fitted.mean_, fitted.std_ = float(found.mean), float(found.std) or 1.0
    estimator._load_target(fitted.to_dict())
    estimator.background_ = sample.sample(
        min(BACKGROUND_ROWS, len(sample)), random_state=seed
    ).reset_index(drop=True)
    estimator.preprocessor_ = TabularPreprocessor(
        categorical=estimator.categorical, numeric=estimator.numeric, random_state=seed,
    ).fit(sample)
    class_weights = _class_weights(estimator, found)

    made = []  # stopped when training ends, also when it stopped in the middle of a pass

    def make_batches(part, n_rows):
        def batches(batch_size, context_rows=None, multiple=1):
            made.append(ParquetBatches(
                estimator, source, target, part, n_rows, batch_size, seed,
                shuffle=part == "train", shuffle_rows=shuffle_rows, read_rows=read_rows,
                context_rows=context_rows, class_weights=class_weights, multiple=multiple,
            ))
            return made[-1]
        return batches

    train = StreamSplit(sample, sample_target, found.sample_rows, found.n_train,
                        make_batches("train", found.n_train))
    validation = StreamSplit(
        found.validation[features], found.validation[target].infer_objects(),
        found.validation_rows, found.n_validation, make_batches("validation", found.n_validation),
    )
    inputs_train = estimator.preprocessor_.transform(sample)
    train.encoded = estimator.target_.encode(sample_target)
    inputs_val = estimator.preprocessor_.transform(validation.frame)
    validation.encoded = estimator.target_.encode(validation.target)
    estimator.model_name_ = (
        auto_model(found.n_train) if estimator.model == "auto" else estimator.model
    )
    config = estimator._model_config(inputs_train, train.encoded)
    try:
        estimator._train_ensemble(config, inputs_train, train, inputs_val, validation, started)
    finally:
        for batches in made:
            batches._halt()
    estimator._keep_importance_rows(inputs_val, validation)
    return estimator


def _class_weights(estimator, found):
    """float64 ``(n_classes,)``: each encoded class's loss weight, or ``None``."""
    class_weight = getattr(estimator, "class_weight", None)
    if class_weight is None:
        return None
    classes = estimator.classes_.tolist()
    counts = np.asarray([found.class_counts.get(c, 0) for c in classes], dtype="float64")
    if class_weight == "balanced":
        present = counts > 0
        weights = np.ones(len(classes))
        weights[present] = counts.sum() / (present.sum() * counts[present])
        return weights
    unknown = [c for c in class_weight if c not in classes]
    if unknown:
        raise ValueError(
            f"`class_weight` names classes that are not in the target: {unknown}. "
            f"Classes: {classes}"
        )
    return np.asarray([float(class_weight.get(c, 1.0)) for c in classes])


def fit_arguments(train, validation, batch_size, context_rows, feed=None):
    """``keras.Model.fit``'s data arguments for a streamed fit: the two ``ParquetBatches``
    (``context_rows``: global row numbers of TabR's stored rows in context order, or
    ``None``; ``feed``: the ``tabattn._distribute.Feed`` of a data-parallel fit, or
    ``None``)."""
    train_multiple = validation_multiple = 1
    if feed is not None:
        train_multiple = feed.padded_batches(train.n_rows, "loss")
        validation_multiple = feed.padded_batches(validation.n_rows, "val_loss")
    return dict(
        x=train.batches(batch_size, context_rows, train_multiple),
        validation_data=validation.batches(batch_size, multiple=validation_multiple),
        shuffle=False,
    )


def predict_outputs(estimator, source, read_rows=DEFAULT_READ_ROWS, batch_size=4096):
    """Each member model's outputs for the rows of ``source`` (a Parquet file, directory or
    ``pyarrow.dataset.Dataset``), read ``read_rows`` at a time: a list of float64
    ``(n_rows, d_out)`` arrays, rows in global row order.

    Raises:
        ValueError: a column the model was trained on is not in the table; the files disagree
            on columns or types.
    """
    from tabattn._distribute import predict_rows

    outputs = [[] for _ in estimator.models_]
    for frame in iter_frames(estimator, source, read_rows):
        inputs = estimator.preprocessor_.transform(frame)
        for member, model in enumerate(estimator.models_):
            outputs[member].append(
                np.asarray(predict_rows(model, inputs, batch_size), "float64")
            )
    return [np.concatenate(parts) for parts in outputs]


def iter_frames(estimator, source, read_rows=DEFAULT_READ_ROWS):
    """The model's columns of ``source``, as pandas DataFrames of at most ``read_rows``
    rows, in row order (other columns are not read)."""
    source = source if isinstance(source, ParquetSource) else ParquetSource(source)
    source.require(estimator._columns, "feature column the model was trained on,")
    for _, batch in source.batches(estimator._columns, read_rows):
        yield batch.to_pandas()


def write_predictions(estimator, source, output, staging=None, read_rows=DEFAULT_READ_ROWS):
    """Predict the rows of ``source`` batch by batch and write them to ``output`` (``.csv``
    or ``.parquet``/``.pq``; another name: CSV): a column ``prediction`` and, for a
    classifier, ``proba_<class>`` per class. The file is written under the temporary name
    ``staging`` (default: a hidden name in the same folder) and renamed at the end: an
    interrupted run leaves no partial ``output``.

    Returns:
        The number of rows written.
    """
    from tabattn.estimators import TabularClassifier

    folder = os.path.dirname(os.path.abspath(output))
    staging = staging or os.path.join(
        folder, f".{os.path.basename(output)}.{os.getpid()}.partial"
    )
    parquet = output.lower().endswith(PARQUET_SUFFIXES)
    writer, written = None, 0
    try:
        for frame in iter_frames(estimator, source, read_rows):
            if isinstance(estimator, TabularClassifier):
                proba = estimator.predict_proba(frame)
                result = pd.DataFrame(
                    {"prediction": estimator.classes_[np.argmax(proba, axis=1)]}
                )
                for j, label in enumerate(estimator.classes_):
                    result[f"proba_{label}"] = proba[:, j]
            else:
                result = pd.DataFrame({"prediction": estimator.predict(frame)})
            if parquet:
                table = pa.Table.from_pandas(result, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(staging, table.schema)
                writer.write_table(table)
            else:
                result.to_csv(staging, mode="w" if written == 0 else "a", header=written == 0,
                              index=False)
            written += len(result)
        if writer is not None:
            writer.close()
            writer = None
        os.replace(staging, output)
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(staging):
            os.remove(staging)
    return written


def evaluate_stream(estimator, source, target, read_rows=DEFAULT_READ_ROWS):
    """``tabattn.estimators.evaluation_metrics`` of ``estimator`` on the rows of ``source``
    (a ``ParquetSource``, file, directory or Dataset) with a ``target`` value, predicted in
    batches. Holds the targets and predictions of all those rows (one value per row and
    class), not their features.

    Raises:
        ValueError: ``target`` or a feature column is not in the table; no row has a target.
    """
    from tabattn.estimators import TabularClassifier

    source = source if isinstance(source, ParquetSource) else ParquetSource(source)
    source.require([target], "target column")
    source.require(estimator._columns, "feature column the model was trained on,")
    truths, outputs = [], []
    for _, batch in source.batches(list(estimator._columns) + [target], read_rows):
        batch = batch.filter(pa.array(_has_target(batch, target)))
        if batch.num_rows == 0:
            continue
        frame = batch.to_pandas()
        truths.append(frame[target].to_numpy())
        features = frame[estimator._columns]
        outputs.append(estimator.predict_proba(features) if isinstance(
            estimator, TabularClassifier) else estimator.predict(features))
    if not truths:
        raise ValueError(f"No row of {source.name} has a value in target column {target!r}")
    truth = pd.Series(np.concatenate(truths)).infer_objects()
    return estimator.target_.evaluate(truth, np.concatenate(outputs))


def test_mask(rows, fraction, seed):
    """bool ``(n,)``: the global ``rows`` that ``tabattn fit`` holds out for testing when
    it reads its input as a stream (a hash of the row number and ``--seed``, like
    ``validation_mask`` with another salt)."""
    return row_uniform(rows, seed, TEST_SALT) < fraction
