"""Tokenizers and numeric embeddings: shapes, values against NumPy, reserved code 0, errors."""

import math
import os
import sys

import keras
import numpy as np
import pytest

from tabattn.layers import (
    CLSToken,
    FeatureTokenizer,
    PeriodicEmbedding,
    PiecewiseLinearEmbedding,
    PiecewiseLinearEncoding,
    compute_bins,
)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_numeric_and_categorical_tokens_match_numpy(rng):
    tokenizer = FeatureTokenizer(d_token=4, categorical_cardinalities=(2, 3))
    numeric = rng.normal(size=(5, 3)).astype("float32")
    codes = np.array([[0, 0], [1, 3], [2, 1], [0, 2], [2, 3]], dtype="int32")
    tokens = _np(tokenizer({"numeric": numeric, "categorical": codes}))
    assert tokens.shape == (5, 5, 4)
    w, b = _np(tokenizer.numeric_weight), _np(tokenizer.numeric_bias)
    np.testing.assert_allclose(tokens[:, :3], numeric[..., None] * w + b, atol=1e-6)
    table, cat_bias = _np(tokenizer.categorical_embeddings), _np(tokenizer.categorical_bias)
    assert table.shape == (2 + 1 + 3 + 1, 4)  # one reserved row per feature
    np.testing.assert_allclose(tokens[:, 3], table[codes[:, 0]] + cat_bias[0], atol=1e-6)
    np.testing.assert_allclose(tokens[:, 4], table[3 + codes[:, 1]] + cat_bias[1], atol=1e-6)


def test_code_zero_is_reserved_and_valid():
    tokenizer = FeatureTokenizer(d_token=4, categorical_cardinalities=(2, 3))
    zeros = np.zeros((2, 2), dtype="int32")
    tokens = _np(tokenizer({"categorical": zeros}))
    assert tokens.shape == (2, 2, 4) and np.isfinite(tokens).all()
    # Code 0 of each feature has its own row, distinct from every known category.
    table = _np(tokenizer.categorical_embeddings)
    assert not np.allclose(table[0], table[1]) and not np.allclose(table[3], table[4])


def test_numeric_only_tensor_input(rng):
    tokens = FeatureTokenizer(d_token=6)(rng.normal(size=(2, 7)).astype("float32"))
    assert tuple(tokens.shape) == (2, 7, 6)


def test_categorical_width_mismatch():
    tokenizer = FeatureTokenizer(d_token=4, categorical_cardinalities=(2, 3))
    with pytest.raises(ValueError, match="categorical_cardinalities for 2 features"):
        tokenizer({"categorical": np.zeros((2, 3), "int32")})


def test_missing_categorical_input():
    with pytest.raises(ValueError, match="no categorical input"):
        FeatureTokenizer(d_token=4, categorical_cardinalities=(2,))(np.zeros((2, 3), "float32"))


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(d_token=0), "d_token"), (dict(d_token=4, categorical_cardinalities=(3, 0)), r"\[1\]")],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FeatureTokenizer(**kwargs)


def test_cls_token_appended_last(rng):
    layer = CLSToken(3)
    x = rng.normal(size=(2, 4, 3)).astype("float32")
    out = _np(layer(x))
    assert out.shape == (2, 5, 3)
    np.testing.assert_array_equal(out[:, :4], x)
    np.testing.assert_allclose(out[:, 4], np.broadcast_to(_np(layer.cls), (2, 3)))


def test_cls_token_checks_width():
    with pytest.raises(ValueError, match="d_token=3"):
        CLSToken(3)(np.zeros((2, 4, 5), "float32"))


# --- numeric embeddings: NumPy references ---------------------------------------------------
def _periodic_reference(layer, x):
    f = _np(layer.frequencies).astype("float64")
    kernel, bias = _np(layer.kernel).astype("float64"), _np(layer.bias).astype("float64")
    v = 2 * np.pi * f * x[..., None].astype("float64")
    h = np.concatenate([np.cos(v), np.sin(v)], axis=-1)  # (batch, n_features, 2k)
    if layer.lite:
        out = h @ kernel + bias
    else:
        out = np.stack([h[:, j] @ kernel[j] for j in range(x.shape[1])], axis=1) + bias
    return np.maximum(out, 0) if layer.activation else out


def _ple_reference(x, bins):
    max_n_bins = max(len(edges) - 1 for edges in bins)
    out = np.zeros((len(x), len(bins), max_n_bins))
    for j, edges in enumerate(bins):
        n_bins = len(edges) - 1
        for t in range(n_bins):
            e = (x[:, j] - edges[t]) / (edges[t + 1] - edges[t])
            if n_bins > 1:
                low = -np.inf if t == 0 else 0.0
                high = np.inf if t == n_bins - 1 else 1.0
                e = np.clip(e, low, high)
            out[:, j, t] = e
    return out


BINS = [[-1.0, -0.3, 0.0, 0.4, 1.2], [-0.5, 0.0, 0.5], [-2.0, 2.0]]  # 4, 2 and 1 bins


@pytest.mark.parametrize("lite, activation", [(False, True), (True, True), (False, False)])
def test_periodic_embedding_matches_numpy(rng, lite, activation):
    layer = PeriodicEmbedding(5, n_frequencies=3, frequency_init_scale=0.3, lite=lite,
                              activation=activation)
    x = rng.normal(size=(7, 4)).astype("float32")
    out = _np(layer(x))
    assert out.shape == (7, 4, 5)
    assert _np(layer.frequencies).shape == (4, 3)
    assert _np(layer.kernel).shape == ((6, 5) if lite else (4, 6, 5))
    assert _np(layer.bias).shape == ((5,) if lite else (4, 5))
    np.testing.assert_allclose(out, _periodic_reference(layer, x), atol=1e-5)


def test_periodic_initialisation():
    layer = PeriodicEmbedding(8, n_frequencies=500, frequency_init_scale=0.2)
    layer.build((None, 40))
    f = _np(layer.frequencies)
    assert np.abs(f).max() <= 3 * 0.2 + 1e-6  # truncated at three standard deviations
    # The std of N(0, s^2) truncated at +-3s is about 0.9866 s.
    np.testing.assert_allclose(f.std(), 0.9866 * 0.2, rtol=0.03)
    assert abs(f.mean()) < 0.01
    limit = 1 / math.sqrt(2 * 500)
    for weight in (layer.kernel, layer.bias):
        w = _np(weight)
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.9 * limit


def test_ple_known_values():
    bins = [[0.0, 1.0, 3.0, 6.0], [0.0, 2.0], [-1.0, 0.0, 1.0]]
    x = np.array(
        [[-1.0, -2.0, -3.0],  # below the first edge
         [2.0, 1.0, 0.5],  # inside
         [8.0, 5.0, 2.0]],  # above the last edge
        dtype="float32",
    )
    expected = [
        [[-1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [-2.0, 0.0, 0.0]],
        [[1.0, 0.5, 0.0], [0.5, 0.0, 0.0], [1.0, 0.5, 0.0]],
        [[1.0, 1.0, 5.0 / 3.0], [2.5, 0.0, 0.0], [1.0, 2.0, 0.0]],  # last bin: not <= 1
    ]
    out = _np(PiecewiseLinearEncoding(bins)(x))
    # Feature 1 has one bin (not clipped), feature 2 two bins: zeros pad them to 3.
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_ple_matches_numpy(rng):
    x = rng.normal(size=(64, 3)).astype("float32")
    out = _np(PiecewiseLinearEncoding(BINS)(x))
    assert out.shape == (64, 3, 4)
    np.testing.assert_allclose(out, _ple_reference(x, BINS), atol=1e-6)
    assert not PiecewiseLinearEncoding(BINS).trainable_weights


def test_piecewise_linear_embedding_matches_numpy(rng):
    x = rng.normal(size=(16, 3)).astype("float32")
    layer = PiecewiseLinearEmbedding(BINS, 5)
    initial = _np(layer(x))
    w, b = _np(layer.linear_kernel), _np(layer.linear_bias)
    # V starts at zero: at initialisation the layer is a linear tokenizer.
    assert not _np(layer.ple_kernel).any() and _np(layer.ple_kernel).shape == (3, 4, 5)
    np.testing.assert_allclose(initial, x[..., None] * w + b, atol=1e-6)
    kernel = rng.normal(size=(3, 4, 5)).astype("float32")
    layer.ple_kernel.assign(kernel)
    expected = x[..., None] * w + b + np.einsum("bfn,fnd->bfd", _ple_reference(x, BINS), kernel)
    np.testing.assert_allclose(_np(layer(x)), expected, atol=1e-5)
    relu = PiecewiseLinearEmbedding(BINS, 5, activation=True)
    relu.build(x.shape)
    for source, target in zip(layer.weights, relu.weights):
        target.assign(source)
    np.testing.assert_allclose(_np(relu(x)), np.maximum(expected, 0), atol=1e-5)


def test_piecewise_linear_embedding_relu_still_learns_ple_kernel(rng):
    # With the ReLU on the sum, the zero-initialised PLE kernel gets gradients.
    x = rng.normal(size=(32, 3)).astype("float32")
    inputs = keras.Input((3,))
    layer = PiecewiseLinearEmbedding(BINS, 4, activation=True)
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x, rng.normal(size=(32, 3, 4)).astype("float32"), epochs=1, batch_size=32,
              verbose=0)
    assert _np(layer.ple_kernel).any()


@pytest.mark.parametrize(
    "make",
    [
        lambda: PeriodicEmbedding(4, 3, 0.5),
        lambda: PiecewiseLinearEncoding(BINS),
        lambda: PiecewiseLinearEmbedding(BINS, 4),
    ],
)
def test_rows_are_embedded_independently(rng, make):
    layer = make()
    x = rng.normal(size=(6, 3)).astype("float32")
    np.testing.assert_allclose(_np(layer(x))[:2], _np(layer(x[:2])), atol=1e-6)


# --- compute_bins --------------------------------------------------------------------------
def test_compute_bins_quantiles(rng):
    x = np.stack([rng.normal(size=500), rng.integers(0, 3, 500)], axis=1)  # 3 distinct values
    bins = compute_bins(x, n_bins=8)
    assert len(bins) == 2
    np.testing.assert_array_equal(bins[0], np.quantile(x[:, 0], np.linspace(0, 1, 9)))
    np.testing.assert_array_equal(bins[1], [0.0, 1.0, 2.0])  # duplicate quantiles dropped
    for edges in bins:
        assert edges.ndim == 1 and len(edges) >= 2 and (np.diff(edges) > 0).all()


@pytest.mark.parametrize("regression", [True, False])
def test_compute_bins_trees_match_sklearn(rng, regression):
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    x = rng.normal(size=(400, 2))
    y = x[:, 0] ** 2 + 0.1 * rng.normal(size=400)
    if not regression:
        y = (y > 1).astype(int)
    tree_kwargs = {"min_samples_leaf": 10}
    bins = compute_bins(x, n_bins=6, y=y, regression=regression, tree_kwargs=tree_kwargs)
    tree_class = DecisionTreeRegressor if regression else DecisionTreeClassifier
    for j, edges in enumerate(bins):
        tree = tree_class(max_leaf_nodes=6, **tree_kwargs).fit(x[:, [j]], y).tree_
        thresholds = tree.threshold[tree.feature >= 0]
        expected = np.unique([x[:, j].min(), x[:, j].max(), *thresholds])
        np.testing.assert_array_equal(edges, expected)
        assert 2 <= len(edges) <= 7 and (np.diff(edges) > 0).all()
    assert len(bins[0]) > 2  # feature 0 carries the signal, so the tree splits it


def test_compute_bins_feed_the_layers(rng):
    x = rng.normal(size=(200, 3)).astype("float32")
    bins = compute_bins(x, n_bins=10)
    out = _np(PiecewiseLinearEncoding(bins)(x))
    np.testing.assert_allclose(out, _ple_reference(x, bins), atol=1e-5)
    assert out[:, :, 1:-1].min() >= 0 and out[:, :, 1:-1].max() <= 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(x=np.zeros(5)), r"`x` must be a 2-D array.*x.shape=\(5,\)"),
        (dict(x=np.array([[0.0, 1.0], [np.nan, 2.0]])), "finite"),
        (dict(x=np.array([[0.0, 1.0], [np.inf, 2.0]])), "finite"),
        (dict(x=np.eye(3), n_bins=1), "n_bins=1"),
        (dict(x=np.eye(3), n_bins=2.5), "n_bins=2.5"),
        (dict(x=np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])), "column 1 is constant"),
        (dict(x=np.eye(3), y=np.zeros(2), regression=True), r"`y`.*\(3\).*y.shape=\(2,\)"),
        (dict(x=np.eye(3), y=np.zeros(3)), "regression=None"),
        (dict(x=np.eye(3), regression=True), "only with `y`"),
        (dict(x=np.eye(3), y=np.zeros(3), regression=True, tree_kwargs={"max_leaf_nodes": 3}),
         "max_leaf_nodes"),
    ],
)
def test_compute_bins_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        compute_bins(**kwargs)


def test_compute_bins_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.tree", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"tabattn\[cli\]"):
        compute_bins(np.eye(3), n_bins=2, y=np.arange(3), regression=True)
    assert len(compute_bins(np.eye(3), n_bins=2)) == 3  # quantile bins need no sklearn


# --- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bins, message",
    [
        (None, "Received: bins=None"),
        ([], "non-empty list"),
        ([[0.0, 1.0], [2.0]], r"bins\[1\].*at least 2"),
        ([[[0.0, 1.0]]], r"bins\[0\].*1-D"),
        ([[0.0, np.nan, 1.0]], "finite"),
        ([[0.0, 2.0, 1.0]], r"bins\[0\].*strictly increasing"),
        ([[0.0, 1.0, 1.0]], "strictly increasing"),
        ([[1.0, 1.0 + 1e-12]], "float32"),
    ],
)
def test_invalid_bins(bins, message):
    for make in (PiecewiseLinearEncoding, lambda b: PiecewiseLinearEmbedding(b, 4),
                 lambda b: FeatureTokenizer(4, numeric_embedding="piecewise", bins=b)):
        with pytest.raises(ValueError, match=message):
            make(bins)


@pytest.mark.parametrize(
    "make",
    [
        lambda: PiecewiseLinearEncoding(BINS),
        lambda: PiecewiseLinearEmbedding(BINS, 4),
        lambda: FeatureTokenizer(4, numeric_embedding="piecewise", bins=BINS),
    ],
)
def test_bins_must_match_feature_count(make):
    with pytest.raises(ValueError, match=r"bins for 3 .*features, but .* 2 columns"):
        make()(np.zeros((2, 2), "float32"))


@pytest.mark.parametrize(
    "make",
    [
        lambda: PeriodicEmbedding(4),
        lambda: PiecewiseLinearEncoding(BINS),
        lambda: PiecewiseLinearEmbedding(BINS, 4),
    ],
)
def test_numeric_embeddings_need_rank_2(make):
    with pytest.raises(ValueError, match=r"rank 2.*inputs.shape=\(2, 3, 1\)"):
        make()(np.zeros((2, 3, 1), "float32"))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: PeriodicEmbedding(0), "embedding_dim=0"),
        (lambda: PeriodicEmbedding(4, n_frequencies=-1), "n_frequencies=-1"),
        (lambda: PeriodicEmbedding(4, frequency_init_scale=0.0), "frequency_init_scale=0.0"),
        (lambda: PeriodicEmbedding(4, lite=True, activation=False), "lite=True"),
        (lambda: PiecewiseLinearEmbedding(BINS, 0), "embedding_dim=0"),
        (lambda: FeatureTokenizer(4, numeric_embedding="quantile"),
         r"numeric_embedding.*\['linear', 'periodic', 'piecewise'\].*'quantile'"),
        (lambda: FeatureTokenizer(4, numeric_embedding="piecewise"), "needs `bins`"),
        (lambda: FeatureTokenizer(4, bins=BINS), "numeric_embedding='linear' and bins"),
        (lambda: FeatureTokenizer(4, numeric_embedding="periodic", bins=BINS),
         "only with `numeric_embedding='piecewise'`"),
        (lambda: FeatureTokenizer(4, numeric_embedding="periodic", n_frequencies=0),
         "n_frequencies=0"),
    ],
)
def test_numeric_embedding_invalid_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# --- FeatureTokenizer options ---------------------------------------------------------------
def test_tokenizer_linear_option_is_unchanged(rng):
    numeric = rng.normal(size=(5, 3)).astype("float32")
    default, explicit = FeatureTokenizer(4), FeatureTokenizer(4, numeric_embedding="linear")
    for tokenizer in (default, explicit):
        tokens = _np(tokenizer(numeric))
        assert [w.name for w in tokenizer.weights] == ["numeric_weight", "numeric_bias"]
        w, b = _np(tokenizer.numeric_weight), _np(tokenizer.numeric_bias)
        np.testing.assert_array_equal(tokens, numeric[..., None] * w + b)
    assert default.get_config()["numeric_embedding"] == "linear"
    assert default.get_config()["bins"] is None


def test_tokenizer_periodic_option(rng):
    tokenizer = FeatureTokenizer(6, (2,), "periodic", n_frequencies=5, frequency_init_scale=0.2,
                                 lite=True)
    numeric = rng.normal(size=(4, 3)).astype("float32")
    codes = np.array([[0], [1], [2], [1]], "int32")
    tokens = _np(tokenizer({"numeric": numeric, "categorical": codes}))
    assert tokens.shape == (4, 4, 6)
    embedder = tokenizer.numeric_embedder
    assert isinstance(embedder, PeriodicEmbedding) and embedder.lite
    assert (embedder.n_frequencies, embedder.frequency_init_scale) == (5, 0.2)
    np.testing.assert_allclose(tokens[:, :3], _periodic_reference(embedder, numeric), atol=1e-5)
    assert not hasattr(tokenizer, "numeric_weight")


def test_tokenizer_piecewise_option(rng):
    tokenizer = FeatureTokenizer(6, numeric_embedding="piecewise", bins=BINS)
    numeric = rng.normal(size=(4, 3)).astype("float32")
    tokens = _np(tokenizer(numeric))
    assert tokens.shape == (4, 3, 6)
    embedder = tokenizer.numeric_embedder
    assert isinstance(embedder, PiecewiseLinearEmbedding)
    w, b = _np(embedder.linear_kernel), _np(embedder.linear_bias)
    np.testing.assert_allclose(tokens, numeric[..., None] * w + b, atol=1e-6)
    config = tokenizer.get_config()
    assert config["bins"] == BINS and config["numeric_embedding"] == "piecewise"
    clone = FeatureTokenizer.from_config(config)
    assert clone.get_config() == config


def test_piecewise_embedding_keras_save_load(rng, tmp_path):
    x = rng.normal(size=(8, 3)).astype("float32")
    inputs = keras.Input((3,))
    layer = PiecewiseLinearEmbedding(compute_bins(x, n_bins=4), 5, activation=True)
    model = keras.Model(inputs, layer(inputs))
    layer.ple_kernel.assign(rng.normal(size=layer.ple_kernel.shape).astype("float32"))
    expected = _np(model.predict(x, verbose=0))
    path = os.path.join(tmp_path, "ple.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(_np(reloaded.predict(x, verbose=0)), expected)
    assert reloaded.layers[-1].get_config()["bins"] == layer.get_config()["bins"]
