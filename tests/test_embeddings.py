"""FeatureTokenizer and CLSToken: shapes, values against NumPy, reserved code 0, errors."""

import keras
import numpy as np
import pytest

from tabattn.layers import CLSToken, FeatureTokenizer


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
