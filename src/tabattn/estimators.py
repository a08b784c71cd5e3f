"""scikit-learn estimators over tabattn models: ``TabularClassifier``, ``TabularRegressor``.

Needs the ``cli`` extra (pandas, scikit-learn). Modelled on scikit-learn's conventions and on
Keras's own scikit-learn wrappers: ``__init__`` stores its arguments; ``fit`` validates,
preprocesses (``tabattn.data.TabularPreprocessor``), trains with early stopping and returns
``self``; fitted attributes end in ``_``.
"""

import contextlib
import json
import math
import numbers
import os
import re
import shutil
import statistics
import sys
import time
import warnings

import keras
import numpy as np

try:
    import narwhals as nw
    import pandas as pd
    from narwhals.dependencies import is_into_dataframe, is_into_series
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import log_loss as sk_log_loss
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import train_test_split
    from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
    from sklearn.utils.class_weight import compute_class_weight
    from sklearn.utils.validation import (
        _check_sample_weight,
        check_array,
        check_is_fitted,
        column_or_1d,
        validate_data,
    )
except ImportError as error:  # pragma: no cover
    raise ImportError(
        "tabattn's estimators need pandas and scikit-learn. "
        "Install them with: pip install 'tabattn[cli]'"
    ) from error

from tabattn import _distribute, streaming
from tabattn.data import TabularPreprocessor, _category_key, target_mask
from tabattn.explain import BACKGROUND_ROWS
from tabattn.explain import explain as _explain
from tabattn.layers import _checks
from tabattn.layers.embeddings import compute_bins
from tabattn.models import FTTransformer, ModernNCA, TabM, TabR
from tabattn.targets import (  # noqa: F401  (also this module's public names, as before)
    classification_metrics,
    probabilities_from_logits,
    regression_metrics,
    target_for_task,
)

MODEL_FILE = "model.keras"
PREPROCESSING_FILE = "preprocessing.json"
ESTIMATOR_FILE = "estimator.json"
_MODELS = {"ft_transformer": FTTransformer, "modernnca": ModernNCA, "tabm": TabM, "tabr": TabR}
# The models that predict from stored training rows (``set_context``).
_RETRIEVAL_MODELS = (ModernNCA, TabR)
# The estimator's changes to a model's paper defaults. TabR: TabR-S's retrieval cost grows
# with num_neighbors * d_main**2 per row, and the paper's search encodes every stored row at
# every step, so an epoch's cost grows with the square of the table. Here each step
# re-encodes 512 stored rows in turn and searches at most 16,384 stored rows (a sample of
# larger tables) for 8 neighbours, with d_main=128: an epoch's cost grows linearly with rows
# (BENCHMARKS.md, "Cost against rows"). The neighbours are re-encoded with gradients, so
# their number sets most of a step's cost: 8 instead of 16 took 40% off an Adult epoch; 512
# rows refreshed a step instead of 2,048 took 30% off a covertype epoch. Periodic numeric
# embeddings (PLR lite, as the paper's tuned TabR) lifted Adult, California and diamonds.
ESTIMATOR_MODEL_PARAMS = {
    "ft_transformer": {},
    # ModernNCA encodes its sampled candidates, with gradients, at every step: the paper's half
    # of the stored rows makes an epoch's cost grow with the square of the table (Adult: 15.6
    # s an epoch for 13,024 candidates, 5.7 s for 4,096). Validation and prediction read
    # every stored row: at most 16,384 of them, as TabR.
    "modernnca": {"max_candidates": 4096, "max_context_rows": 16384},
    "tabm": {},
    "tabr": {"d_main": 128, "num_neighbors": 8, "numeric_embedding": "periodic",
             "context_refresh": "rolling", "refresh_rows": 512, "max_context_rows": 16384},
}
# ... and to its training: TabR takes a larger step than the paper's 3.1e-4, annealed to
# zero along a cosine over a fixed number of epochs (Loshchilov & Hutter, "SGDR", ICLR 2017,
# without restarts), so that a fit's cost is known in advance: on California (seed 0) 30
# annealed epochs at 2e-3 reached the test RMSE (0.404) of 68 epochs at a constant 1e-3 with
# early stopping (0.403). Validating and keeping an exponential moving average of the
# weights helped (California, seed 0, 300 s on one core: RMSE 0.397 against 0.414 without);
# its momentum is capped so that it averages over about one epoch (see ``fit``).
ESTIMATOR_OPTIMIZER_PARAMS = {
    "ft_transformer": {},
    "modernnca": {},
    "tabm": {},
    "tabr": {"learning_rate": 2e-3, "use_ema": True, "ema_momentum": 0.99},
}
# epochs="auto" and learning_rate_schedule="auto", per model: TabM and the FT-Transformer as
# in their papers (a constant learning rate until early stopping); TabR as above, for 30
# epochs on classification and 40 on regression. A classifier's validation loss was lowest
# well before the last of 30 annealed epochs (best epochs 17 to 25 on Adult and covertype,
# 5 seeds each), a regressor's at the end (24 to 30 on California housing and diamonds),
# where 10 more annealed epochs still lowered the test RMSE (California, 5 seeds: 0.4072
# against 0.4115).
AUTO_EPOCHS = {"ft_transformer": 1000, "modernnca": 1000, "tabm": 1000, "tabr": 30}
AUTO_EPOCHS_REGRESSION = {**AUTO_EPOCHS, "tabr": 40}
AUTO_SCHEDULE = {
    "ft_transformer": "constant", "modernnca": "constant", "tabm": "constant", "tabr": "cosine",
}
# model="auto" (BENCHMARKS.md, "Default model"): TabM on training splits of at most this many
# rows, where an ensemble's lower variance matters most and TabM's 32 members cost little
# (credit_g and penguins: more accurate than five TabR models averaged, in a third to half
# of their time); TabR above, where the nearest training rows carry the signal (California
# housing, seed 0: RMSE 0.385 against 0.432 for TabM with k=32 and d_block=256) and TabM's
# cost per row (32 MLPs) dominates: at the estimators' sizes TabR trains about 7x the rows
# per second of TabM (BENCHMARKS.md, "Models").
AUTO_TABM_MAX_ROWS = 2000
# The models train in float32. Under mixed_bfloat16 one row predicted slower (TabR 1.27
# against 0.76 ms, BENCHMARKS.md "Models"); training steps gained where the CPU has bfloat16
# units (TabR 8,187 against 7,217 rows per second on an Intel Xeon with AMX), lost on a CPU
# without them (an AMD EPYC), and whole fits on that Xeon were barely faster and no more
# accurate (California housing, 2 seeds: mean RMSE 0.412 against 0.409 in float32;
# diamonds: 541.8 against 535.5).
# Validation rows that feature_importances_ are computed on.
IMPORTANCE_ROWS = 2048


def auto_model(n_train_rows):
    """The model ``model="auto"`` trains on a training split of ``n_train_rows`` rows."""
    return "tabm" if n_train_rows <= AUTO_TABM_MAX_ROWS else "tabr"


def auto_batch_size(n_rows):
    """``batch_size="auto"``: 256 rows, or fewer on small tables so that an epoch has at
    least about 16 steps (a power of two, at least 32): on a table of a few hundred rows,
    batches of 256 would give one update per epoch, and the fit would spend its time in
    per-epoch validation rather than learning."""
    return int(min(256, max(32, 2 ** int(np.log2(max(n_rows, 1) / 16)))))


def _member_file(member):
    # model.keras, then model_1.keras, model_2.keras, ... for the other members of an ensemble
    return MODEL_FILE if member == 0 else MODEL_FILE.replace(".keras", f"_{member}.keras")


def _set_random_seed(seed):
    """``keras.utils.set_random_seed(seed)``, without importing TensorFlow on the other
    backends: Keras seeds TensorFlow whenever it is installed, for ``tf.data`` pipelines,
    which no fit here uses on JAX or PyTorch, and the import alone adds about 400 MiB of
    resident memory to the process."""
    from keras.src.utils import module_utils

    lazy = module_utils.tensorflow
    if (keras.backend.backend() == "tensorflow" or lazy._available is not None
            or "tensorflow" in sys.modules):
        keras.utils.set_random_seed(seed)
        return
    lazy._available = False  # as if not installed, for this call only
    try:
        keras.utils.set_random_seed(seed)
    finally:
        lazy._available = None


class _EpochSeed(keras.callbacks.Callback):
    """Seed every epoch from ``(seed, epoch)``: an epoch's shuffling then does not depend on
    the epochs before it in this process, so a fit resumed from a backup repeats it."""

    def __init__(self, seed):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        _set_random_seed((self.seed * 100_003 + epoch) % 2**32)


class _ShuffledBatches(keras.utils.PyDataset):
    """The training rows in batches, in an order drawn for each epoch from ``(seed,
    epoch)`` (``_EpochShuffle`` sets the epoch): the same order on every backend, and a fit
    resumed from a backup at some epoch shuffles as the uninterrupted fit did (Keras's own
    shuffling on TensorFlow draws from a stream that a new process starts again).

    Every batch has ``batch_size`` rows: the last is filled up with the epoch's first rows
    (as PyTorch's ``DistributedSampler`` pads), so that a compiled training step sees one
    shape (on JAX, a second compilation cost about 2 s of each fit)."""

    def __init__(self, inputs, targets, weights, batch_size, seed):
        super().__init__()
        self.inputs, self.targets, self.weights = inputs, targets, weights
        self.batch_size, self.seed = batch_size, seed
        self.set_epoch(0)

    def set_epoch(self, epoch):
        self.order = np.random.default_rng([self.seed, epoch]).permutation(len(self.targets))

    def __len__(self):
        return -(-len(self.targets) // self.batch_size)

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        if len(rows) < self.batch_size <= len(self.order):
            rows = np.concatenate([rows, self.order[: self.batch_size - len(rows)]])
        batch = ({k: v[rows] for k, v in self.inputs.items()}, self.targets[rows])
        return batch if self.weights is None else (*batch, self.weights[rows])


class _EpochShuffle(keras.callbacks.Callback):
    """Tell the training batches (``_ShuffledBatches``, ``streaming.ParquetBatches``) the
    epoch that begins, also the first one of a resumed fit."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)


class _TrainingBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that also keeps what ``fit`` needs to go on exactly as it would
    have: the epochs' logs, early stopping's state and best weights, and whether the moving
    average is in the model. Last in the callback list, so that it saves each epoch once the
    other callbacks have acted on it."""

    def __init__(self, backup_dir, early_stopping, swap_ema=None):
        super().__init__(backup_dir, delete_checkpoint=False)
        self.early_stopping, self.swap_ema = early_stopping, swap_ema
        self.logs = []
        self._state_path = os.path.join(backup_dir, "fit_state.json")
        self._best_path = os.path.join(backup_dir, "best.npz")
        self._seeds_path = os.path.join(backup_dir, "seeds.npz")

    def _seed_states(self):
        # Dropout's random-seed states: model variables that save_weights leaves out.
        saved = {id(v) for v in self.model.weights}
        return [v for v in self.model.variables if id(v) not in saved]

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append({k: float(v) for k, v in (logs or {}).items()})
        super().on_epoch_end(epoch, logs)

    def _save_model(self):
        super()._save_model()
        stopping = self.early_stopping
        state = {
            "epoch": self._current_epoch, "logs": self.logs, "wait": stopping.wait, "best": float(stopping.best),
            "best_epoch": stopping.best_epoch,
            "ema_in_model": bool(self.swap_ema and self.swap_ema._ema_weights_in_model),
        }
        if stopping.best_weights is not None:
            np.savez(self._best_path, *stopping.best_weights)
        np.savez(self._seeds_path, *[keras.ops.convert_to_numpy(v) for v in self._seed_states()])
        _write_json_atomically(self._state_path, state)

    def _load_model(self):
        super()._load_model()
        if not os.path.exists(self._state_path):
            return
        with open(self._state_path, encoding="utf-8") as file:
            state = json.load(file)
        if state["epoch"] != self.model._initial_epoch:
            raise ValueError(
                f"The training backup in {self.backup_dir!r} is incomplete (interrupted while "
                "it was written); remove the folder to train from the start"
            )
        self.logs = state["logs"]
        stopping = self.early_stopping
        stopping.wait, stopping.best = state["wait"], state["best"]
        stopping.best_epoch = state["best_epoch"]
        if os.path.exists(self._best_path):
            with np.load(self._best_path) as arrays:
                stopping.best_weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
        if self.swap_ema is not None:
            self.swap_ema._ema_weights_in_model = state["ema_in_model"]
        with np.load(self._seeds_path) as arrays:
            for i, variable in enumerate(self._seed_states()):
                variable.assign(arrays[f"arr_{i}"])


def _write_json_atomically(path, value):
    staging = f"{path}.tmp"
    with open(staging, "w", encoding="utf-8") as file:
        json.dump(value, file)
    os.replace(staging, path)


class _TimeLimit(keras.callbacks.Callback):
    """Stop training before an epoch that would end past ``seconds`` after training began.

    The next epoch is assumed to take as long as the longest epoch so far after the first
    (which includes compilation).
    """

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()
        self.durations = []
        self.stopped = False

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        self.durations.append(now - self.epoch_start)
        if epoch + 1 >= self.params.get("epochs", math.inf):
            return  # the last epoch: the number of epochs ended training, not the limit
        next_epoch = max(self.durations[1:] or self.durations)
        if _distribute.agreed(now - self.start + next_epoch > self.seconds):
            self.model.stop_training = True
            self.stopped = True


class _CosineDecay(keras.callbacks.Callback):
    """Set the learning rate before each epoch ``e`` to ``initial * (1 + cos(pi * e / H)) / 2``,
    where ``H`` is ``epochs``, or under a time limit the epochs that it leaves room for,
    whichever is fewer: the rate reaches about zero by the last epoch either way. Without a
    time limit it depends only on ``e``, so a fit resumed from a backup goes on as it would
    have.

    The room is counted in epochs of the median duration so far after the first, which
    includes compilation and is not counted: a limit that does not bind leaves the rates as
    they are without it. ``_TimeLimit`` stops on the longest epoch instead, which is right for
    not overrunning but, after one slow epoch, would anneal the rate to zero long before the
    last epoch and train the rest at about zero.
    """

    def __init__(self, initial, epochs, time_limit=None):
        super().__init__()
        self.initial, self.epochs, self.time_limit = float(initial), epochs, time_limit

    def on_epoch_begin(self, epoch, logs=None):
        horizon = self.epochs
        limit = self.time_limit
        if limit is not None and len(limit.durations) > 1:
            left = limit.seconds - (time.monotonic() - limit.start)
            per_epoch = statistics.median(limit.durations[1:])
            horizon = min(horizon, epoch + max(int(left // per_epoch), 1))
            # The same rate on every process of a distributed fit, each timing its own epochs.
            horizon = _distribute.smallest(horizon)
        progress = min(epoch, horizon - 1) / horizon
        rate = self.initial * 0.5 * (1 + math.cos(math.pi * progress))
        self.model.optimizer.learning_rate = rate


def _piecewise_bins(bins, n_bins, inputs, targets, regression):
    """Bin edges for ``numeric_embedding="piecewise"`` from the (preprocessed) training rows.

    ``bins``: ``None``/``"quantile"`` (training quantiles) or ``"tree"`` (decision-tree splits
    on the target, Gorishniy et al. 2022), or explicit edges (returned as they are). A
    constant column gets one bin around its value.
    """
    if bins is not None and not isinstance(bins, str):
        return bins
    _checks.one_of("model_params['bins']", bins, (None, "quantile", "tree"))
    numeric = inputs.get("numeric")
    if numeric is None:
        raise ValueError('numeric_embedding="piecewise" needs numeric columns; there are none')
    edges = [None] * numeric.shape[1]
    varying = [j for j in range(numeric.shape[1]) if np.ptp(numeric[:, j]) > 0]
    for j in set(range(numeric.shape[1])) - set(varying):
        edges[j] = np.array([numeric[0, j] - 0.5, numeric[0, j] + 0.5])
    if varying:
        y = np.asarray(targets).ravel() if bins == "tree" else None
        found = compute_bins(
            numeric[:, varying], n_bins=n_bins, y=y,
            regression=regression if y is not None else None,
        )
        for j, e in zip(varying, found):
            edges[j] = e
    return [[float(v) for v in e] for e in edges]


def _as_frame(X):
    """``X`` as a pandas DataFrame, checked for what no model can use.

    DataFrames of any library narwhals reads (pandas, polars, PyArrow, ...) keep their columns
    and dtypes. Other 2-D array-likes go through scikit-learn's ``check_array`` (rank, sparse,
    complex and empty input); their object columns whose values are all numbers become numeric
    (``DataFrame.infer_objects``), so ``df.values`` of a frame with one string column keeps
    its numeric columns numeric.
    """
    if isinstance(X, pd.DataFrame):
        frame = X
    elif is_into_dataframe(X):
        frame = nw.from_native(X, eager_only=True).to_pandas()
    else:
        # Lists become object arrays, so that numbers in a row beside strings stay numbers.
        array = X if hasattr(X, "dtype") or hasattr(X, "toarray") else np.asarray(X, dtype=object)
        array = check_array(array, dtype=None, ensure_all_finite=False, input_name="X")
        frame = pd.DataFrame(array).infer_objects()
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(
            f"Found array with {frame.shape[0]} sample(s) and {frame.shape[1]} feature(s) "
            f"(shape={frame.shape}) while a minimum of 1 of each is required"
        )
    duplicated = frame.columns[frame.columns.duplicated()].unique().tolist()
    if duplicated:
        raise ValueError(
            f"X has more than one column named {duplicated}: give every column its own name"
        )
    return frame


def _as_target(y, n_rows):
    """``y`` as a pandas Series (its name kept where it has one), one value per row of X."""
    if is_into_series(y):
        series = nw.from_native(y, series_only=True).to_pandas()
    elif is_into_dataframe(y):
        frame = nw.from_native(y, eager_only=True).to_pandas()
        if frame.shape[1] != 1:
            raise ValueError(
                f"y must be one column; received a table of {frame.shape[1]} columns "
                "(several targets at once are not supported)"
            )
        series = pd.Series(column_or_1d(frame.to_numpy(), warn=True), name=frame.columns[0])
    else:
        # A list becomes an object array: np.asarray would turn ["a", nan] into ["a", "nan"].
        array = y if hasattr(y, "dtype") else np.asarray(y, dtype=object)
        series = pd.Series(column_or_1d(array, warn=True))
    if len(series) != n_rows:
        raise ValueError(
            f"X and y have different numbers of rows: X has {n_rows}, y has {len(series)}"
        )
    # Object values that are all numbers (e.g. ``y.astype(object)``) as numbers.
    return series.reset_index(drop=True).infer_objects()


# A column equal to the target on this many rows or more is taken for a copy of it; on fewer,
# a flag column may match a two-class target by chance.
_TARGET_COPY_MIN_ROWS = 20


def _check_target_copies(frame, target):
    """Refuse feature columns that are the target again: named as a second copy of it (a CSV
    header naming the target twice reads as ``y`` and ``y.1``) or equal to it on every row."""
    if target.name is not None:
        # Only the duplicate-header form: a Series derived from a column keeps its name.
        pattern = re.escape(str(target.name)) + r"\.\d+"
        copies = [c for c in frame.columns if re.fullmatch(pattern, c)]
        if copies:
            raise ValueError(
                f"Feature column(s) {copies} are named like a second copy of the target "
                f"{target.name!r} (as pandas names a repeated CSV header): a copy of the "
                "target would be learned as a feature. Drop them from X."
            )
    if len(target) < _TARGET_COPY_MIN_ROWS:
        return
    keys = target.map(_category_key)
    head = min(len(target), 1000)  # a cheap first look, then the whole column
    for column in frame.columns:
        values = frame[column]
        if values.isna().any() or not values.iloc[:head].map(_category_key).equals(keys[:head]):
            continue
        if values.map(_category_key).equals(keys):
            raise ValueError(
                f"Feature column {column!r} equals the target on every row: a copy of the "
                "target would be learned as a feature. Drop it from X."
            )


class _Split:
    """One part of the fitting data: features, target, sample weights (or ``None``) and the
    positions of its rows in the ``X`` given to ``fit`` (or ``None``)."""

    def __init__(self, frame, target, weights=None, rows=None):
        self.frame, self.target, self.weights, self.rows = frame, target, weights, rows


class _TabularEstimator(BaseEstimator):
    _task = None
    _parameter_constraints = {
        "model": [StrOptions({"auto", "tabm", "tabr", "modernnca", "ft_transformer"})],
        "model_params": [dict, None],
        "epochs": [Interval(numbers.Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "learning_rate_schedule": [StrOptions({"auto", "constant", "cosine"})],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left"), None],
        "patience": [Interval(numbers.Integral, 0, None, closed="left")],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "categorical": ["array-like", str, None],
        "numeric": ["array-like", str, None],
        "time_limit": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "random_state": [Interval(numbers.Integral, 0, 2**32 - 1, closed="both"), None],
        "verbose": [Interval(numbers.Integral, 0, 2, closed="both")],
        "ensemble_size": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "callbacks": [list, None],
        "backup_dir": [str, os.PathLike, None],
        "distribution": [StrOptions(set(_distribute.CHOICES)),
                         HasMethods(["scope", "get_data_layout"]), None],
    }

    def __init__(
        self,
        model="auto",
        model_params=None,
        epochs="auto",
        batch_size="auto",
        learning_rate=None,
        learning_rate_schedule="auto",
        weight_decay=None,
        patience=16,
        validation_fraction=0.2,
        categorical=None,
        numeric=None,
        time_limit=None,
        random_state=None,
        verbose=1,
        ensemble_size=None,
        callbacks=None,
        backup_dir=None,
        distribution=None,
    ):
        self.model = model
        self.model_params = model_params
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.categorical = categorical
        self.numeric = numeric
        self.time_limit = time_limit
        self.random_state = random_state
        self.verbose = verbose
        self.ensemble_size = ensemble_size
        self.callbacks = callbacks
        self.backup_dir = backup_dir
        self.distribution = distribution

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Missing values are imputed (numeric) or a category of their own; strings and
        # categories are categorical columns.
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        return tags

    # --- fitting ---------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, eval_set=None):
        """Train on ``X``, ``y`` with early stopping on a validation set.

        Args:
            X: a DataFrame (pandas, polars, PyArrow or any other that narwhals reads; string
                column names become ``feature_names_in_``) or a 2-D array-like. Or, for
                tables larger than memory, a Parquet file path, a directory of Parquet files
                or a ``pyarrow.dataset.Dataset``, read in batches (``tabattn.streaming``:
                preprocessing fitted on a uniform sample of at most 100,000 training rows,
                categories absent from it treated as unseen; validation rows chosen by a
                hash of the row number); ``y`` is then the target column's name.
            y: target, array-like or Series of length ``n_samples``; a column name (str)
                when ``X`` is read as a stream. Rows whose target is missing are dropped
                with a warning.
            sample_weight: optional non-negative weight per row, ``(n_samples,)``: each
                row's loss is multiplied by it, in training and (on the split-off rows) in
                validation. With ``class_weight`` the two multiply.
            eval_set: optional ``(X_val, y_val)`` for early stopping. Without it a stratified
                (classification) ``validation_fraction`` of the rows is split off.

        Returns:
            ``self``.

        Raises:
            sklearn.utils._param_validation.InvalidParameterError (a ``ValueError``): an
                argument of ``__init__`` out of its range or of the wrong type.
            TypeError: sparse ``X``; column names mixing strings and other types.
            ValueError: ``X`` not 2-D or empty; duplicate column names; ``y`` ``None``,
                of another length, or with fewer than 2 rows with a value; a feature column
                that copies the target; a classification target with one class or with
                continuous values; a regression target with non-numeric or infinite values;
                negative sample weights; ``distribution="data-parallel"`` (or a
                ``Distribution``) off JAX, or a ``batch_size`` that does not split evenly over
                its devices, or over several processes with a Parquet ``X``; and any error
                of ``tabattn.data.TabularPreprocessor``.
        """
        started = time.monotonic()
        self._distribution = distribution = _distribute.resolve(self.distribution)
        multi_process = _distribute.is_multi_process(distribution)
        if multi_process and streaming.is_stream_source(X):
            raise ValueError(
                "A distribution over several processes is not supported with a table read in "
                "batches (a Parquet path or dataset) yet: give each process its share in "
                "memory, or train in one process (on its local devices)"
            )
        if multi_process and y is not None:
            # Each process passed its share: all fit the preprocessing on the whole table.
            _distribute.check_multi_process(self.random_state, self.backup_dir)
            X, y, sample_weight, eval_set = _distribute.gather_shares(
                X, y, sample_weight, eval_set
            )
        if self.random_state is not None:
            _set_random_seed(self.random_state)
        if streaming.is_stream_source(X):  # larger than memory: read in batches
            with (contextlib.nullcontext() if distribution is None
                  else _distribute.active(distribution)):
                return streaming.fit_stream(self, X, y, sample_weight, eval_set,
                                            started=started)
        train, validation = self._fit_data(X, y, sample_weight, eval_set)
        self.background_ = train.frame.sample(
            min(BACKGROUND_ROWS, len(train.frame)), random_state=self.random_state or 0
        ).reset_index(drop=True)
        self.preprocessor_ = TabularPreprocessor(
            categorical=self.categorical, numeric=self.numeric,
            random_state=0 if self.random_state is None else self.random_state,
        ).fit(train.frame)
        inputs_train = self.preprocessor_.transform(train.frame)
        inputs_val = self.preprocessor_.transform(validation.frame)
        train.encoded = self._encode_target(train.target)
        validation.encoded = self._encode_target(validation.target)
        self.model_name_ = (
            auto_model(len(train.target)) if self.model == "auto" else self.model
        )
        config = self._model_config(inputs_train, train.encoded)
        with (contextlib.nullcontext() if distribution is None
              else _distribute.active(distribution)):
            self._train_ensemble(config, inputs_train, train, inputs_val, validation, started)
        if multi_process:  # each process predicts its own rows on its own device
            self.models_ = [_distribute.localized(model) for model in self.models_]
            self.model_ = self.models_[0]
        self._keep_importance_rows(inputs_val, validation)
        return self

    def _fit_data(self, X, y, sample_weight, eval_set):
        """Checked training and validation rows (``_Split`` each); fits the target."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        frame = self._check_X(X, reset=True)
        target = _as_target(y, len(frame))
        weights = None
        if sample_weight is not None:
            weights = _check_sample_weight(sample_weight, frame, ensure_non_negative=True)
        keep = target_mask(target)
        rows = np.flatnonzero(keep.to_numpy())
        frame = frame.loc[keep].reset_index(drop=True)
        # Without its missing values a target may be of one type (e.g. bools) again.
        target = target[keep].reset_index(drop=True).infer_objects()
        weights = None if weights is None else weights[keep.to_numpy()]
        if len(target) < 2:
            raise ValueError(
                f"Found {len(target)} sample(s) with a target value; fit needs at least 2 "
                "(rows to train on and rows to validate on)"
            )
        _check_target_copies(frame, target)
        self._fit_target(target)
        if eval_set is not None:
            X_val, y_val = eval_set
            frame_val = self._check_X(X_val, reset=False)
            target_val = _as_target(y_val, len(frame_val))
            keep_val = target_mask(target_val)
            return _Split(frame, target, weights, rows), _Split(
                frame_val.loc[keep_val].reset_index(drop=True),
                target_val[keep_val].reset_index(drop=True).infer_objects(),
            )
        parts = train_test_split(
            *(a for a in (frame, target, weights) if a is not None),
            test_size=self.validation_fraction, random_state=self.random_state,
            stratify=self._stratify(target),
        )
        # The split keeps the frame's index: positions among the rows with a target.
        if weights is None:
            train, validation = _Split(parts[0], parts[2]), _Split(parts[1], parts[3])
        else:
            train = _Split(parts[0], parts[2], parts[4])
            validation = _Split(parts[1], parts[3], parts[5])
        train.rows = rows[train.frame.index.to_numpy()]
        return train, validation

    def _stratify(self, target):
        return None

    def _fit_target(self, target):
        self.target_ = target_for_task(self._task).fit(target)

    def _encode_target(self, target):
        return self.target_.encode(target)

    def _check_X(self, X, reset):
        """``X`` as a pandas DataFrame with the fitted column names (``_columns``).

        Column names and their number are checked as scikit-learn does (``validate_data``):
        a frame whose string column names differ from ``fit``'s is an error; without string
        names (arrays, frames with integer names) the columns are ``x0``, ``x1``, ...
        """
        frame = _as_frame(X)
        validate_data(self, frame, skip_check_array=True, reset=reset)
        if reset:
            self._columns = (
                [str(c) for c in self.feature_names_in_] if hasattr(self, "feature_names_in_")
                else [f"x{i}" for i in range(frame.shape[1])]
            )
        return frame.set_axis(self._columns, axis=1).reset_index(drop=True)

    def _model_config(self, inputs_train, targets_train):
        """The model's ``default_config()``, then the estimator's changes, then the user's."""
        model_class = _MODELS[self.model_name_]
        config = {
            **model_class.default_config(),
            **ESTIMATOR_MODEL_PARAMS[self.model_name_],
            **(self.model_params or {}),
        }
        if model_class in (ModernNCA, TabM, TabR):
            config["num_classes"] = self.target_.num_classes
        n_bins = config.pop("n_bins", 48)
        if config.get("numeric_embedding") == "piecewise":
            # Without numeric columns there is nothing to bin (and no embedding is built).
            config["bins"] = _piecewise_bins(
                config.get("bins"), n_bins, inputs_train, targets_train,
                self._task == "regression",
            ) if self.preprocessor_.n_numeric_tokens else None
        return config

    def _train_ensemble(self, config, inputs_train, train, inputs_val, validation, started):
        """Train ``models_`` (one per ensemble member) within ``time_limit``."""
        model_class = _MODELS[self.model_name_]
        size = self._ensemble_size(len(train.target))
        self.context_rows_ = None
        if model_class in _RETRIEVAL_MODELS:
            # The training rows TabR and ModernNCA store (as ``set_context`` draws them), by their
            # position in the X given to fit: what ``explain`` reports as neighbours.
            kept = model_class.context_sample(
                len(train.target), config.get("max_context_rows"), self.random_state
            )
            self.context_rows_ = train.rows[kept]
        self.models_, self.histories_, self.stop_reasons_ = [], [], []
        for member in range(size):
            seconds = None
            if self.time_limit:
                # Each member gets an equal share of the time that is left; one whose share
                # would not cover an epoch of the first (compilation included) is not trained.
                seconds = (self.time_limit - (time.monotonic() - started)) / (size - member)
                if member and _distribute.agreed(seconds < first_epoch_seconds):
                    break
            if member and self.random_state is not None:
                _set_random_seed((self.random_state + member) % 2**32)
            member_started = time.monotonic()
            trained = self._trained_member(member)
            if trained is not None:
                self.stop_reasons_.append("resumed from a finished backup")
            model, history = trained or self._fit_member(
                model_class, config, inputs_train, train, inputs_val, validation, seconds,
                member,
            )
            self.models_.append(model)
            self.histories_.append(history)
            if not member:
                epochs = len(self.histories_[0]["loss"])
                first_epoch_seconds = (time.monotonic() - member_started) / epochs
        if self.backup_dir is not None:
            shutil.rmtree(self.backup_dir, ignore_errors=True)  # the fit is complete
        self.model_ = self.models_[0]
        self.history_ = self.histories_[0]
        self.best_epoch_ = int(np.argmin(self.history_["val_loss"])) + 1

    def _ensemble_size(self, n_train_rows):
        return 1 if self.ensemble_size is None else self.ensemble_size

    def _member_backup(self, member):
        return os.path.join(self.backup_dir, f"member_{member}")

    def _trained_member(self, member):
        """A member that an interrupted fit finished, from ``backup_dir`` (or ``None``)."""
        if self.backup_dir is None:
            return None
        path = self._member_backup(member)
        if not os.path.exists(os.path.join(path, "history.json")):
            return None
        with open(os.path.join(path, "history.json"), encoding="utf-8") as file:
            history = json.load(file)
        return keras.saving.load_model(os.path.join(path, MODEL_FILE)), history

    def _fit_member(self, model_class, config, inputs_train, train, inputs_val, validation,
                    seconds, member=0):
        """Build, compile and train one model; returns it and its history (a dict)."""
        targets_train = train.encoded
        # A streamed fit (tabattn.streaming) holds a sample; n_rows counts the whole split.
        n_train = getattr(train, "n_rows", len(targets_train))
        batch_size = auto_batch_size(n_train) if self.batch_size == "auto" else (
            self.batch_size
        )
        model = model_class(
            n_num_features=self.preprocessor_.n_numeric_tokens,
            categorical_cardinalities=self.preprocessor_.categorical_cardinalities,
            d_out=self.target_.d_out,
            **config,
        )
        context_rows = None
        if model_class in _RETRIEVAL_MODELS:
            # Retrieval reads the training rows; in training each row skips its own index.
            kept = model.set_context(inputs_train, targets_train, seed=self.random_state)
            context_rows = train.rows[kept]
            if member == 0:  # the same rows as context_sample's, also without a seed
                self.context_rows_ = train.rows[kept]
            row_index = np.full(len(targets_train), -1, dtype="int32")
            row_index[kept] = np.arange(len(kept), dtype="int32")
            inputs_train = dict(inputs_train, row_index=row_index)
        sample_weight = self._row_weights(train)
        validation_data = (inputs_val, validation.encoded, None if validation.weights is None
                           else validation.weights.astype("float32"))
        feed = None
        if self._distribution is not None:
            # This process's rows, padded to split evenly over the devices (see Feed); a
            # streamed fit pads its last batches (see streaming.fit_arguments).
            feed = _distribute.Feed(self._distribution, batch_size, self.batch_size == "auto")
            batch_size = feed.batch_size
            if not isinstance(train, streaming.StreamSplit):
                inputs_train, targets_train, sample_weight = feed.rows(
                    inputs_train, targets_train, sample_weight, "loss"
                )
                validation_data = feed.rows(*validation_data, "val_loss")
        optimizer_config = {
            **model_class.default_optimizer_config(),
            **ESTIMATOR_OPTIMIZER_PARAMS[self.model_name_],
        }
        if self.learning_rate is not None:
            optimizer_config["learning_rate"] = self.learning_rate
        if self.weight_decay is not None:
            optimizer_config["weight_decay"] = self.weight_decay
        if optimizer_config.get("use_ema"):
            # Average over about the last epoch: a fixed momentum of 0.99 would lag 100 steps
            # behind, a hundred epochs on a table of a few hundred rows.
            steps = -(-n_train // batch_size)
            optimizer_config["ema_momentum"] = min(optimizer_config["ema_momentum"], 1 - 1 / steps)
            optimizer_config["use_ema"] = steps > 1
        optimizer = model.make_optimizer(**optimizer_config)
        model.compile(optimizer=optimizer, loss=self.target_.loss(), metrics=self.target_.metrics())
        early_stopping = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=self.patience, restore_best_weights=True
        )
        # The user's callbacks first: they see each epoch's logs before early stopping acts.
        callbacks = list(self.callbacks or []) + [early_stopping]
        swap_ema = None
        if optimizer.use_ema:
            # Validate, and keep as the best epoch's weights, the moving average. First in
            # the list, so that the other callbacks see the averaged weights.
            swap_ema = keras.callbacks.SwapEMAWeights(swap_on_epoch=True)
            callbacks.insert(0, swap_ema)
        if self.random_state is not None:
            callbacks.insert(0, _EpochSeed((self.random_state + member) % 2**32))
        time_limit = None
        if seconds is not None:
            time_limit = _TimeLimit(seconds)
            callbacks.append(time_limit)
        epochs = self._epochs()
        schedule = (AUTO_SCHEDULE[self.model_name_] if self.learning_rate_schedule == "auto"
                    else self.learning_rate_schedule)
        if schedule == "cosine":
            initial = optimizer_config["learning_rate"]
            callbacks.insert(0, _CosineDecay(initial, epochs, time_limit))
        backup = None
        if self.backup_dir is not None:
            backup = _TrainingBackup(self._member_backup(member), early_stopping, swap_ema)
            callbacks.append(backup)
        if isinstance(train, streaming.StreamSplit):
            data = streaming.fit_arguments(train, validation, batch_size, context_rows, feed)
            callbacks.insert(0, _EpochShuffle(data["x"]))
        else:
            seed = (np.random.default_rng().integers(2**32) if self.random_state is None
                    else (self.random_state + member) % 2**32)
            batches = _ShuffledBatches(
                inputs_train, targets_train, sample_weight, batch_size, seed
            )
            callbacks.insert(0, _EpochShuffle(batches))
            data = dict(
                x=batches, shuffle=False,
                validation_data=validation_data[:2] if validation_data[2] is None
                else validation_data,
                validation_batch_size=batch_size,
            )
        if feed is not None and feed.factors:
            callbacks.insert(0, _distribute.LossScale(feed.factors))
        history = model.fit(**data, epochs=epochs, callbacks=callbacks, verbose=self.verbose)
        # EarlyStopping restored the best epoch's weights when training ended, whatever ended
        # it (after Keras wrote the last moving average into the model); TabR's own callback
        # then recomputed the stored keys with them.
        if early_stopping.stopped_epoch > 0:
            self.stop_reasons_.append("early stopping")
        elif time_limit is not None and time_limit.stopped:
            self.stop_reasons_.append("time limit")
        else:
            self.stop_reasons_.append("epochs")
        if backup is None:
            return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}
        # The epochs before an interruption too; then the finished model, for a resumed fit.
        logs = {k: [epoch[k] for epoch in backup.logs] for k in backup.logs[0]}
        model.save(os.path.join(backup.backup_dir, MODEL_FILE))
        _write_json_atomically(os.path.join(backup.backup_dir, "history.json"), logs)
        return model, logs

    def _epochs(self):
        if self.epochs != "auto":
            return self.epochs
        rule = AUTO_EPOCHS_REGRESSION if self._task == "regression" else AUTO_EPOCHS
        return rule[self.model_name_]

    def _row_weights(self, split):
        """Each training row's loss weight (sample and class weights multiplied), or None."""
        return None if split.weights is None else split.weights.astype("float32")

    # Importances are computed when first read, as scikit-learn's forests do: on TabR and
    # TabM they are about 4,000 row predictions per column (7 s of an Adult fit).
    @property
    def feature_importances_(self):
        return self._importances()[0]

    @property
    def feature_importances_std_(self):
        return self._importances()[1]

    @property
    def feature_importances_noise_(self):
        return self._importances()[2]

    def _keep_importance_rows(self, inputs, validation, max_rows=IMPORTANCE_ROWS):
        """Keep the first ``max_rows`` validation rows that the importances are computed on."""
        self._importance_cache = None
        self._importance_rows = (
            {k: v[:max_rows] for k, v in inputs.items()},
            _Split(validation.frame.iloc[:max_rows], validation.target.iloc[:max_rows]),
        )

    def _importances(self):
        """``(importances, std or None, noise)``, computed once from the kept rows."""
        check_is_fitted(self, "model_")
        if getattr(self, "_importance_cache", None) is None:
            self._importance_cache = self._column_importances(*self._importance_rows)
            self._importance_rows = None
        return self._importance_cache

    def _column_importances(self, inputs, validation):
        if not hasattr(self.model_, "feature_importances"):
            return self._permutation_importances(validation, len(validation.frame))
        per_token = np.mean([m.feature_importances(inputs) for m in self.models_], axis=0)
        per_column = dict.fromkeys(self._columns, 0.0)
        for column, value in zip(self.preprocessor_.token_columns_, per_token):
            per_column[column] += float(value)  # a missing flag counts for its column
        return np.asarray([per_column[c] for c in self._columns]), None, False

    def _permutation_importances(self, validation, max_rows):
        # Models without attention over features (TabR, TabM): the drop of ``score`` when a
        # column is shuffled, clipped at 0 and normalised like the attention importances.
        # A proper score (log loss, R²), not accuracy, which ignores confidence and is flat on
        # small tables; several shuffles give each column's spread.
        X_val = validation.frame.iloc[:max_rows // 2]
        if not hasattr(self, "feature_names_in_"):
            X_val = X_val.set_axis(range(X_val.shape[1]), axis=1)  # as fitted: no names
        scoring = "r2" if self._task == "regression" else make_scorer(
            sk_log_loss, greater_is_better=False, response_method="predict_proba",
            labels=self.classes_,
        )
        result = permutation_importance(
            self, X_val, validation.target.iloc[:max_rows // 2], n_repeats=4, scoring=scoring,
            random_state=0 if self.random_state is None else self.random_state,
        )
        mean, std = np.nan_to_num(result.importances_mean), np.nan_to_num(result.importances_std)
        noise = not bool((mean > 2 * std + 1e-12).any())
        drops = np.clip(mean, 0.0, None)
        total = drops.sum()
        if total <= 0:
            return np.full(len(drops), 1.0 / len(drops)), np.zeros(len(drops)), noise
        return drops / total, std / total, noise

    # --- prediction ------------------------------------------------------------------------
    def _inputs(self, X):
        """The models' input dict for ``X`` (checked as in ``predict``)."""
        check_is_fitted(self, "model_")
        return self.preprocessor_.transform(self._check_X(X, reset=False))

    def _member_outputs(self, X, batch_size=4096):
        # One (n_samples, d_out) float64 array per member of the ensemble.
        if streaming.is_stream_source(X):
            return streaming.predict_outputs(self, X, batch_size=batch_size)
        inputs = self._inputs(X)
        distribution = _distribute.resolve(self.distribution)
        return [
            np.asarray(_distribute.predict(model, inputs, batch_size, distribution),
                       dtype="float64")
            for model in self.models_
        ]

    def explain(self, X, background=None, max_evals="auto", random_state=0):
        """Explain the predictions for the rows of ``X``: SHAP values per row and column
        (on the raw columns, categorical ones included), TabR's retrieved training rows and
        their weights, or the FT-Transformer's attention over the columns.

        See ``tabattn.explain.explain`` for the arguments, the returned ``Explanation`` and
        the errors raised.
        """
        return _explain(self, X, background, max_evals, random_state)

    # --- persistence -----------------------------------------------------------------------
    def save(self, path):
        """Save to directory ``path`` (created if needed): the Keras model as ``model.keras``
        (an ensemble's other members as ``model_1.keras``, ...), the preprocessing as
        ``preprocessing.json`` and the rest as ``estimator.json``. No pickle is used. Reload
        with ``tabattn.load(path)``."""
        check_is_fitted(self, "model_")
        os.makedirs(path, exist_ok=True)
        for member, model in enumerate(self.models_):
            model.save(os.path.join(path, _member_file(member)))
        self.preprocessor_.save(os.path.join(path, PREPROCESSING_FILE))
        state = {
            "class": type(self).__name__,
            # Callbacks and devices are of the training run, not of the model: not saved.
            "params": dict(self.get_params(), callbacks=None, distribution=None),
            "columns": self._columns,
            "has_feature_names": hasattr(self, "feature_names_in_"),
            "n_features_in": self.n_features_in_,
            "history": self.history_,  # what versions before ensembles read
            "histories": self.histories_,
            "best_epoch": self.best_epoch_,
            "model_name": self.model_name_,
            "feature_importances": self.feature_importances_.tolist(),
            "feature_importances_std": (
                None if self.feature_importances_std_ is None
                else self.feature_importances_std_.tolist()
            ),
            "feature_importances_noise": self.feature_importances_noise_,
            "target": self.target_.to_dict(),
            "keras_backend": keras.backend.backend(),
            # Training rows, for explain: a small sample, and which rows TabR stores.
            "background": _frame_to_dict(self.background_),
            "context_rows": None if self.context_rows_ is None else self.context_rows_.tolist(),
        }
        with open(os.path.join(path, ESTIMATOR_FILE), "w", encoding="utf-8") as file:
            # NumPy values in model_params (e.g. explicit bins) are stored as lists.
            json.dump(state, file, indent=1, default=lambda value: np.asarray(value).tolist())


class TabularClassifier(ClassifierMixin, _TabularEstimator):
    """Attention model for classification of tables, with the scikit-learn API.

    Trains TabM (Gorishniy et al. 2025: an MLP that trains as an ensemble of 32), TabR
    (Gorishniy et al. 2024: retrieval attention over the training rows and their labels),
    ModernNCA (Ye et al. 2025: nearest neighbours in a learned embedding) or an
    FT-Transformer (Gorishniy et al. 2021) on a DataFrame or array. Numeric columns go
    through a quantile transform; categorical ones (strings, bools, pandas categories,
    numeric columns with at most two distinct values, or those named in ``categorical``)
    become integer codes with 0 for missing or unseen values. Predictions for one row never
    depend on the other rows passed with it (TabR and ModernNCA read the stored training
    rows only).

    Args:
        model: ``"auto"`` (default: the model chosen on the benchmarks in BENCHMARKS.md,
            ``auto_model``: TabM on training splits of at most 2,000 rows, TabR above),
            ``"tabm"``, ``"tabr"``, ``"modernnca"`` or ``"ft_transformer"``.
        model_params: dict overriding the model's ``default_config()`` (after the
            estimator's own changes in ``ESTIMATOR_MODEL_PARAMS``; for TabR:
            ``d_main=128``, ``num_neighbors=8``, ``numeric_embedding="periodic"``,
            ``context_refresh="rolling"``, ``refresh_rows=512``, ``max_context_rows=16384``;
            for ModernNCA: ``max_candidates=4096``, ``max_context_rows=16384``), e.g.
            ``{"k": 16, "d_block": 256}`` for TabM, ``{"n_blocks": 2, "d_token": 64}`` for
            the FT-Transformer or ``{"numeric_embedding": None}`` for TabR on raw numeric
            values. With ``"numeric_embedding": "piecewise"`` (TabM's default; any model)
            the bins are computed from the training rows: ``"bins"`` may be ``"quantile"``
            (default) or ``"tree"``, and ``"n_bins"`` (default 48) sets their number.
        epochs: maximum training epochs, or ``"auto"`` (default): for TabR, whose
            learning rate is annealed over them, 30 on classification and 40 on regression
            (``AUTO_EPOCHS``, ``AUTO_EPOCHS_REGRESSION``); 1000 for TabM, ModernNCA and the
            FT-Transformer, i.e. until early stopping.
        batch_size: rows per step, or ``"auto"`` (default): 256, or on training splits of
            fewer than 4,096 rows the power of two (at least 32) that gives about 16 steps
            per epoch (``auto_batch_size``). The training rows are shuffled for each epoch
            from ``random_state`` and the epoch, the same way on every backend; the last
            batch is filled up with the epoch's first rows, so that every step has
            ``batch_size`` rows (when the split has that many).
        learning_rate: AdamW learning rate (the initial one under a schedule). Default
            ``None``: TabM 2e-3 and FT-Transformer 1e-4 (their papers'), ModernNCA 0.01 (its
            authors' TALENT default), TabR 2e-3 (paper
            3.1e-4; see ``ESTIMATOR_OPTIMIZER_PARAMS``). TabR also keeps an exponential
            moving average of its weights (momentum 0.99, or ``1 - 1 / steps per epoch``
            when that is smaller; none with one step per epoch): validation, early stopping
            and the fitted model use the average (``keras.callbacks.SwapEMAWeights``).
        learning_rate_schedule: ``"constant"``, ``"cosine"`` (from ``learning_rate`` at the
            first epoch down to about zero at the last of ``epochs``, along half a cosine,
            set before each epoch; under a ``time_limit``, over the epochs it leaves room
            for at the median epoch duration so far, if fewer) or ``"auto"`` (default):
            cosine for TabR, constant for the others.
        weight_decay: AdamW weight decay (not on norms, biases, embeddings). Default
            ``None``: the model's paper default (TabM 3e-4, ModernNCA 2e-4, FT-Transformer
            1e-5, TabR 1.2e-6).
        patience: epochs without a better validation loss before stopping; the best
            epoch's weights are restored. Default 16.
        validation_fraction: share of rows split off for early stopping when ``fit`` gets
            no ``eval_set``. Default 0.2.
        categorical: column names forced to be categorical.
        numeric: column names forced to be numeric.
        time_limit: seconds ``fit`` may take: no epoch is started that would, by the
            duration of the epochs so far, end past it (the best epoch's weights are still
            restored). An ensemble's models share it equally, and a model whose share would
            not cover one epoch of the first is not trained (``models_`` says how many
            were). ``None``: no limit.
        class_weight: ``None``, ``"balanced"`` (weights inversely proportional to class
            frequencies in the training split, for imbalanced targets) or a dict
            ``{class: weight}``. Default ``None``.
        random_state: seed that makes ``fit`` repeatable on one backend.
        verbose: 0 silent; 1 Keras's progress bar; 2 one line per epoch.
        ensemble_size: number of models trained with seeds ``random_state``,
            ``random_state + 1``, ... on the same split, whose predicted probabilities
            (regression: predictions) are averaged. ``None`` (default): one (TabM is an
            ensemble of its own).
        callbacks: Keras callbacks passed to each model's ``fit`` (e.g.
            ``keras.callbacks.CSVLogger``), before the estimator's own early stopping. They
            are not saved with the estimator.
        backup_dir: folder where the training state (each model's weights, optimizer, early
            stopping, epoch logs; ``keras.callbacks.BackupAndRestore``) is saved after every
            epoch, or ``None`` (default). A ``fit`` interrupted (an error, Ctrl-C, a killed
            process) and called again with the same arguments and data goes on from the last
            saved epoch; with ``random_state`` set it ends with the model an uninterrupted fit
            gives. The folder is removed when ``fit`` completes.
        distribution: data-parallel training over several devices (GPUs, TPUs) with
            Keras's ``keras.distribution`` API, on the JAX backend: each batch is split
            evenly over the devices, each computes the gradient of its part with a replica of
            the weights, and the gradients are averaged. ``None`` (default): one device (as
            Keras is set up). ``"auto"``: ``keras.distribution.DataParallel`` over all devices
            (``keras.distribution.list_devices()``) when the backend is JAX and there is more
            than one, otherwise one device, as ``None``. ``"data-parallel"``: the same, but a
            ``ValueError`` on another backend. Or a ``keras.distribution.Distribution`` of
            your own (JAX only), e.g. ``DataParallel(devices=list_devices()[:2])``. It is
            Keras's current distribution while ``fit`` builds, compiles and trains the models
            and while ``predict`` uses them; the caller's (usually none) is restored after.
            Every batch must split evenly: ``batch_size="auto"`` is rounded up to a multiple
            of the devices; an explicit ``batch_size`` that is not one is a ``ValueError``
            (rounding it would change the training asked for). Training and validation rows
            that do not split evenly are padded with copies of a row at weight 0; the loss
            logged (and early stopping) is the mean over the real rows, other metrics count
            the padding. With padded training rows the shuffling differs from one device's,
            so the fit differs as with another seed; otherwise it repeats the one-device fit
            up to rounding (TabR's nearest neighbours may then differ at near ties). The
            variables (TabR's stored rows too) are replicated on every device; early
            stopping, ``time_limit``, TabR's moving average of the weights and its stored
            keys' refresh, and ``backup_dir`` work as on one device. ``save`` does not keep
            it: a loaded estimator predicts on one device (``set_params(distribution=...)``
            to spread its predictions again). A table read in batches (a Parquet ``X``)
            trains on the devices of one process, the last batch of each pass padded.

            Over several processes (several hosts, or one process per GPU): call
            ``jax.distributed.initialize(coordinator_address, num_processes, process_id)``
            in each process before Keras builds anything, then fit the same estimator
            (``random_state`` set, the same on all) in every process on that process's share
            of the rows (``X``, ``y``, ``sample_weight`` and ``eval_set`` alike). The
            processes exchange their shares, so that each fits the preprocessing, target
            encoding and validation split of the whole table (every process then holds all
            rows, in process order), and each feeds the training steps an equal part of the
            rows; ``batch_size`` counts a step's rows over all processes. A distribution of
            your own must then be a ``DataParallel(..., auto_shard_dataset=False)``.
            ``time_limit`` stops all processes at the same epoch; ``backup_dir`` is not
            supported (a ``ValueError``). After ``fit`` every process holds the same models
            on its own device and predicts its own rows alone; save from one process. See
            docs/guides/distributed.md.

    Fitted attributes:
        ``models_`` (the Keras models of the ensemble, returning logits; one unless
        ``ensemble_size`` says otherwise), ``model_`` (the first of them), ``model_name_``
        (``"tabm"``, ``"tabr"``, ``"modernnca"`` or ``"ft_transformer"``), ``classes_``,
        ``n_features_in_``, ``feature_names_in_`` (DataFrame input only), ``histories_`` (one
        Keras history dict per model), ``history_`` and ``best_epoch_`` (the first model's),
        ``stop_reasons_`` (why each model's training ended: ``"early stopping"``,
        ``"time limit"`` or ``"epochs"``; not kept by ``save``),
        ``feature_importances_`` (one per input column, non-negative,
        summing to 1, computed when first read, as scikit-learn's forests do, on the first
        2,048 validation rows at most, which ``fit`` keeps: for the FT-Transformer the
        attention importance of Gorishniy et al. 2021 §5.3, a missing-value flag counting
        for its column; for the other models the drop of the log loss (classification) or R²
        (regression) when the column is shuffled, from
        ``sklearn.inspection.permutation_importance`` over 4 shuffles of at most 1,024 rows,
        clipped at 0 and normalised), ``feature_importances_std_`` (the spread of those
        drops over the shuffles, normalised alike; ``None`` for attention importances),
        ``feature_importances_noise_`` (``True`` when no column's drop exceeds twice its
        spread: the importances cannot be told apart from noise), ``preprocessor_``.

    Example:

    >>> import pandas as pd
    >>> from tabattn import TabularClassifier
    >>> X = pd.DataFrame({"a": [0.1, 0.5, 0.9, 0.3] * 10, "b": ["x", "y", "x", "z"] * 10})
    >>> y = [0, 1, 1, 0] * 10
    >>> clf = TabularClassifier(model="ft_transformer", epochs=2, verbose=0, random_state=0,
    ...                         model_params={"n_blocks": 1, "d_token": 8, "num_heads": 2})
    >>> clf.fit(X, y).predict_proba(X).shape
    (40, 2)
    """

    _task = "classification"

    def __init__(self, model="auto", model_params=None, epochs="auto", batch_size="auto",
                 learning_rate=None, learning_rate_schedule="auto", weight_decay=None,
                 patience=16, validation_fraction=0.2,
                 categorical=None, numeric=None, time_limit=None, class_weight=None,
                 random_state=None, verbose=1, ensemble_size=None, callbacks=None,
                 backup_dir=None, distribution=None):
        super().__init__(
            model=model, model_params=model_params, epochs=epochs, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_schedule=learning_rate_schedule,
            weight_decay=weight_decay, patience=patience,
            validation_fraction=validation_fraction, categorical=categorical, numeric=numeric,
            time_limit=time_limit, random_state=random_state, verbose=verbose,
            ensemble_size=ensemble_size, callbacks=callbacks, backup_dir=backup_dir,
            distribution=distribution,
        )
        self.class_weight = class_weight

    _parameter_constraints = {
        **_TabularEstimator._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    def _fit_target(self, target):
        super()._fit_target(target)
        self.classes_ = self.target_.classes_

    def _stratify(self, target):
        # Stratified when every class can be in both parts; otherwise a plain random split.
        counts = target.value_counts()
        n_val = int(np.ceil(self.validation_fraction * len(target)))
        if counts.min() >= 2 and len(counts) <= min(n_val, len(target) - n_val):
            return target
        return None

    def _row_weights(self, split):
        if self.class_weight is None:
            return super()._row_weights(split)
        labels = np.asarray(split.encoded).ravel().astype(int)
        if self.class_weight == "balanced":
            present = np.unique(labels)
            weights = compute_class_weight("balanced", classes=present, y=labels)
            lookup = dict(zip(present.tolist(), weights))
        else:
            index = {c: i for i, c in enumerate(self.classes_.tolist())}
            unknown = [c for c in self.class_weight if c not in index]
            if unknown:
                raise ValueError(
                    f"`class_weight` names classes that are not in the target: {unknown}. "
                    f"Classes: {self.classes_.tolist()}"
                )
            lookup = {index[c]: float(w) for c, w in self.class_weight.items()}
        weights = np.asarray([lookup.get(label, 1.0) for label in labels], dtype="float32")
        return weights if split.weights is None else weights * split.weights.astype("float32")

    def predict_proba(self, X):
        """Class probabilities, ``(n_samples, n_classes)`` in the order of ``classes_``."""
        check_is_fitted(self, "model_")
        # An ensemble averages its members' probabilities.
        return np.mean([self.target_.decode(o) for o in self._member_outputs(X)], axis=0)

    def predict(self, X):
        """Most probable class for each row, ``(n_samples,)`` with the dtype of ``classes_``."""
        check_is_fitted(self, "model_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def _load_target(self, state):
        self.target_ = target_for_task(self._task).from_dict(state)
        self.classes_ = self.target_.classes_


class TabularRegressor(RegressorMixin, _TabularEstimator):
    """Attention model for regression on tables, with the scikit-learn API.

    As ``TabularClassifier`` (same arguments but ``class_weight``), trained with mean
    squared error on the standardised target; ``predict`` returns the target's units.
    ``score`` is R².

    Fitted attributes:
        ``models_``, ``model_``, ``n_features_in_``, ``feature_names_in_``, ``histories_``,
        ``history_``, ``best_epoch_``, ``feature_importances_``, ``preprocessor_``,
        ``target_mean_``, ``target_std_``.
    """

    _task = "regression"

    def _fit_target(self, target):
        super()._fit_target(target)
        self.target_mean_, self.target_std_ = self.target_.mean_, self.target_.std_

    def predict(self, X):
        """Predicted target, ``(n_samples,)`` float64 in the target's units."""
        check_is_fitted(self, "model_")
        # An ensemble's mean prediction.
        return self.target_.decode(np.mean(self._member_outputs(X), axis=0))

    def _load_target(self, state):
        self.target_ = target_for_task(self._task).from_dict(state)
        self.target_mean_, self.target_std_ = self.target_.mean_, self.target_.std_


def _frame_to_dict(frame):
    """A DataFrame's columns as JSON-ready lists (a missing value as ``None``)."""
    return {
        "columns": [str(c) for c in frame.columns],
        "data": [
            [None if v is None or (isinstance(v, float) and v != v) else
             v.item() if isinstance(v, np.generic) else v
             for v in frame[c].tolist()]
            for c in frame.columns
        ],
    }


def _frame_from_dict(state, numeric):
    """The DataFrame of ``_frame_to_dict``; ``numeric`` columns as float64 (NaN missing)."""
    frame = pd.DataFrame(
        {c: pd.Series(v, dtype="float64" if c in numeric else object)
         for c, v in zip(state["columns"], state["data"])}
    )
    return frame


def _not_complete(path, name, problem):
    return (
        f"{os.fspath(path)!r} is not a complete tabattn model: {name} {problem}. Save the "
        "model again, or load another model folder"
    )


def _read_model_json(path, name):
    """The JSON file ``name`` of the model folder ``path``; errors name the file."""
    file_path = os.path.join(path, name)
    if not os.path.isfile(file_path):
        raise FileNotFoundError(_not_complete(path, name, "is missing"))
    try:
        with open(file_path, encoding="utf-8") as file:
            state = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(_not_complete(path, name, f"is corrupt ({error})")) from error
    if not isinstance(state, dict):
        raise ValueError(_not_complete(path, name, "is corrupt (not a JSON object)"))
    return state


def _load_keras_model(path, name):
    """The Keras model file ``name`` of the model folder ``path``; errors name the file."""
    file_path = os.path.join(path, name)
    if not os.path.isfile(file_path):
        raise FileNotFoundError(_not_complete(path, name, "is missing"))
    try:
        return keras.saving.load_model(file_path)
    except PermissionError:
        raise
    except Exception as error:  # zipfile, h5py and Keras's own errors on a damaged file
        raise ValueError(_not_complete(path, name, f"is corrupt ({error})")) from error


def load(path):
    """Load an estimator saved with ``save(path)``; predictions are identical.

    Raises:
        FileNotFoundError: ``path`` is not a saved tabattn model directory, or one of the
            model's files is missing (the message names it).
        ValueError: one of the model's files is corrupt (the message names it).
    """
    if not os.path.isfile(os.path.join(path, ESTIMATOR_FILE)):
        raise FileNotFoundError(
            f"No saved tabattn model in {path!r} (expected {ESTIMATOR_FILE} there)"
        )
    state = _read_model_json(path, ESTIMATOR_FILE)
    preprocessing = _read_model_json(path, PREPROCESSING_FILE)
    classes = {"TabularClassifier": TabularClassifier, "TabularRegressor": TabularRegressor}
    try:
        estimator = classes[state["class"]](**state["params"])
        estimator.histories_ = state.get("histories") or [state["history"]]
        estimator._columns = state["columns"]
        if state["has_feature_names"]:
            estimator.feature_names_in_ = np.asarray(state["columns"], dtype=object)
        estimator.n_features_in_ = state["n_features_in"]
        estimator.history_ = estimator.histories_[0]
        estimator.best_epoch_ = state["best_epoch"]
        estimator.model_name_ = state.get("model_name", "ft_transformer")
        std = state.get("feature_importances_std")
        estimator._importance_cache = (
            np.asarray(state["feature_importances"]),
            None if std is None else np.asarray(std),
            bool(state.get("feature_importances_noise")),
        )
        estimator._load_target(state["target"])
    except (KeyError, TypeError, IndexError, AttributeError) as error:
        raise ValueError(
            _not_complete(path, ESTIMATOR_FILE, f"is corrupt (bad or missing entry {error})")
        ) from error
    try:
        estimator.preprocessor_ = TabularPreprocessor.from_dict(preprocessing)
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise ValueError(
            _not_complete(path, PREPROCESSING_FILE, f"is corrupt (bad or missing entry {error})")
        ) from error
    try:
        # Older model folders have neither; explain then needs background=.
        background = state.get("background")
        estimator.background_ = None if background is None else _frame_from_dict(
            background, estimator.preprocessor_.numeric_columns_
        )
        context_rows = state.get("context_rows")
        estimator.context_rows_ = None if context_rows is None else np.asarray(
            context_rows, dtype="int64"
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            _not_complete(path, ESTIMATOR_FILE, f"is corrupt (bad background entry: {error})")
        ) from error
    estimator.models_ = [
        _load_keras_model(path, _member_file(member))
        for member in range(len(estimator.histories_))
    ]
    estimator.model_ = estimator.models_[0]
    return estimator


def evaluation_metrics(estimator, X, y):
    """Metrics of a fitted estimator on ``(X, y)``, as a dict of floats.

    Classification: ``tabattn.targets.classification_metrics``; regression:
    ``tabattn.targets.regression_metrics``. Rows with a NaN target are dropped.
    """
    frame = estimator._check_X(X, reset=False)
    target = _as_target(y, len(frame))
    keep = target_mask(target)
    frame, target = frame.loc[keep], target[keep]
    if isinstance(estimator, TabularClassifier):
        return estimator.target_.evaluate(target, estimator.predict_proba(frame))
    return estimator.target_.evaluate(target, estimator.predict(frame))
