"""Explanations of single predictions of the tabattn estimators.

``explain(estimator, X)`` (also ``estimator.explain(X)``) gives, for every row of ``X``:

- **SHAP values** (Lundberg & Lee, "A Unified Approach to Interpreting Model Predictions",
  NeurIPS 2017) of the prediction on the raw columns, categorical ones included, computed by
  the ``shap`` library's permutation explainer (Štrumbelj & Kononenko 2014) against a
  background of training rows. A row's values sum to its prediction minus the mean
  prediction over the background (the base value): probabilities per class for a
  classifier, the target's units for a regressor.
- what the model itself holds: for TabR, the training rows it retrieved and their attention
  weights (Gorishniy et al., "TabR", ICLR 2024, §3); for ModernNCA, the training rows of
  largest weight in its softmax over all of them (Ye et al., ICLR 2025, §4); for the
  FT-Transformer, the [CLS] token's attention to each column, averaged over heads and
  blocks (Gorishniy et al., "Revisiting Deep Learning Models for Tabular Data", NeurIPS
  2021, §5.3).

The estimators keep ``BACKGROUND_ROWS`` training rows (a seeded uniform sample) for this, and
save them with the model, so a loaded model explains without its training data.
"""

import numpy as np

BACKGROUND_ROWS = 100


class Explanation:
    """What ``explain`` returns for ``n_rows`` rows of ``n_columns`` columns.

    Attributes:
        shap: a ``shap.Explanation``: ``values`` float64 ``(n_rows, n_columns)`` for a
            regressor (target units) or ``(n_rows, n_columns, n_classes)`` for a classifier
            (probabilities, classes in the order of ``classes_``); ``base_values``
            ``(n_rows,)`` or ``(n_rows, n_classes)``; ``data``, the rows' raw values
            (object array); ``feature_names``, the columns. ``shap.plots.waterfall(
            explanation.shap[i])`` (regressor) or ``explanation.shap[i, :, c]``
            (classifier, class index ``c``) draws row ``i``.
        predictions: the estimator's predictions for the rows: probabilities float64
            ``(n_rows, n_classes)`` or values ``(n_rows,)``.
        classes: the classes (classifier) or ``None``.
        neighbors: TabR and ModernNCA only (else ``None``): a DataFrame with a line per row
            and retrieved training row, nearest first: ``row`` (position in ``X``), ``rank``
            (0 nearest), ``training_row`` (position of the retrieved row in the ``X`` given
            to ``fit``), ``target`` (its training label or value) and ``weight`` (its
            attention weight). TabR: its ``num_neighbors`` rows, whose weights sum to 1.
            ModernNCA: the 8 rows of largest weight in its softmax over every stored row, so
            a row's weights sum to at most 1.
        attention: FT-Transformer only (else ``None``): a DataFrame ``(n_rows,
            n_columns)`` of the [CLS] token's attention to each column (a column's missing
            flag counts for it), averaged over heads and blocks; a row sums to at most 1
            (the rest is the [CLS] token's attention to itself).
    """

    def __init__(self, shap_values, predictions, classes=None, neighbors=None, attention=None):
        self.shap = shap_values
        self.predictions = predictions
        self.classes = classes
        self.neighbors = neighbors
        self.attention = attention

    def to_frame(self):
        """The SHAP values as a long DataFrame: one line per row, column (and class):
        ``row``, ``column``, ``value`` (the row's raw value), ``class`` (classifier only),
        ``base_value``, ``contribution``."""
        import pandas as pd

        values, data = np.asarray(self.shap.values), np.asarray(self.shap.data, dtype=object)
        n_rows, n_columns = data.shape
        base = np.asarray(self.shap.base_values)
        frame = {
            "row": np.repeat(np.arange(n_rows), n_columns),
            "column": np.tile(np.asarray(self.shap.feature_names, dtype=object), n_rows),
            "value": data.reshape(-1),
        }
        if self.classes is None:
            return pd.DataFrame({
                **frame, "base_value": np.repeat(base, n_columns),
                "contribution": values.reshape(-1),
            })
        n_classes = len(self.classes)
        return pd.DataFrame({
            **{k: np.repeat(v, n_classes) for k, v in frame.items()},
            "class": np.tile(np.asarray(self.classes, dtype=object), n_rows * n_columns),
            "base_value": np.repeat(base, n_columns, axis=0).reshape(-1),
            "contribution": values.reshape(-1),
        })


class _Codes:
    """Raw columns as one float matrix for shap's masker: numeric columns as they are, any
    other column as the index of its value in a vocabulary (-1: missing)."""

    def __init__(self, columns, numeric, frames):
        self.columns, self.numeric = list(columns), set(numeric)
        self.vocabularies = {}
        for column in self.columns:
            if column not in self.numeric:
                values = [v for frame in frames for v in frame[column].tolist()]
                seen = {}
                for value in values:
                    if not _missing(value):
                        seen.setdefault((type(value), value), value)
                self.vocabularies[column] = list(seen.values())

    def encode(self, frame):
        out = np.empty(frame.shape, dtype="float64")
        for j, column in enumerate(self.columns):
            if column in self.numeric:
                out[:, j] = frame[column].to_numpy(dtype="float64", na_value=np.nan)
            else:
                index = {(type(v), v): i for i, v in enumerate(self.vocabularies[column])}
                out[:, j] = [
                    -1 if _missing(v) else index[(type(v), v)] for v in frame[column].tolist()
                ]
        return out

    def decode(self, codes):
        import pandas as pd

        columns = {}
        for j, column in enumerate(self.columns):
            if column in self.numeric:
                columns[column] = codes[:, j]
            else:
                vocabulary = np.asarray(self.vocabularies[column] + [None], dtype=object)
                index = codes[:, j].astype("int64")
                columns[column] = vocabulary[np.where(index < 0, len(vocabulary) - 1, index)]
        return pd.DataFrame(columns)


def _missing(value):
    return value is None or (isinstance(value, float) and np.isnan(value))


def explain(estimator, X, background=None, max_evals="auto", random_state=0):
    """Explain a fitted estimator's predictions for the rows of ``X``.

    Args:
        estimator: a fitted ``TabularClassifier`` or ``TabularRegressor`` (or one loaded
            with ``tabattn.load``).
        X: the rows to explain, as for ``predict`` (a DataFrame or 2-D array with the
            fitted columns).
        background: rows that stand for "a column's value unknown" (as for ``predict``);
            default: the ``BACKGROUND_ROWS`` training rows the estimator kept.
            Each explained row costs about ``max_evals * len(background)`` predictions.
        max_evals: model evaluations per row of shap's permutation explainer: ``"auto"``
            (default) is ``max(500, 2 * n_columns + 1)`` (shap's default, raised to the
            least it accepts); more gives less noisy values on wide tables.
        random_state: seed of the explainer's permutations (int).

    Returns:
        ``Explanation`` (see its attributes).

    Raises:
        ImportError: ``shap`` is not installed (``pip install 'tabattn[cli]'``).
        sklearn.exceptions.NotFittedError: the estimator is not fitted.
        ValueError: ``X`` or ``background`` does not have the fitted columns, or is empty;
            ``max_evals`` below ``2 * n_columns + 1``.
    """
    try:
        import shap
    except ImportError as error:  # pragma: no cover - shap is in the cli extra
        raise ImportError(
            "explain needs the shap library. Install it with: pip install 'tabattn[cli]'"
        ) from error
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator, "model_")
    frame = estimator._check_X(X, reset=False)
    if background is None:
        background = getattr(estimator, "background_", None)
        if background is None:
            raise ValueError(
                "This estimator kept no background rows (saved by an older tabattn): pass "
                "background=, e.g. a sample of about 100 training rows"
            )
    try:
        background = estimator._check_X(background, reset=False)
    except ValueError as error:
        raise ValueError(f"`background`: {error}") from error
    n_columns = frame.shape[1]
    least = 2 * n_columns + 1
    if max_evals == "auto":
        max_evals = max(500, least)
    elif not isinstance(max_evals, (int, np.integer)) or max_evals < least:
        raise ValueError(
            f"`max_evals` must be 'auto' or an integer of at least 2 * n_columns + 1 = "
            f"{least} for {n_columns} columns. Received: max_evals={max_evals!r}"
        )
    codes = _Codes(frame.columns, estimator.preprocessor_.numeric_columns_, [background, frame])
    classifier = hasattr(estimator, "classes_")
    respond = estimator.predict_proba if classifier else estimator.predict

    def predict(matrix):
        return respond(codes.decode(matrix))

    explainer = shap.explainers.Permutation(
        predict, shap.maskers.Independent(codes.encode(background), max_samples=len(background)),
        feature_names=list(frame.columns), seed=random_state,
    )
    result = explainer(codes.encode(frame), max_evals=int(max_evals), silent=True)
    result.data = frame.to_numpy(dtype=object)
    predictions = respond(frame)
    return Explanation(
        result, predictions, classes=estimator.classes_ if classifier else None,
        neighbors=_neighbors(estimator, frame), attention=_attention(estimator, frame),
    )


def _neighbors(estimator, frame):
    from tabattn.models import ModernNCA, TabR

    model = estimator.model_
    if not isinstance(model, (ModernNCA, TabR)):
        return None
    import pandas as pd

    indices, weights = model.neighbors(estimator.preprocessor_.transform(frame))
    labels = model.stored_labels()[indices]
    if hasattr(estimator, "classes_"):
        targets = np.asarray(estimator.classes_, dtype=object)[labels.astype("int64")]
    else:
        targets = estimator.target_.decode(labels.reshape(-1, 1)).reshape(labels.shape)
    n_rows, k = indices.shape
    context_rows = getattr(estimator, "context_rows_", None)
    training_rows = (
        np.asarray(context_rows)[indices] if context_rows is not None
        else np.full(indices.shape, -1)
    )
    return pd.DataFrame({
        "row": np.repeat(np.arange(n_rows), k),
        "rank": np.tile(np.arange(k), n_rows),
        "training_row": training_rows.reshape(-1),
        "target": targets.reshape(-1),
        "weight": weights.reshape(-1).astype("float64"),
    })


def _attention(estimator, frame):
    if estimator.model_name_ != "ft_transformer":
        return None
    import pandas as pd

    maps = estimator.model_.attention_maps(estimator.preprocessor_.transform(frame))
    per_token = maps[..., :-1].astype("float64").mean(axis=1)  # (rows, tokens): mean of blocks
    per_column = pd.DataFrame(0.0, index=range(len(frame)), columns=list(frame.columns))
    for j, column in enumerate(estimator.preprocessor_.token_columns_):
        per_column[column] += per_token[:, j]  # a missing flag counts for its column
    return per_column
