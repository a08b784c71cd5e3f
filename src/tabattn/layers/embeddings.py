"""Feature tokenizers: turn the columns of a table into tokens for attention layers.

Besides the linear tokenizer of FT-Transformer, this module holds the numeric feature
embeddings of Gorishniy et al. (NeurIPS 2022): periodic embeddings (PLR) and the
piecewise-linear encoding (PLE) with its bins (``compute_bins``) and embedding.
"""

__all__ = [
    "CLSToken",
    "FeatureTokenizer",
    "PeriodicEmbedding",
    "PiecewiseLinearEmbedding",
    "PiecewiseLinearEncoding",
    "compute_bins",
]

import math
import numbers

import keras
import numpy as np
from keras import ops

from tabattn.layers import _checks


def _uniform(d_token):
    # rtdl's initialisation for tokenizer weights and biases: U(-1/sqrt(d), 1/sqrt(d)).
    limit = 1.0 / math.sqrt(d_token)
    return keras.initializers.RandomUniform(-limit, limit)


def _split_inputs(inputs):
    """Return ``(numeric, categorical)`` from a tensor or a dict; either may be ``None``."""
    if isinstance(inputs, dict):
        unknown = set(inputs) - {"numeric", "categorical"}
        if unknown:
            raise ValueError(
                "FeatureTokenizer expects a dict with keys 'numeric' and/or 'categorical'. "
                f"Received unknown keys: {sorted(unknown)}"
            )
        return inputs.get("numeric"), inputs.get("categorical")
    return inputs, None


_NUMERIC_EMBEDDINGS = ("linear", "periodic", "piecewise")


def _truncated_normal(stddev, bound=3.0):
    """Initializer drawing from N(0, stddev^2) truncated to [-bound * stddev, bound * stddev].

    ``keras.initializers.TruncatedNormal`` always cuts at two standard deviations; rtdl cuts
    at three. Sampling inverts the normal CDF: ``stddev * sqrt(2) * erfinv(u)`` with ``u``
    uniform on ``(-erf(bound / sqrt(2)), erf(bound / sqrt(2)))``.
    """
    limit = math.erf(bound / math.sqrt(2.0))
    uniform = keras.initializers.RandomUniform(-limit, limit)

    def initializer(shape, dtype=None):
        z = uniform(shape, dtype="float32")
        return ops.cast(stddev * math.sqrt(2.0) * ops.erfinv(z), dtype or "float32")

    return initializer


def _check_bins(bins):
    """Return ``bins`` as a tuple of tuples of floats, or raise ``ValueError``.

    Each entry must be a 1-D sequence of at least two finite, strictly increasing edges;
    they must stay strictly increasing in float32, the precision the layers compute in.
    """
    if bins is None or isinstance(bins, (str, bytes)) or len(bins) == 0:
        raise ValueError(
            "`bins` must be a non-empty list with one 1-D array of bin edges per feature, "
            f"e.g. from `compute_bins(x_train)`. Received: bins={bins!r}"
        )
    checked = []
    for j, edges in enumerate(bins):
        name = f"bins[{j}]"
        edges = np.asarray(edges, dtype="float64")
        if edges.ndim != 1 or len(edges) < 2:
            raise ValueError(
                f"`{name}` must be a 1-D array of at least 2 bin edges. "
                f"Received: {name}.shape={edges.shape}"
            )
        if not np.isfinite(edges).all():
            raise ValueError(
                f"`{name}` must contain only finite edges. Received: {name}={edges.tolist()}"
            )
        if not (np.diff(edges) > 0).all() or not (np.diff(edges.astype("float32")) > 0).all():
            raise ValueError(
                f"`{name}` must be strictly increasing, also once rounded to float32. "
                f"Received: {name}={edges.tolist()}"
            )
        checked.append(tuple(float(e) for e in edges))
    return tuple(checked)


def _check_n_features(layer, n_bins_features, input_shape):
    """Raise ``ValueError`` unless the input has one column per entry of ``bins``."""
    if input_shape[-1] != n_bins_features:
        raise ValueError(
            f"{layer} was given bins for {n_bins_features} features, but the input has "
            f"{input_shape[-1]} columns. Received: inputs.shape={tuple(input_shape)}"
        )


def _ple_tables(bins):
    """Left edges, widths and clip bounds of the piecewise-linear encoding.

    Returns four float32 arrays of shape ``(n_features, max_n_bins)``. Padding positions
    (beyond a feature's own bins) have left edge 0, width 1 and bounds ``[0, 0]``, so they
    encode to exactly 0.
    """
    n_features = len(bins)
    max_n_bins = max(len(edges) - 1 for edges in bins)
    left = np.zeros((n_features, max_n_bins))
    width = np.ones((n_features, max_n_bins))
    low = np.zeros((n_features, max_n_bins))
    high = np.zeros((n_features, max_n_bins))
    for j, edges in enumerate(bins):
        edges = np.asarray(edges, dtype="float64")
        n_bins = len(edges) - 1
        left[j, :n_bins] = edges[:-1]
        width[j, :n_bins] = np.diff(edges)
        high[j, :n_bins] = 1.0
        # rtdl's rule: the first bin is open below, the last open above; a single bin is
        # both, i.e. plain min-max scaling without any clipping.
        low[j, 0] = -np.inf
        high[j, n_bins - 1] = np.inf
    return tuple(a.astype("float32") for a in (left, width, low, high))


@keras.saving.register_keras_serializable(package="tabattn")
class FeatureTokenizer(keras.layers.Layer):
    """Feature tokenizer: one ``d_token`` token per column of a table.

    A numeric feature ``x_j`` becomes ``x_j * W_j + b_j`` (``W_j``, ``b_j`` learned vectors of
    size ``d_token``); a categorical feature with integer code ``c`` becomes ``E_j[c] + b_j``,
    a row of its own learned embedding table. Numeric tokens come first, then categorical
    ones, in column order.

    ``numeric_embedding`` swaps the linear numeric tokens for a richer embedding of size
    ``d_token``: ``"periodic"`` uses a ``PeriodicEmbedding`` (PLR) and ``"piecewise"`` a
    ``PiecewiseLinearEmbedding`` over the given ``bins``. Categorical tokens are unchanged.

    Code 0 of every categorical feature is reserved for "missing or unseen": a feature with
    cardinality ``n`` accepts codes ``0..n`` (``n + 1`` embedding rows), where ``1..n`` are
    the known categories.

    Each row is tokenized on its own: the output does not depend on other rows of the batch.

    Args:
        d_token: size of each token, a positive integer.
        categorical_cardinalities: number of known categories of each categorical feature
            (excluding the reserved code 0), a sequence of positive integers. Default ``()``:
            numeric features only.
        numeric_embedding: how numeric features become tokens: ``"linear"`` (default,
            ``x_j * W_j + b_j``), ``"periodic"`` (``PeriodicEmbedding``) or ``"piecewise"``
            (``PiecewiseLinearEmbedding``, needs ``bins``).
        bins: bin edges of each numeric feature, e.g. ``compute_bins(x_train)``; required
            with ``numeric_embedding="piecewise"`` and not allowed otherwise.
        n_frequencies: ``PeriodicEmbedding``'s number of frequencies per feature, a
            positive integer. Default 48; used only with ``"periodic"``.
        frequency_init_scale: ``PeriodicEmbedding``'s initial frequency scale, a number
            > 0. Default 0.01; used only with ``"periodic"``.
        lite: ``PeriodicEmbedding``'s ``lite`` (one linear layer shared by all features).
            Default ``False``; used only with ``"periodic"``.
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: either a float tensor of numeric features ``(batch_size, n_num)``, or a dict
            with keys ``"numeric"`` (float, ``(batch_size, n_num)``) and/or
            ``"categorical"`` (integer codes, ``(batch_size, n_cat)``). Float-typed codes are
            accepted and cast to int32.

    Returns:
        Tokens of shape ``(batch_size, n_num + n_cat, d_token)``.

    Raises:
        ValueError: if ``d_token`` or a cardinality is not a positive integer; if
            ``numeric_embedding`` is unknown, or ``bins`` is missing with ``"piecewise"``,
            given with another option, invalid, or not one entry per numeric column; if the
            categorical input's width differs from ``len(categorical_cardinalities)``; if
            categorical cardinalities are given but no categorical input is passed; if an
            input is not of rank 2; or if there are no features at all.

    Example:

    >>> import numpy as np
    >>> tokenizer = FeatureTokenizer(d_token=8, categorical_cardinalities=(3, 5))
    >>> numeric = np.random.rand(4, 2).astype("float32")
    >>> codes = np.array([[0, 1], [3, 5], [2, 0], [1, 4]], dtype="int32")
    >>> tuple(tokenizer({"numeric": numeric, "categorical": codes}).shape)
    (4, 4, 8)
    >>> periodic = FeatureTokenizer(d_token=8, numeric_embedding="periodic")
    >>> tuple(periodic(numeric).shape)
    (4, 2, 8)
    >>> piecewise = FeatureTokenizer(
    ...     d_token=8, numeric_embedding="piecewise", bins=compute_bins(numeric, n_bins=2)
    ... )
    >>> tuple(piecewise(numeric).shape)
    (4, 2, 8)

    Reference:
        Gorishniy et al., "Revisiting Deep Learning Models for Tabular Data", NeurIPS 2021,
        §3.3 (Feature Tokenizer); Gorishniy, Rubachev, Babenko, "On Embeddings for
        Numerical Features in Tabular Deep Learning", NeurIPS 2022 (numeric embeddings).
    """

    def __init__(
        self,
        d_token,
        categorical_cardinalities=(),
        numeric_embedding="linear",
        bins=None,
        n_frequencies=48,
        frequency_init_scale=0.01,
        lite=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.d_token = _checks.positive_int("d_token", d_token)
        cardinalities = tuple(categorical_cardinalities or ())
        for j, n in enumerate(cardinalities):
            _checks.positive_int(f"categorical_cardinalities[{j}]", n)
        self.categorical_cardinalities = tuple(int(n) for n in cardinalities)
        self.numeric_embedding = _checks.one_of(
            "numeric_embedding", numeric_embedding, _NUMERIC_EMBEDDINGS
        )
        if numeric_embedding == "piecewise" and bins is None:
            raise ValueError(
                "`numeric_embedding='piecewise'` needs `bins`, one array of bin edges per "
                "numeric feature, e.g. `bins=compute_bins(x_train)`. Received: bins=None"
            )
        if numeric_embedding != "piecewise" and bins is not None:
            raise ValueError(
                "`bins` is used only with `numeric_embedding='piecewise'`. Received: "
                f"numeric_embedding={numeric_embedding!r} and bins. Pass "
                "numeric_embedding='piecewise' or drop `bins`."
            )
        self.bins = None if bins is None else _check_bins(bins)
        self.n_frequencies = _checks.positive_int("n_frequencies", n_frequencies)
        self.frequency_init_scale = _checks.positive_float(
            "frequency_init_scale", frequency_init_scale
        )
        self.lite = bool(lite)

    def build(self, input_shape):
        numeric_shape, categorical_shape = _split_inputs(input_shape)
        name = type(self).__name__
        self.n_num = 0
        if numeric_shape is not None:
            _checks.rank("numeric", numeric_shape, 2, name)
            self.n_num = numeric_shape[-1]
        n_cat = len(self.categorical_cardinalities)
        if categorical_shape is not None:
            _checks.rank("categorical", categorical_shape, 2, name)
            if categorical_shape[-1] != n_cat:
                raise ValueError(
                    f"{name} was given categorical_cardinalities for {n_cat} features, but "
                    f"the categorical input has {categorical_shape[-1]} columns. "
                    f"Received: categorical.shape={tuple(categorical_shape)}"
                )
        elif n_cat:
            raise ValueError(
                f"{name} has categorical_cardinalities={self.categorical_cardinalities} but "
                "no categorical input was passed. Pass a dict with a 'categorical' entry."
            )
        if self.n_num + n_cat == 0:
            raise ValueError(f"{name} needs at least one numeric or categorical feature.")
        if self.bins is not None and len(self.bins) != self.n_num:
            raise ValueError(
                f"{name} was given bins for {len(self.bins)} numeric features, but the "
                f"numeric input has {self.n_num} columns. Received: numeric.shape="
                f"{None if numeric_shape is None else tuple(numeric_shape)}"
            )
        init = _uniform(self.d_token)
        if self.n_num and self.numeric_embedding == "linear":
            self.numeric_weight = self.add_weight(
                name="numeric_weight", shape=(self.n_num, self.d_token), initializer=init
            )
            self.numeric_bias = self.add_weight(
                name="numeric_bias", shape=(self.n_num, self.d_token), initializer=init
            )
        elif self.n_num:
            if self.numeric_embedding == "periodic":
                self.numeric_embedder = PeriodicEmbedding(
                    self.d_token,
                    self.n_frequencies,
                    self.frequency_init_scale,
                    self.lite,
                    name="periodic_embedding",
                    dtype=self.dtype_policy,
                )
            else:
                self.numeric_embedder = PiecewiseLinearEmbedding(
                    self.bins, self.d_token, name="piecewise_embedding", dtype=self.dtype_policy
                )
            self.numeric_embedder.build(numeric_shape)
        if n_cat:
            rows = [n + 1 for n in self.categorical_cardinalities]
            offsets = [0]
            for r in rows[:-1]:
                offsets.append(offsets[-1] + r)
            self._offsets = offsets
            self.categorical_embeddings = self.add_weight(
                name="categorical_embeddings", shape=(sum(rows), self.d_token), initializer=init
            )
            self.categorical_bias = self.add_weight(
                name="categorical_bias", shape=(n_cat, self.d_token), initializer=init
            )

    def call(self, inputs):
        numeric, categorical = _split_inputs(inputs)
        tokens = []
        if self.n_num and self.numeric_embedding == "linear":
            numeric = ops.cast(numeric, self.compute_dtype)
            tokens.append(numeric[..., None] * self.numeric_weight + self.numeric_bias)
        elif self.n_num:
            tokens.append(self.numeric_embedder(numeric))
        if self.categorical_cardinalities:
            codes = ops.cast(categorical, "int32") + ops.convert_to_tensor(
                self._offsets, dtype="int32"
            )
            embedded = ops.take(self.categorical_embeddings, codes, axis=0)
            tokens.append(ops.cast(embedded + self.categorical_bias, self.compute_dtype))
        return tokens[0] if len(tokens) == 1 else ops.concatenate(tokens, axis=1)

    def compute_output_shape(self, input_shape):
        numeric_shape, categorical_shape = _split_inputs(input_shape)
        batch = (numeric_shape if numeric_shape is not None else categorical_shape)[0]
        n_num = numeric_shape[-1] if numeric_shape is not None else 0
        return (batch, n_num + len(self.categorical_cardinalities), self.d_token)

    def get_config(self):
        config = super().get_config()
        config.update(
            d_token=self.d_token,
            categorical_cardinalities=list(self.categorical_cardinalities),
            numeric_embedding=self.numeric_embedding,
            bins=None if self.bins is None else [list(edges) for edges in self.bins],
            n_frequencies=self.n_frequencies,
            frequency_init_scale=self.frequency_init_scale,
            lite=self.lite,
        )
        return config


@keras.saving.register_keras_serializable(package="tabattn")
class CLSToken(keras.layers.Layer):
    """Append a learned [CLS] token to a sequence of feature tokens.

    The same learned vector is appended to every row; a head reading the last token then
    sees a summary that attention layers wrote into it.

    Args:
        d_token: size of the token, a positive integer; must match the input's last axis.
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: float tensor ``(batch_size, n_tokens, d_token)``.

    Returns:
        ``(batch_size, n_tokens + 1, d_token)``; the [CLS] token is the last one. Rows do not
        depend on each other.

    Raises:
        ValueError: if ``d_token`` is not a positive integer, or the input is not of rank 3
            with last axis ``d_token``.

    Example:

    >>> import numpy as np
    >>> tuple(CLSToken(8)(np.zeros((2, 3, 8), "float32")).shape)
    (2, 4, 8)

    Reference:
        Devlin et al., "BERT", NAACL 2019; Gorishniy et al., NeurIPS 2021, §3.3.
    """

    def __init__(self, d_token, **kwargs):
        super().__init__(**kwargs)
        self.d_token = _checks.positive_int("d_token", d_token)

    def build(self, input_shape):
        _checks.rank("inputs", input_shape, 3, type(self).__name__)
        _checks.dim_matches("d_token", self.d_token, input_shape[-1], "CLSToken", "channels")
        self.cls = self.add_weight(
            name="cls", shape=(self.d_token,), initializer=_uniform(self.d_token)
        )

    def call(self, inputs):
        cls = ops.cast(self.cls, inputs.dtype)
        cls = ops.broadcast_to(cls, (ops.shape(inputs)[0], 1, self.d_token))
        return ops.concatenate([inputs, cls], axis=1)

    def compute_output_shape(self, input_shape):
        n = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], n, self.d_token)

    def get_config(self):
        config = super().get_config()
        config.update(d_token=self.d_token)
        return config


@keras.saving.register_keras_serializable(package="tabattn")
class PeriodicEmbedding(keras.layers.Layer):
    """Periodic embeddings of numeric features ("PLR"): sines and cosines, linear, ReLU.

    Each feature ``x_j`` gets ``n_frequencies`` learned frequencies ``f_j``. With
    ``v = 2 * pi * f_j * x_j``, the periodic features ``concat(cos(v), sin(v))`` (size
    ``2 * n_frequencies``) go through a linear layer of the feature's own (or, with
    ``lite=True``, one linear layer shared by all features) and then a ReLU. Frequencies
    start from N(0, ``frequency_init_scale``^2) truncated at three standard deviations; the
    linear weights and biases from U(-1/sqrt(2k), 1/sqrt(2k)) with ``k = n_frequencies``.

    ``2 * pi * f * x`` and its sine and cosine are computed in float32 even under a mixed
    precision policy: in float16 the phase of a large ``f * x`` would be meaningless. The
    linear layer then runs in the compute dtype.

    Each row is embedded on its own: the output does not depend on other rows of the batch.

    Args:
        embedding_dim: size ``d`` of each feature's embedding, a positive integer.
            Default 24 (rtdl_num_embeddings' ``d_embedding``).
        n_frequencies: number ``k`` of frequencies per feature, a positive integer.
            Default 48.
        frequency_init_scale: standard deviation ``sigma`` of the initial frequencies, a
            number > 0. Default 0.01. The paper tunes it; it matters a lot: too large and
            the embedding becomes noise, too small and it is almost linear.
        lite: if ``True``, one linear layer (``(2k, d)`` weight, ``(d,)`` bias) is shared by
            all features ("PLR(lite)", from the TabR paper); else each feature has its own
            (``(n_features, 2k, d)`` weight, ``(n_features, d)`` bias). Default ``False``.
        activation: if ``True`` (default), apply the ReLU ("PLR"); if ``False``, the
            embedding is "PL". ``lite=True`` requires ``activation=True``, as in rtdl.
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: float tensor ``(batch_size, n_features)``.

    Returns:
        Embeddings of shape ``(batch_size, n_features, embedding_dim)``.

    Raises:
        ValueError: if a size is not a positive integer, ``frequency_init_scale`` is not a
            number > 0, ``lite=True`` with ``activation=False``, or the input is not of
            rank 2 with a known number of features.

    Example:

    >>> import numpy as np
    >>> layer = PeriodicEmbedding(embedding_dim=8, n_frequencies=16)
    >>> tuple(layer(np.random.rand(4, 3).astype("float32")).shape)
    (4, 3, 8)
    >>> tuple(layer.frequencies.shape), tuple(layer.kernel.shape)
    ((3, 16), (3, 32, 8))

    Reference:
        Gorishniy, Rubachev, Babenko, "On Embeddings for Numerical Features in Tabular Deep
        Learning", NeurIPS 2022, §3.3 (periodic activations); defaults as in
        ``rtdl_num_embeddings.PeriodicEmbeddings`` (0.0.12): ``d_embedding=24``,
        ``n_frequencies=48``, ``frequency_init_scale=0.01``, ``activation=True``. ``lite``:
        Gorishniy et al., "TabR", ICLR 2024.
    """

    def __init__(
        self,
        embedding_dim=24,
        n_frequencies=48,
        frequency_init_scale=0.01,
        lite=False,
        activation=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.embedding_dim = _checks.positive_int("embedding_dim", embedding_dim)
        self.n_frequencies = _checks.positive_int("n_frequencies", n_frequencies)
        self.frequency_init_scale = _checks.positive_float(
            "frequency_init_scale", frequency_init_scale
        )
        self.lite = bool(lite)
        self.activation = bool(activation)
        if self.lite and not self.activation:
            raise ValueError(
                "`lite=True` requires `activation=True` (as in rtdl_num_embeddings). "
                f"Received: lite={lite!r}, activation={activation!r}"
            )

    def build(self, input_shape):
        name = type(self).__name__
        _checks.rank("inputs", input_shape, 2, name)
        n_features = input_shape[-1]
        if n_features is None:
            raise ValueError(
                f"{name} needs a known number of features (the last axis). "
                f"Received: inputs.shape={tuple(input_shape)}"
            )
        periodic_dim = 2 * self.n_frequencies
        # autocast=False keeps the frequencies in float32 under mixed precision (see call).
        self.frequencies = self.add_weight(
            name="frequencies",
            shape=(n_features, self.n_frequencies),
            initializer=_truncated_normal(self.frequency_init_scale),
            autocast=False,
        )
        if self.lite:
            kernel_shape, bias_shape = (periodic_dim, self.embedding_dim), (self.embedding_dim,)
        else:
            kernel_shape = (n_features, periodic_dim, self.embedding_dim)
            bias_shape = (n_features, self.embedding_dim)
        init = _uniform(periodic_dim)
        self.kernel = self.add_weight(name="kernel", shape=kernel_shape, initializer=init)
        self.bias = self.add_weight(name="bias", shape=bias_shape, initializer=init)

    def call(self, inputs):
        phase = 2.0 * math.pi * self.frequencies * ops.cast(inputs, "float32")[..., None]
        periodic = ops.concatenate([ops.cos(phase), ops.sin(phase)], axis=-1)
        periodic = ops.cast(periodic, self.compute_dtype)
        if self.lite:
            outputs = ops.matmul(periodic, self.kernel) + self.bias
        else:
            outputs = ops.einsum("bfp,fpd->bfd", periodic, self.kernel) + self.bias
        return ops.relu(outputs) if self.activation else outputs

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1], self.embedding_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            embedding_dim=self.embedding_dim,
            n_frequencies=self.n_frequencies,
            frequency_init_scale=self.frequency_init_scale,
            lite=self.lite,
            activation=self.activation,
        )
        return config


def compute_bins(x, n_bins=48, y=None, regression=None, tree_kwargs=None):
    """Bin edges of each numeric feature, for the piecewise-linear encoding and embedding.

    Without ``y``, the edges of feature ``j`` are the distinct values of the quantiles
    ``np.quantile(x[:, j], np.linspace(0, 1, n_bins + 1))`` (§3.2.1 of the paper): bins of
    roughly equal population, fewer than ``n_bins`` where quantiles coincide. With ``y``, a
    decision tree with at most ``n_bins`` leaves is fitted to predict ``y`` from that feature
    alone, and the edges are its split thresholds plus the feature's minimum and maximum,
    sorted and distinct (§3.2.2, target-aware bins).

    Call it on the training split only; pass its result as ``bins`` to
    ``PiecewiseLinearEncoding``, ``PiecewiseLinearEmbedding`` or
    ``FeatureTokenizer(numeric_embedding="piecewise")``.

    Args:
        x: training features, a finite float array ``(n_samples, n_features)``.
        n_bins: the largest number of bins per feature, an integer >= 2. Default 48.
        y: optional training target ``(n_samples,)``; if given, bins come from trees.
        regression: with ``y``: ``True`` fits ``sklearn.tree.DecisionTreeRegressor``,
            ``False`` a ``DecisionTreeClassifier``. Required with ``y``, unused without.
        tree_kwargs: optional dict of extra arguments for the tree (e.g.
            ``{"min_samples_leaf": 64}``); ``max_leaf_nodes`` is set to ``n_bins``.

    Returns:
        A list with one 1-D float64 array per feature: strictly increasing edges, also once
        rounded to float32 (of edges closer than that, the first is kept), at least 2 and at
        most ``n_bins + 1`` of them (feature ``j`` has ``len(edges) - 1`` bins).

    Raises:
        ValueError: if ``x`` is not 2-D or not finite, ``n_bins`` is not an integer >= 2,
            a column has fewer than 2 distinct values, ``y`` has the wrong length,
            ``regression`` is missing with ``y``, or ``regression``/``tree_kwargs`` are
            given without ``y``.
        ImportError: if ``y`` is given and scikit-learn is not installed.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(1000, 2))
    >>> bins = compute_bins(x, n_bins=4)
    >>> [len(edges) for edges in bins]
    [5, 5]
    >>> bool(np.allclose(bins[0], np.quantile(x[:, 0], [0, 0.25, 0.5, 0.75, 1])))
    True
    >>> y = (x[:, 0] > 0.3).astype(int)
    >>> tree_bins = compute_bins(x, n_bins=2, y=y, regression=False)
    >>> len(tree_bins[0])  # minimum, the split near 0.3, maximum
    3

    Reference:
        Gorishniy, Rubachev, Babenko, "On Embeddings for Numerical Features in Tabular Deep
        Learning", NeurIPS 2022, §3.2; ``rtdl_num_embeddings.compute_bins``.
    """
    x = np.asarray(x, dtype="float64")
    if x.ndim != 2:
        raise ValueError(
            "`x` must be a 2-D array (n_samples, n_features). "
            f"Received: x.shape={x.shape} (rank {x.ndim})"
        )
    if not np.isfinite(x).all():
        raise ValueError(
            "`x` must contain only finite values (no NaN or inf); impute them first. "
            f"Received: {int((~np.isfinite(x)).sum())} non-finite value(s)"
        )
    if isinstance(n_bins, bool) or not isinstance(n_bins, numbers.Integral) or n_bins < 2:
        raise ValueError(f"`n_bins` must be an integer >= 2. Received: n_bins={n_bins!r}")
    if len(x) < 2:
        raise ValueError(f"`x` must have at least 2 rows. Received: x.shape={x.shape}")
    for j in range(x.shape[1]):
        if len(np.unique(x[:, j])) < 2:
            raise ValueError(
                "Every column of `x` needs at least 2 distinct values to be binned. "
                f"Received: column {j} is constant (x[:, {j}] == {x[0, j]!r} in every row)"
            )

    if y is None:
        if regression is not None or tree_kwargs is not None:
            raise ValueError(
                "`regression` and `tree_kwargs` are used only with `y` (tree-based bins). "
                f"Received: y=None, regression={regression!r}, tree_kwargs={tree_kwargs!r}"
            )
        quantiles = np.linspace(0.0, 1.0, n_bins + 1)
        return [_distinct_in_float32(np.quantile(column, quantiles)) for column in x.T]

    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(
            f"`y` must be a 1-D array with one target per row of `x` ({len(x)}). "
            f"Received: y.shape={y.shape}"
        )
    if regression is None:
        raise ValueError(
            "`regression` must be True (regression target) or False (class labels) when "
            "`y` is given. Received: regression=None"
        )
    tree_kwargs = dict(tree_kwargs or {})
    if "max_leaf_nodes" in tree_kwargs:
        raise ValueError(
            "`tree_kwargs` must not set `max_leaf_nodes`: it is `n_bins`. "
            f"Received: tree_kwargs={tree_kwargs!r}"
        )
    try:
        from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
    except ImportError as error:
        raise ImportError(
            "compute_bins(..., y=...) fits decision trees and needs scikit-learn. "
            "Install it with: pip install 'tabattn[cli]'"
        ) from error
    tree_class = DecisionTreeRegressor if regression else DecisionTreeClassifier
    bins = []
    for column in x.T:
        tree = tree_class(max_leaf_nodes=n_bins, **tree_kwargs).fit(column[:, None], y).tree_
        is_split = tree.children_left != tree.children_right  # leaves have both set to -1
        edges = [column.min(), column.max(), *tree.threshold[is_split]]
        bins.append(_distinct_in_float32(edges))
    return bins


def _distinct_in_float32(edges):
    # The layers compute in float32, where edges closer than its precision (ties in a
    # quantile-transformed integer column) would coincide: keep the first of those.
    edges = np.unique(np.asarray(edges, dtype="float64"))
    rounded = edges.astype("float32")
    edges = edges[np.concatenate([[True], rounded[1:] > rounded[:-1]])]
    return edges if len(edges) >= 2 else np.array([edges[0] - 0.5, edges[0] + 0.5])


@keras.saving.register_keras_serializable(package="tabattn")
class PiecewiseLinearEncoding(keras.layers.Layer):
    """Piecewise-linear encoding ("PLE") of numeric features, with fixed bins and no weights.

    Feature ``j`` is cut into ``n_bins_j = len(bins[j]) - 1`` bins by its edges
    ``b_0 < b_1 < ... < b_n``; component ``t`` of its encoding is
    ``e_t = (x_j - b_{t-1}) / (b_t - b_{t-1})`` clipped to ``[0, 1]``. So a value writes 1 in
    every bin to its left, its relative position inside its own bin, and 0 to its right.
    Values outside ``[b_0, b_n]`` are not flattened: the first component is clipped only
    from above (it turns negative below ``b_0``) and the last only from below (it exceeds
    1 above ``b_n``); a feature with a single bin is not clipped at all (min-max scaling).
    A feature with fewer bins than ``max_n_bins = max_j n_bins_j`` has zeros in the
    positions after its own bins.

    Encoding runs in float32 and is then cast to the compute dtype, so that edges keep
    their precision under mixed precision. Each row is encoded on its own: the output does
    not depend on other rows of the batch.

    Args:
        bins: bin edges, one 1-D array per feature, e.g. ``compute_bins(x_train)``. Each
            needs at least 2 finite, strictly increasing edges. Stored in the config as
            lists of floats.
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: float tensor ``(batch_size, n_features)`` with ``n_features == len(bins)``.

    Returns:
        Encodings of shape ``(batch_size, n_features, max_n_bins)``.

    Raises:
        ValueError: if ``bins`` is empty or an entry is not 1-D, has fewer than 2 edges, a
            non-finite edge or edges that are not strictly increasing; or if the input is
            not of rank 2 with ``len(bins)`` columns.

    Example:

    >>> import numpy as np
    >>> bins = [[0.0, 1.0, 3.0], [0.0, 2.0]]  # 2 bins, then 1 bin (padded with a zero)
    >>> x = np.array([[2.0, 1.0], [-1.0, 5.0]], "float32")
    >>> keras.ops.convert_to_numpy(PiecewiseLinearEncoding(bins)(x))
    array([[[ 1. ,  0.5],
            [ 0.5,  0. ]],
    <BLANKLINE>
           [[-1. ,  0. ],
            [ 2.5,  0. ]]], dtype=float32)

    Reference:
        Gorishniy, Rubachev, Babenko, "On Embeddings for Numerical Features in Tabular Deep
        Learning", NeurIPS 2022, §3.2, Eq. 1; clipping as in
        ``rtdl_num_embeddings._PiecewiseLinearEncodingImpl``.
    """

    # Departure from rtdl_num_embeddings >= 0.0.11, which moves each feature's last bin to
    # the last position (zeros in the middle) to vectorise its clipping: here the padding is
    # at the end, as in the paper; per-bound clip tables vectorise the rule just as well.

    def __init__(self, bins, **kwargs):
        super().__init__(**kwargs)
        self.bins = _check_bins(bins)

    def build(self, input_shape):
        name = type(self).__name__
        _checks.rank("inputs", input_shape, 2, name)
        _check_n_features(name, len(self.bins), input_shape)
        self._left, self._width, self._low, self._high = _ple_tables(self.bins)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")[..., None]
        left, width, low, high = (
            ops.convert_to_tensor(a) for a in (self._left, self._width, self._low, self._high)
        )
        encoded = ops.minimum(ops.maximum((x - left) / width, low), high)
        return ops.cast(encoded, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.bins), max(len(edges) - 1 for edges in self.bins))

    def get_config(self):
        config = super().get_config()
        config.update(bins=[list(edges) for edges in self.bins])
        return config


@keras.saving.register_keras_serializable(package="tabattn")
class PiecewiseLinearEmbedding(keras.layers.Layer):
    """Piecewise-linear embeddings of numeric features: a linear token plus a learned PLE term.

    Feature ``x_j`` becomes ``x_j * W_j + b_j + PLE(x_j) @ V_j``, where ``W_j``, ``b_j`` are
    learned vectors of size ``d`` (as in ``FeatureTokenizer``), ``PLE(x_j)`` is the
    feature's piecewise-linear encoding (``PiecewiseLinearEncoding``, ``max_n_bins``
    values, zero-padded) and ``V_j`` a learned ``(max_n_bins, d)`` matrix without bias.
    ``V`` starts at zero, so at initialisation the layer is exactly a linear tokenizer and
    the piecewise-linear part is learned during training (rtdl's "version B"). With
    ``activation=True`` a ReLU follows.

    ``W`` and ``b`` start from U(-1/sqrt(d), 1/sqrt(d)). Each row is embedded on its own:
    the output does not depend on other rows of the batch.

    Args:
        bins: bin edges, one 1-D array per feature, e.g. ``compute_bins(x_train)`` (see
            ``PiecewiseLinearEncoding``).
        embedding_dim: size ``d`` of each feature's embedding, a positive integer.
        activation: if ``True``, apply a ReLU to the sum. Default ``False`` (rtdl's
            recommendation for version B).
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: float tensor ``(batch_size, n_features)`` with ``n_features == len(bins)``.

    Returns:
        Embeddings of shape ``(batch_size, n_features, embedding_dim)``.

    Raises:
        ValueError: if ``bins`` is invalid (see ``PiecewiseLinearEncoding``),
            ``embedding_dim`` is not a positive integer, or the input is not of rank 2 with
            ``len(bins)`` columns.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(100, 3)).astype("float32")
    >>> layer = PiecewiseLinearEmbedding(compute_bins(x, n_bins=8), embedding_dim=4)
    >>> tuple(layer(x).shape), tuple(layer.ple_kernel.shape)
    ((100, 3, 4), (3, 8, 4))

    Reference:
        Gorishniy, Rubachev, Babenko, "On Embeddings for Numerical Features in Tabular Deep
        Learning", NeurIPS 2022, §3.2; version B of
        ``rtdl_num_embeddings.PiecewiseLinearEmbeddings`` (0.0.12), from Gorishniy et al.,
        "TabM", ICLR 2025.
    """

    # Departure from rtdl: rtdl applies the ReLU to the PLE term alone, before adding the
    # linear term. That term starts at exactly zero and ReLU'(0) = 0, so with
    # activation=True it would never receive a gradient; the ReLU here acts on the sum.

    def __init__(self, bins, embedding_dim, activation=False, **kwargs):
        super().__init__(**kwargs)
        self.bins = _check_bins(bins)
        self.embedding_dim = _checks.positive_int("embedding_dim", embedding_dim)
        self.activation = bool(activation)

    def build(self, input_shape):
        name = type(self).__name__
        _checks.rank("inputs", input_shape, 2, name)
        _check_n_features(name, len(self.bins), input_shape)
        self.encoding = PiecewiseLinearEncoding(
            self.bins, name="encoding", dtype=self.dtype_policy
        )
        self.encoding.build(input_shape)
        n_features, max_n_bins = len(self.bins), max(len(edges) - 1 for edges in self.bins)
        init = _uniform(self.embedding_dim)
        self.linear_kernel = self.add_weight(
            name="linear_kernel", shape=(n_features, self.embedding_dim), initializer=init
        )
        self.linear_bias = self.add_weight(
            name="linear_bias", shape=(n_features, self.embedding_dim), initializer=init
        )
        self.ple_kernel = self.add_weight(
            name="ple_kernel",
            shape=(n_features, max_n_bins, self.embedding_dim),
            initializer="zeros",
        )

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        linear = x[..., None] * self.linear_kernel + self.linear_bias
        piecewise = ops.einsum("bfn,fnd->bfd", self.encoding(inputs), self.ple_kernel)
        outputs = linear + piecewise
        return ops.relu(outputs) if self.activation else outputs

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.bins), self.embedding_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            bins=[list(edges) for edges in self.bins],
            embedding_dim=self.embedding_dim,
            activation=self.activation,
        )
        return config
