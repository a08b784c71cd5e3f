"""scikit-learn estimators over tabattn models: ``TabularClassifier``, ``TabularRegressor``.

Needs the ``cli`` extra (pandas, scikit-learn). Modelled on scikit-learn's conventions and on
Keras's own scikit-learn wrappers: ``__init__`` stores its arguments; ``fit`` validates,
preprocesses (``tabattn.data.TabularPreprocessor``), trains with early stopping and returns
``self``; fitted attributes end in ``_``.
"""

import json
import os
import time
import warnings

import keras
import numpy as np

try:
    import pandas as pd
    from sklearn import metrics as sk_metrics
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.inspection import permutation_importance
    from sklearn.model_selection import train_test_split
    from sklearn.utils.class_weight import compute_class_weight
    from sklearn.utils.validation import check_is_fitted
except ImportError as error:  # pragma: no cover
    raise ImportError(
        "tabattn's estimators need pandas and scikit-learn. "
        "Install them with: pip install 'tabattn[cli]'"
    ) from error

from tabattn.data import TabularPreprocessor, drop_missing_target
from tabattn.layers import _checks
from tabattn.layers.embeddings import compute_bins
from tabattn.models import FTTransformer, TabM, TabR

MODEL_FILE = "model.keras"
PREPROCESSING_FILE = "preprocessing.json"
ESTIMATOR_FILE = "estimator.json"
_MODELS = {"ft_transformer": FTTransformer, "tabm": TabM, "tabr": TabR}
# The estimator's changes to a model's paper defaults. TabR: TabR-S's retrieval cost grows
# with num_neighbors * d_main**2 per row, and the paper's search encodes every stored row at
# every step, so an epoch's cost grows with the square of the table. Here each step
# re-encodes 2,048 stored rows in turn and searches at most 16,384 stored rows (a sample of
# larger tables) for 16 neighbours, with d_main=128: an epoch's cost grows linearly with
# rows (BENCHMARKS.md, "Cost against rows"). Periodic numeric embeddings (PLR lite, as the
# paper's tuned TabR) lifted Adult, California and diamonds in the benchmarks.
ESTIMATOR_MODEL_PARAMS = {
    "ft_transformer": {},
    "tabm": {},
    "tabr": {"d_main": 128, "num_neighbors": 16, "numeric_embedding": "periodic",
             "context_refresh": "rolling", "refresh_rows": 2048, "max_context_rows": 16384},
}
# ... and to its optimizer: under a time budget TabR gained from a larger step (California,
# seed 0: RMSE 0.499 after 300 s at the paper's 3.1e-4, 0.487 after 180 s at 1e-3), and from
# validating and keeping an exponential moving average of the weights (California, seed 0,
# 300 s on one core: RMSE 0.397 against 0.414 without it); its momentum is capped so that it
# averages over about one epoch (see ``fit``).
ESTIMATOR_OPTIMIZER_PARAMS = {
    "ft_transformer": {},
    "tabm": {},
    "tabr": {"learning_rate": 1e-3, "use_ema": True, "ema_momentum": 0.99},
}
# model="auto" (BENCHMARKS.md, "Default model"): TabM on training splits of at most this many
# rows, where an ensemble's lower variance matters most and TabM's 32 members cost little
# (credit_g and penguins: more accurate than five TabR models averaged, in a third to half
# of their time); TabR above, where the nearest training rows carry the signal (California
# housing, seed 0: RMSE 0.385 against 0.432 for TabM with k=32 and d_block=256) and TabM's
# cost per row (32 MLPs) dominates: at the estimators' sizes TabR trains 3.9x the rows per
# second of TabM (BENCHMARKS.md, "Models").
AUTO_TABM_MAX_ROWS = 2000


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

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        self.durations.append(now - self.epoch_start)
        next_epoch = max(self.durations[1:] or self.durations)
        if now - self.start + next_epoch > self.seconds:
            self.model.stop_training = True


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


def _as_frame(X, feature_names=None):
    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X)
    if array.ndim != 2:
        raise ValueError(f"Expected X of rank 2 (n_samples, n_features). Received shape {array.shape}")
    if feature_names is not None:
        if array.shape[1] != len(feature_names):
            raise ValueError(
                f"X has {array.shape[1]} features, but the estimator was fitted with "
                f"{len(feature_names)} features"
            )
        return pd.DataFrame(array, columns=feature_names)
    return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])


class _TabularEstimator(BaseEstimator):
    _task = None

    def __init__(
        self,
        model="auto",
        model_params=None,
        epochs=1000,
        batch_size="auto",
        learning_rate=None,
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
    ):
        self.model = model
        self.model_params = model_params
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
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

    # --- fitting ---------------------------------------------------------------------------
    def fit(self, X, y, eval_set=None):
        """Train on ``X``, ``y`` with early stopping on a validation set.

        Args:
            X: pandas DataFrame (column names become ``feature_names_in_``) or a 2-D array.
            y: target, array-like of length ``n_samples``. Rows whose target is NaN are
                dropped with a warning.
            eval_set: optional ``(X_val, y_val)`` for early stopping. Without it a stratified
                (classification) ``validation_fraction`` of the rows is split off.

        Returns:
            ``self``.

        Raises:
            ValueError: for invalid arguments (``model``, ``validation_fraction``,
                ``ensemble_size``), mismatched lengths, a target that is all NaN
                or (classification) has a single class, and any error of
                ``tabattn.data.TabularPreprocessor``.
        """
        if self.model not in _MODELS and self.model != "auto":
            raise ValueError(
                f"`model` must be one of {sorted(_MODELS) + ['auto']}. "
                f"Received: model={self.model!r}"
            )
        _checks.positive_int("ensemble_size", self.ensemble_size, allow_none=True)
        if self.batch_size != "auto":
            _checks.positive_int("batch_size", self.batch_size)
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                "`validation_fraction` must be in (0, 1). "
                f"Received: validation_fraction={self.validation_fraction!r}"
            )
        if self.random_state is not None:
            keras.utils.set_random_seed(self.random_state)
        started = time.monotonic()
        frame, target = self._frame_and_target(X, y, fitting=True)
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        self._fit_target(target)
        if eval_set is None:
            stratify = target if self._task == "classification" else None
            X_train, X_val, y_train, y_val = train_test_split(
                frame,
                target,
                test_size=self.validation_fraction,
                random_state=self.random_state,
                stratify=stratify,
            )
        else:
            X_train, y_train = frame, target
            X_val, y_val = self._frame_and_target(*eval_set, fitting=False)

        self.preprocessor_ = TabularPreprocessor(
            categorical=self.categorical, numeric=self.numeric,
            random_state=0 if self.random_state is None else self.random_state,
        ).fit(X_train)
        inputs_train = self.preprocessor_.transform(X_train)
        inputs_val = self.preprocessor_.transform(X_val)
        targets_train, targets_val = self._encode_target(y_train), self._encode_target(y_val)

        self.model_name_ = (
            auto_model(len(targets_train)) if self.model == "auto" else self.model
        )
        model_class = _MODELS[self.model_name_]
        config = {
            **model_class.default_config(),
            **ESTIMATOR_MODEL_PARAMS[self.model_name_],
            **(self.model_params or {}),
        }
        if model_class in (TabR, TabM):
            config["num_classes"] = self._num_classes()
        n_bins = config.pop("n_bins", 48)
        if config.get("numeric_embedding") == "piecewise":
            # Without numeric columns there is nothing to bin (and no embedding is built).
            config["bins"] = _piecewise_bins(
                config.get("bins"), n_bins, inputs_train, targets_train,
                self._task == "regression",
            ) if self.preprocessor_.n_numeric_tokens else None
        size = self._ensemble_size(len(targets_train))
        self.models_, self.histories_ = [], []
        for member in range(size):
            seconds = None
            if self.time_limit:
                # Each member gets an equal share of the time that is left; one whose share
                # would not cover an epoch of the first (compilation included) is not trained.
                seconds = (self.time_limit - (time.monotonic() - started)) / (size - member)
                if member and seconds < first_epoch_seconds:
                    break
            if member and self.random_state is not None:
                keras.utils.set_random_seed((self.random_state + member) % 2**32)
            member_started = time.monotonic()
            model, history = self._fit_member(
                model_class, config, inputs_train, targets_train, inputs_val, targets_val,
                seconds,
            )
            self.models_.append(model)
            self.histories_.append(
                {k: [float(v) for v in vals] for k, vals in history.history.items()}
            )
            if not member:
                epochs = len(self.histories_[0]["loss"])
                first_epoch_seconds = (time.monotonic() - member_started) / epochs
        self.model_ = self.models_[0]
        self.history_ = self.histories_[0]
        self.best_epoch_ = int(np.argmin(self.history_["val_loss"])) + 1
        self.feature_importances_ = self._column_importances(inputs_val, X_val, y_val)
        return self

    def _ensemble_size(self, n_train_rows):
        return 1 if self.ensemble_size is None else self.ensemble_size

    def _fit_member(self, model_class, config, inputs_train, targets_train, inputs_val,
                    targets_val, seconds):
        """Build, compile and train one model; returns it and its ``History``."""
        batch_size = auto_batch_size(len(targets_train)) if self.batch_size == "auto" else (
            self.batch_size
        )
        model = model_class(
            n_num_features=self.preprocessor_.n_numeric_tokens,
            categorical_cardinalities=self.preprocessor_.categorical_cardinalities,
            d_out=self._d_out(),
            **config,
        )
        if model_class is TabR:
            # Retrieval reads the training rows; in training each row skips its own index.
            kept = model.set_context(inputs_train, targets_train, seed=self.random_state)
            row_index = np.full(len(targets_train), -1, dtype="int32")
            row_index[kept] = np.arange(len(kept), dtype="int32")
            inputs_train = dict(inputs_train, row_index=row_index)
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
            steps = -(-len(targets_train) // batch_size)
            optimizer_config["ema_momentum"] = min(optimizer_config["ema_momentum"], 1 - 1 / steps)
            optimizer_config["use_ema"] = steps > 1
        optimizer = model.make_optimizer(**optimizer_config)
        model.compile(optimizer=optimizer, loss=self._loss(), metrics=self._metrics())
        early_stopping = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=self.patience, restore_best_weights=True
        )
        # The user's callbacks first: they see each epoch's logs before early stopping acts.
        callbacks = list(self.callbacks or []) + [early_stopping]
        if optimizer.use_ema:
            # Validate, and keep as the best epoch's weights, the moving average. First in
            # the list, so that the other callbacks see the averaged weights.
            callbacks.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
        if seconds is not None:
            callbacks.append(_TimeLimit(seconds))
        history = model.fit(
            inputs_train,
            targets_train,
            validation_data=(inputs_val, targets_val),
            epochs=self.epochs,
            batch_size=batch_size,
            callbacks=callbacks,
            class_weight=self._class_weight(targets_train),
            verbose=self.verbose,
        )
        # EarlyStopping restored the best epoch's weights when training ended, whatever ended
        # it (after Keras wrote the last moving average into the model); TabR's own callback
        # then recomputed the stored keys with them.
        return model, history

    def _frame_and_target(self, X, y, fitting):
        frame = _as_frame(X, None if fitting else getattr(self, "_columns", None))
        if fitting:
            self._columns = [str(c) for c in frame.columns]
        target = pd.Series(np.asarray(y).ravel() if not isinstance(y, pd.Series) else y.to_numpy())
        if len(target) != len(frame):
            raise ValueError(
                f"X and y have different numbers of rows: X has {len(frame)}, y has {len(target)}"
            )
        frame = frame.reset_index(drop=True).copy()
        frame.columns = [str(c) for c in frame.columns]
        name = "__target__"
        frame[name] = target.to_numpy()
        frame = drop_missing_target(frame, name)
        return frame.drop(columns=[name]).reset_index(drop=True), frame[name].reset_index(drop=True)

    def _column_importances(self, inputs, X_val, y_val, max_rows=2048):
        if not hasattr(self.model_, "feature_importances"):
            return self._permutation_importances(X_val, y_val, max_rows)
        inputs = {k: v[:max_rows] for k, v in inputs.items()}
        per_token = np.mean([m.feature_importances(inputs) for m in self.models_], axis=0)
        per_column = dict.fromkeys(self._columns, 0.0)
        for column, value in zip(self.preprocessor_.token_columns_, per_token):
            per_column[column] += float(value)  # a missing flag counts for its column
        return np.asarray([per_column[c] for c in self._columns])

    def _permutation_importances(self, X_val, y_val, max_rows):
        # Models without attention over features (TabR): the drop of ``score`` when a column
        # is shuffled, clipped at 0 and normalised like the attention importances.
        result = permutation_importance(
            self, X_val.iloc[:max_rows], y_val.iloc[:max_rows], n_repeats=1,
            random_state=0 if self.random_state is None else self.random_state,
        )
        drops = np.clip(result.importances_mean, 0.0, None)
        total = drops.sum()
        return drops / total if total > 0 else np.full(len(drops), 1.0 / len(drops))

    # --- prediction ------------------------------------------------------------------------
    def _inputs(self, X):
        check_is_fitted(self, "model_")
        return self.preprocessor_.transform(_as_frame(X, self._columns))

    def _member_outputs(self, X, batch_size=4096):
        # One (n_samples, d_out) float64 array per member of the ensemble.
        inputs = self._inputs(X)
        return [
            np.asarray(model.predict(inputs, batch_size=batch_size, verbose=0), dtype="float64")
            for model in self.models_
        ]

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
            # Callbacks are objects of the training run, not of the model: not saved.
            "params": dict(self.get_params(), callbacks=None),
            "columns": self._columns,
            "has_feature_names": hasattr(self, "feature_names_in_"),
            "n_features_in": self.n_features_in_,
            "history": self.history_,  # what versions before ensembles read
            "histories": self.histories_,
            "best_epoch": self.best_epoch_,
            "model_name": self.model_name_,
            "feature_importances": self.feature_importances_.tolist(),
            "target": self._target_state(),
            "keras_backend": keras.backend.backend(),
        }
        with open(os.path.join(path, ESTIMATOR_FILE), "w", encoding="utf-8") as file:
            # NumPy values in model_params (e.g. explicit bins) are stored as lists.
            json.dump(state, file, indent=1, default=lambda value: np.asarray(value).tolist())


class TabularClassifier(ClassifierMixin, _TabularEstimator):
    """Attention model for classification of tables, with the scikit-learn API.

    Trains TabM (Gorishniy et al. 2025: an MLP that trains as an ensemble of 32), TabR
    (Gorishniy et al. 2024: retrieval attention over the training rows and their labels) or
    an FT-Transformer (Gorishniy et al. 2021) on a DataFrame or array. Numeric columns go
    through a quantile transform; categorical ones (strings, bools, pandas categories,
    numeric columns with at most two distinct values, or those named in ``categorical``)
    become integer codes with 0 for missing or unseen values. Predictions for one row never
    depend on the other rows passed with it (TabR retrieves from the stored training rows
    only).

    Args:
        model: ``"auto"`` (default: the model chosen on the benchmarks in BENCHMARKS.md,
            ``auto_model``: TabM on training splits of at most 2,000 rows, TabR above),
            ``"tabm"``, ``"tabr"`` or ``"ft_transformer"``.
        model_params: dict overriding the model's ``default_config()`` (after the
            estimator's own changes in ``ESTIMATOR_MODEL_PARAMS``; for TabR:
            ``d_main=128``, ``num_neighbors=16``, ``numeric_embedding="periodic"``,
            ``context_refresh="rolling"``, ``max_context_rows=16384``), e.g.
            ``{"k": 16, "d_block": 256}`` for TabM, ``{"n_blocks": 2, "d_token": 64}`` for
            the FT-Transformer or ``{"numeric_embedding": None}`` for TabR on raw numeric
            values. With ``"numeric_embedding": "piecewise"`` (TabM's default; any model)
            the bins are computed from the training rows: ``"bins"`` may be ``"quantile"``
            (default) or ``"tree"``, and ``"n_bins"`` (default 48) sets their number.
        epochs: maximum training epochs. Default 1000: in practice, until early stopping.
        batch_size: rows per step, or ``"auto"`` (default): 256, or on training splits of
            fewer than 4,096 rows the power of two (at least 32) that gives about 16 steps
            per epoch (``auto_batch_size``).
        learning_rate: AdamW learning rate. Default ``None``: TabM 2e-3 and FT-Transformer
            1e-4 (their papers'), TabR 1e-3 (paper 3.1e-4; see
            ``ESTIMATOR_OPTIMIZER_PARAMS``). TabR also keeps an exponential moving average
            of its weights (momentum 0.99, or ``1 - 1 / steps per epoch`` when that is
            smaller; none with one step per epoch): validation, early stopping and the
            fitted model use the average (``keras.callbacks.SwapEMAWeights``).
        weight_decay: AdamW weight decay (not on norms, biases, embeddings). Default
            ``None``: the model's paper default (TabM 3e-4, FT-Transformer 1e-5, TabR
            1.2e-6).
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

    Fitted attributes:
        ``models_`` (the Keras models of the ensemble, returning logits; one unless
        ``ensemble_size`` says otherwise), ``model_`` (the first of them), ``model_name_``
        (``"tabm"``, ``"tabr"`` or ``"ft_transformer"``), ``classes_``, ``n_features_in_``,
        ``feature_names_in_`` (DataFrame input only), ``histories_`` (one Keras history
        dict per model), ``history_`` and ``best_epoch_`` (the first model's),
        ``feature_importances_`` (one per input column, non-negative,
        summing to 1, computed on at most 2,048 validation rows: for the FT-Transformer the
        attention importance of Gorishniy et al. 2021 §5.3, a missing-value flag counting
        for its column; for TabM and TabR the drop of ``score`` when the column is shuffled, from
        ``sklearn.inspection.permutation_importance``, clipped at 0 and normalised),
        ``preprocessor_``.

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

    def __init__(self, model="auto", model_params=None, epochs=1000, batch_size="auto",
                 learning_rate=None, weight_decay=None, patience=16, validation_fraction=0.2,
                 categorical=None, numeric=None, time_limit=None, class_weight=None,
                 random_state=None, verbose=1, ensemble_size=None, callbacks=None):
        super().__init__(
            model=model, model_params=model_params, epochs=epochs, batch_size=batch_size,
            learning_rate=learning_rate, weight_decay=weight_decay, patience=patience,
            validation_fraction=validation_fraction, categorical=categorical, numeric=numeric,
            time_limit=time_limit, random_state=random_state, verbose=verbose,
            ensemble_size=ensemble_size, callbacks=callbacks,
        )
        self.class_weight = class_weight

    def _fit_target(self, target):
        self.classes_ = np.unique(target.to_numpy())
        if len(self.classes_) < 2:
            raise ValueError(
                "The target has a single class "
                f"({self.classes_[0]!r}); classification needs at least two"
            )

    def _encode_target(self, target):
        values = target.to_numpy()
        index = np.searchsorted(self.classes_, values)
        index = np.clip(index, 0, len(self.classes_) - 1)
        unknown = self.classes_[index] != values
        if unknown.any():
            raise ValueError(
                f"The target holds classes not seen in training: {sorted(set(values[unknown]))[:5]}"
            )
        index = index.astype("int32")
        return index.astype("float32")[:, None] if len(self.classes_) == 2 else index

    def _d_out(self):
        return 1 if len(self.classes_) == 2 else len(self.classes_)

    def _num_classes(self):
        return len(self.classes_)

    def _loss(self):
        if len(self.classes_) == 2:
            return keras.losses.BinaryCrossentropy(from_logits=True)
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def _metrics(self):
        if len(self.classes_) == 2:
            return [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)]
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def _class_weight(self, targets):
        if self.class_weight is None:
            return None
        labels = np.asarray(targets).ravel().astype(int)
        if self.class_weight == "balanced":
            present = np.unique(labels)
            weights = compute_class_weight("balanced", classes=present, y=labels)
            return {int(c): float(w) for c, w in zip(present, weights)}
        if isinstance(self.class_weight, dict):
            lookup = {c: i for i, c in enumerate(self.classes_.tolist())}
            unknown = [c for c in self.class_weight if c not in lookup]
            if unknown:
                raise ValueError(f"`class_weight` names unknown classes: {unknown}")
            return {lookup[c]: float(w) for c, w in self.class_weight.items()}
        raise ValueError(
            "`class_weight` must be None, 'balanced' or a dict {class: weight}. "
            f"Received: class_weight={self.class_weight!r}"
        )

    def predict_proba(self, X):
        """Class probabilities, ``(n_samples, n_classes)`` in the order of ``classes_``."""
        check_is_fitted(self, "model_")
        # An ensemble averages its members' probabilities.
        return np.mean([probabilities_from_logits(o) for o in self._member_outputs(X)], axis=0)

    def predict(self, X):
        """Most probable class for each row, ``(n_samples,)`` with the dtype of ``classes_``."""
        check_is_fitted(self, "model_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def _target_state(self):
        return {"classes": self.classes_.tolist()}

    def _load_target_state(self, state):
        self.classes_ = np.asarray(state["classes"])


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
        values = pd.to_numeric(target, errors="coerce")
        if values.isna().any():
            raise ValueError(
                "Regression needs a numeric target; it holds non-numeric values, e.g. "
                f"{target[values.isna()].astype(str).unique()[:3].tolist()}"
            )
        values = values.to_numpy(dtype="float64")
        if not np.isfinite(values).all():
            raise ValueError("The regression target holds infinite values")
        self.target_mean_ = float(values.mean())
        self.target_std_ = float(values.std()) or 1.0

    def _encode_target(self, target):
        values = pd.to_numeric(target).to_numpy(dtype="float64")
        return ((values - self.target_mean_) / self.target_std_).astype("float32")[:, None]

    def _d_out(self):
        return 1

    def _num_classes(self):
        return None

    def _loss(self):
        return keras.losses.MeanSquaredError()

    def _metrics(self):
        return None

    def _class_weight(self, targets):
        return None

    def predict(self, X):
        """Predicted target, ``(n_samples,)`` float64 in the target's units."""
        check_is_fitted(self, "model_")
        outputs = np.mean(self._member_outputs(X), axis=0)  # an ensemble's mean prediction
        return outputs[:, 0] * self.target_std_ + self.target_mean_

    def _target_state(self):
        return {"mean": self.target_mean_, "std": self.target_std_}

    def _load_target_state(self, state):
        self.target_mean_, self.target_std_ = state["mean"], state["std"]


def load(path):
    """Load an estimator saved with ``save(path)``; predictions are identical.

    Raises:
        FileNotFoundError: ``path`` is not a saved tabattn model directory.
    """
    state_path = os.path.join(path, ESTIMATOR_FILE)
    if not os.path.exists(state_path):
        raise FileNotFoundError(
            f"No saved tabattn model in {path!r} (expected {ESTIMATOR_FILE} there)"
        )
    with open(state_path, encoding="utf-8") as file:
        state = json.load(file)
    classes = {"TabularClassifier": TabularClassifier, "TabularRegressor": TabularRegressor}
    estimator = classes[state["class"]](**state["params"])
    estimator.histories_ = state.get("histories") or [state["history"]]
    estimator.models_ = [
        keras.saving.load_model(os.path.join(path, _member_file(member)))
        for member in range(len(estimator.histories_))
    ]
    estimator.model_ = estimator.models_[0]
    estimator.preprocessor_ = TabularPreprocessor.load(os.path.join(path, PREPROCESSING_FILE))
    estimator._columns = state["columns"]
    if state["has_feature_names"]:
        estimator.feature_names_in_ = np.asarray(state["columns"], dtype=object)
    estimator.n_features_in_ = state["n_features_in"]
    estimator.history_ = estimator.histories_[0]
    estimator.best_epoch_ = state["best_epoch"]
    estimator.model_name_ = state.get("model_name", "ft_transformer")
    estimator.feature_importances_ = np.asarray(state["feature_importances"])
    estimator._load_target_state(state["target"])
    return estimator


def probabilities_from_logits(logits):
    """Class probabilities ``(n, n_classes)`` from model logits, as NumPy float64.

    One logit column (binary, sigmoid) gives ``[1 - p, p]``; several give their softmax.
    """
    logits = np.asarray(logits, dtype="float64")
    if logits.shape[1] == 1:
        p = 1.0 / (1.0 + np.exp(-logits[:, 0]))
        return np.stack([1.0 - p, p], axis=1)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def classification_metrics(y_true, proba, classes):
    """``accuracy``, ``roc_auc`` and ``log_loss`` of class probabilities.

    Args:
        y_true: true labels, ``(n_samples,)``, values among ``classes``.
        proba: probabilities ``(n_samples, n_classes)`` in the order of ``classes``.
        classes: the class labels, sorted as in ``proba``.

    Returns:
        A dict of floats. ``roc_auc`` is that of the positive (second) class for binary
        targets and the one-vs-rest macro average for multiclass ones; it is left out when
        some class is absent from ``y_true``.
    """
    y_true, classes = np.asarray(y_true), np.asarray(classes)
    predicted = classes[np.argmax(proba, axis=1)]
    result = {"accuracy": float(sk_metrics.accuracy_score(y_true, predicted))}
    present = set(y_true.tolist())
    if len(classes) == 2 and len(present) == 2:
        result["roc_auc"] = float(sk_metrics.roc_auc_score(y_true == classes[1], proba[:, 1]))
    elif len(classes) > 2 and present == set(classes.tolist()):
        result["roc_auc"] = float(
            sk_metrics.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes)
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result["log_loss"] = float(sk_metrics.log_loss(y_true, proba, labels=classes))
    return result


def regression_metrics(y_true, predicted):
    """``rmse``, ``mae`` and ``r2`` of predictions, in the target's units."""
    truth = np.asarray(y_true, dtype="float64")
    predicted = np.asarray(predicted, dtype="float64").ravel()
    return {
        "rmse": float(np.sqrt(sk_metrics.mean_squared_error(truth, predicted))),
        "mae": float(sk_metrics.mean_absolute_error(truth, predicted)),
        "r2": float(sk_metrics.r2_score(truth, predicted)),
    }


def evaluation_metrics(estimator, X, y):
    """Metrics of a fitted estimator on ``(X, y)``, as a dict of floats.

    Classification: ``classification_metrics``; regression: ``regression_metrics``. Rows
    with a NaN target are dropped.
    """
    frame, target = estimator._frame_and_target(X, y, fitting=False)
    if isinstance(estimator, TabularClassifier):
        return classification_metrics(
            target.to_numpy(), estimator.predict_proba(frame), estimator.classes_
        )
    return regression_metrics(pd.to_numeric(target), estimator.predict(frame))
