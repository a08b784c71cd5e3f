"""Checks and encodings shared by the models that read a table's numeric and categorical
columns (TabM, TabR, ModernNCA)."""

import numpy as np
from keras import ops

from tabattn.layers import _checks
from tabattn.layers.embeddings import PeriodicEmbedding, PiecewiseLinearEncoding


def table_columns(model, n_num_features, categorical_cardinalities):
    """``(n_num_features, categorical_cardinalities)`` checked, as ``(int, tuple of int)``.

    Raises:
        ValueError: ``n_num_features`` is not a non-negative integer, a cardinality is not a
            positive integer, or there is no column at all.
    """
    if isinstance(n_num_features, bool) or int(n_num_features) != n_num_features or (
        n_num_features < 0
    ):
        raise ValueError(
            "`n_num_features` must be a non-negative integer. "
            f"Received: n_num_features={n_num_features!r}"
        )
    cardinalities = tuple(
        _checks.positive_int(f"categorical_cardinalities[{j}]", c)
        for j, c in enumerate(categorical_cardinalities or ())
    )
    if int(n_num_features) + len(cardinalities) == 0:
        raise ValueError(f"{model} needs at least one numeric or categorical feature.")
    return int(n_num_features), cardinalities


def known_codes(categorical, cardinalities):
    """int32 codes with every code outside ``0..cardinality`` (an unseen category) read as 0,
    the code of missing and unseen values."""
    codes = ops.cast(categorical, "int32")
    known = ops.logical_and(
        codes >= 0, codes <= ops.convert_to_tensor(cardinalities, dtype="int32")
    )
    return ops.where(known, codes, 0)


def numeric_embedding_options(numeric_embedding, bins, n_num_features, embedding_dim,
                              n_frequencies, frequency_init_scale):
    """``(numeric_embedding, embedding_dim, n_frequencies, frequency_init_scale)`` checked.

    Raises:
        ValueError: an unknown ``numeric_embedding``; ``bins`` missing with ``"piecewise"``
            and numeric features, or given otherwise; a size that is not a positive integer
            or a scale that is not a number > 0.
    """
    _checks.one_of("numeric_embedding", numeric_embedding, (None, "periodic", "piecewise"))
    if (bins is None) == (numeric_embedding == "piecewise" and n_num_features > 0):
        raise ValueError(
            '`bins` must be given with numeric_embedding="piecewise" (and numeric '
            "features), and only then: e.g. bins=compute_bins(x_train_numeric). "
            f"Received: numeric_embedding={numeric_embedding!r}, "
            f"bins={'None' if bins is None else 'given'}"
        )
    return (
        numeric_embedding,
        _checks.positive_int("embedding_dim", embedding_dim),
        _checks.positive_int("n_frequencies", n_frequencies),
        _checks.positive_float("frequency_init_scale", frequency_init_scale),
    )


def context_arrays(inputs, n_num_features, cardinalities):
    """``(numeric, categorical)`` of stored rows given as a dict like a model call's inputs:
    float32 ``(n, n_num_features)`` and int32 ``(n, len(cardinalities))`` NumPy arrays
    (``"row_index"`` is ignored).

    Raises:
        ValueError: ``inputs`` is not a dict, the arrays do not have the model's columns,
            numeric values are not finite, or categorical codes are not whole numbers in
            ``[0, cardinality]``.
    """
    if not isinstance(inputs, dict):
        raise ValueError(
            "`inputs` must be a dict with 'numeric' and/or 'categorical' arrays. "
            f"Received: {type(inputs).__name__}"
        )
    numeric = inputs.get("numeric")
    categorical = inputs.get("categorical")
    n = len(next(v for k, v in inputs.items() if k != "row_index"))
    numeric = np.zeros((n, 0), "float32") if numeric is None else np.asarray(
        numeric, dtype="float32"
    )
    if categorical is None:
        categorical = np.zeros((n, 0), "int32")
    else:
        categorical = np.asarray(categorical)
        if categorical.dtype.kind == "f":
            if not np.all(np.isfinite(categorical)) or np.any(categorical % 1):
                raise ValueError(
                    "The context's categorical codes must be whole numbers; received "
                    "NaN, infinite or fractional values."
                )
        categorical = categorical.astype("int32")
    n_cat = len(cardinalities)
    if numeric.shape != (n, n_num_features) or categorical.shape != (n, n_cat):
        raise ValueError(
            f"The context must have {n_num_features} numeric and {n_cat} categorical "
            f"columns. Received: numeric {numeric.shape}, categorical {categorical.shape}"
        )
    if not np.isfinite(numeric).all():
        raise ValueError("The context's numeric features hold NaN or infinite values.")
    for j, cardinality in enumerate(cardinalities):
        column = categorical[:, j]
        if len(column) and (column.min() < 0 or column.max() > cardinality):
            raise ValueError(
                f"Categorical column {j} of the context must hold codes in [0, "
                f"{cardinality}] (0 = missing/unseen). Received values in "
                f"[{column.min()}, {column.max()}]"
            )
    return numeric, categorical


def context_labels(labels, n, num_classes):
    """The stored rows' labels as a ``(n,)`` array: float32 for regression (``num_classes``
    ``None``), int32 class indices otherwise; ``(n, 1)`` is accepted.

    Raises:
        ValueError: another shape, non-finite regression labels, or class labels that are
            not whole numbers in ``[0, num_classes)``.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(
            f"`labels` must have shape ({n},) to match the context rows. "
            f"Received: labels.shape={labels.shape}"
        )
    if num_classes is None:
        labels = labels.astype("float32")
        if not np.isfinite(labels).all():
            raise ValueError("`labels` of a regression context must be finite.")
        return labels
    if not np.all(np.equal(np.mod(labels, 1), 0)) or labels.min() < 0 or (
        labels.max() >= num_classes
    ):
        raise ValueError(
            f"`labels` must be class indices in [0, {num_classes}). "
            f"Received values in [{labels.min()}, {labels.max()}]"
        )
    return labels.astype("int32")


def context_sample(n_rows, max_context_rows, seed=None):
    """The positions, sorted, of the rows a retrieval model stores out of ``n_rows``: all of
    them, or a uniform sample of ``max_context_rows`` drawn with ``seed`` (an int or
    ``None``). Returns an int64 NumPy array."""
    if max_context_rows is None or n_rows <= max_context_rows:
        return np.arange(n_rows)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_rows, max_context_rows, replace=False))


def numeric_embedding_layer(numeric_embedding, bins, n_num_features, embedding_dim,
                            n_frequencies, frequency_init_scale):
    """The numeric embedding of a retrieval model (TabR, ModernNCA): ``(periodic,
    piecewise, bins, d_numeric)``: a ``PeriodicEmbedding(lite=True)`` or a
    ``PiecewiseLinearEncoding`` (the other ``None``; both ``None`` for raw values or no
    numeric feature), the bin edges as lists (or ``None``) and the width of the flattened
    numeric input.

    Raises:
        ValueError: ``bins`` does not hold one array of edges per numeric feature.
    """
    periodic = piecewise = None
    edges = None
    d_numeric = n_num_features
    if numeric_embedding == "periodic" and n_num_features:
        periodic = PeriodicEmbedding(
            embedding_dim=embedding_dim, n_frequencies=n_frequencies,
            frequency_init_scale=frequency_init_scale, lite=True, name="numeric_embedding",
        )
        d_numeric = n_num_features * embedding_dim
    elif numeric_embedding == "piecewise" and n_num_features:
        piecewise = PiecewiseLinearEncoding(bins, name="numeric_embedding")
        edges = piecewise.get_config()["bins"]
        if len(edges) != n_num_features:
            raise ValueError(
                f"`bins` must hold one array of edges per numeric feature "
                f"({n_num_features}). Received {len(edges)}"
            )
        d_numeric = n_num_features * max(len(e) - 1 for e in edges)
    return periodic, piecewise, edges, d_numeric


def stored_context(model, inputs, labels, seed):
    """``(numeric, categorical, labels, kept)``: the rows a retrieval model (TabR,
    ModernNCA) stores from ``inputs`` and ``labels``, checked (``context_arrays``,
    ``context_labels``) and sampled to its ``max_context_rows`` with ``seed``; ``kept`` are
    their positions in ``inputs`` (int64). Sets ``model.context_rows`` on the first call.

    Raises:
        ValueError: as ``context_arrays`` and ``context_labels``, or the model was built for
            a context of another size.
    """
    numeric, categorical = context_arrays(
        inputs, model.n_num_features, model.categorical_cardinalities
    )
    n = len(numeric)
    labels = context_labels(labels, n, model.num_classes)
    kept = context_sample(n, model.max_context_rows, seed)
    if len(kept) < n:
        numeric, categorical, labels = numeric[kept], categorical[kept], labels[kept]
        n = len(kept)
    if model.context_rows is None:
        model.context_rows = n
    elif n != model.context_rows:
        raise ValueError(
            f"This {type(model).__name__} was built for a context of {model.context_rows} "
            f"rows. Received {n} rows; build a new model for a context of another size."
        )
    return numeric, categorical, labels, kept
