"""Checks and encodings shared by the models that read a table's numeric and categorical
columns (TabM, TabR)."""

from keras import ops

from tabattn.layers import _checks


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
