"""Targets: what a model learns from a column of labels or values, and how it is scored.

One object per task holds the whole round trip, used by the estimators, the CLI and the
benchmarks alike: ``fit`` on the training labels, ``encode`` them as the model's training
targets, ``loss`` and ``metrics`` to compile with, ``decode`` the model's outputs back into
probabilities or values, and ``evaluate`` them. Needs the ``cli`` extra (pandas,
scikit-learn). ``target_for_task("classification")`` or ``("regression")`` makes one.
"""

import warnings

import keras
import numpy as np

try:
    import pandas as pd
    from sklearn import metrics as sk_metrics
    from sklearn.utils.multiclass import check_classification_targets
except ImportError as error:  # pragma: no cover
    raise ImportError(
        "tabattn.targets needs pandas and scikit-learn. Install them with: "
        "pip install 'tabattn[cli]'"
    ) from error


def _values(y):
    # Object arrays of numbers (e.g. ``y.astype(object)``) as numbers.
    return pd.Series(np.asarray(y).ravel()).infer_objects().to_numpy()


class ClassificationTarget:
    """Class labels as model targets: one logit column (sigmoid) for two classes, one per
    class (softmax) for more.

    After ``fit``: ``classes_``, the sorted class labels.
    """

    task = "classification"

    def fit(self, y):
        """Learn the classes of ``y`` (array-like, no missing values).

        Raises:
            ValueError: continuous values ("Unknown label type", scikit-learn's check), labels
                of mixed types, or a single class.
        """
        values = _values(y)
        check_classification_targets(values)
        try:
            self.classes_ = np.unique(values)
        except TypeError:
            kinds = sorted({type(v).__name__ for v in values})
            raise ValueError(
                f"The target mixes value types {kinds}: give every class label one type"
            ) from None
        if len(self.classes_) < 2:
            raise ValueError(
                f"The target has only one class ({self.classes_[0]!r}); classification needs "
                "at least two"
            )
        return self

    @property
    def d_out(self):
        return 1 if len(self.classes_) == 2 else len(self.classes_)

    @property
    def num_classes(self):
        return len(self.classes_)

    def encode(self, y):
        """Class indices: float32 ``(n, 1)`` for two classes, int32 ``(n,)`` for more.

        Raises:
            ValueError: ``y`` holds classes not seen in ``fit``.
        """
        values = _values(y)
        index = np.clip(np.searchsorted(self.classes_, values), 0, len(self.classes_) - 1)
        unknown = self.classes_[index] != values
        if unknown.any():
            raise ValueError(
                f"The target holds classes not seen in training: {sorted(set(values[unknown]))[:5]}"
            )
        index = index.astype("int32")
        return index.astype("float32")[:, None] if len(self.classes_) == 2 else index

    def loss(self):
        if len(self.classes_) == 2:
            return keras.losses.BinaryCrossentropy(from_logits=True)
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self):
        if len(self.classes_) == 2:
            return [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)]
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def decode(self, logits):
        """Class probabilities, float64 ``(n, n_classes)`` in the order of ``classes_``."""
        return probabilities_from_logits(logits)

    def evaluate(self, y_true, proba):
        """``classification_metrics`` of probabilities ``proba`` against labels ``y_true``."""
        return classification_metrics(_values(y_true), proba, self.classes_)

    def to_dict(self):
        return {"classes": self.classes_.tolist()}

    @classmethod
    def from_dict(cls, state):
        self = cls()
        self.classes_ = np.asarray(state["classes"])
        return self


class RegressionTarget:
    """Numeric values as model targets, standardised with the training mean and std; trained
    with mean squared error, decoded back into the target's units.

    After ``fit``: ``mean_``, ``std_`` (1 for a constant target).
    """

    task = "regression"
    d_out = 1
    num_classes = None

    def fit(self, y):
        """Learn the mean and std of ``y`` (numbers, no missing values).

        Raises:
            ValueError: non-numeric or infinite values, or values beyond ±1e300.
        """
        from tabattn.data import MAX_ABS_VALUE

        values = self._numbers(y)
        infinite = int(np.isinf(values).sum())
        if infinite:
            raise ValueError(
                f"The regression target holds {infinite} infinite values; replace or drop "
                "those rows"
            )
        huge = int((np.abs(values) > MAX_ABS_VALUE).sum())
        if huge:
            raise ValueError(
                f"The regression target holds {huge} values too large to compute with "
                f"(beyond ±{MAX_ABS_VALUE:g}, near the largest float); rescale it (e.g. take "
                "its logarithm)"
            )
        # Scaled first, so that values beyond 1e154 do not overflow the variance.
        scale = float(np.abs(values).max()) or 1.0
        self.mean_ = float(np.mean(values / scale) * scale)
        self.std_ = float(np.std(values / scale) * scale) or 1.0
        return self

    @staticmethod
    def _numbers(y):
        series = pd.Series(np.asarray(y).ravel())
        values = pd.to_numeric(series, errors="coerce")
        if values.isna().any():
            raise ValueError(
                "Regression needs a numeric target; it holds non-numeric values, e.g. "
                f"{series[values.isna()].astype(str).unique()[:3].tolist()}"
            )
        return values.to_numpy(dtype="float64")

    def encode(self, y):
        """Standardised values, float32 ``(n, 1)``."""
        return ((self._numbers(y) - self.mean_) / self.std_).astype("float32")[:, None]

    def loss(self):
        return keras.losses.MeanSquaredError()

    def metrics(self):
        return None

    def decode(self, outputs):
        """Values in the target's units, float64 ``(n,)``, from outputs ``(n, 1)``."""
        return np.asarray(outputs, dtype="float64")[:, 0] * self.std_ + self.mean_

    def evaluate(self, y_true, predicted):
        """``regression_metrics`` of ``predicted`` against ``y_true``."""
        return regression_metrics(self._numbers(y_true), predicted)

    def to_dict(self):
        return {"mean": self.mean_, "std": self.std_}

    @classmethod
    def from_dict(cls, state):
        self = cls()
        self.mean_, self.std_ = state["mean"], state["std"]
        return self


def target_for_task(task):
    """An unfitted ``ClassificationTarget`` or ``RegressionTarget`` for ``task``.

    Raises:
        ValueError: ``task`` is neither ``"classification"`` nor ``"regression"``.
    """
    kinds = {"classification": ClassificationTarget, "regression": RegressionTarget}
    if task not in kinds:
        raise ValueError(
            f"`task` must be 'classification' or 'regression'. Received: task={task!r}"
        )
    return kinds[task]()


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
