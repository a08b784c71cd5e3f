"""FT-Transformer: paper defaults, save/load round trip, attention-based importances."""

import keras
import numpy as np
import pytest

from tabattn.models import FTTransformer

TINY = dict(n_blocks=2, d_token=16, num_heads=2)


@pytest.fixture
def inputs(rng):
    return {
        "numeric": rng.normal(size=(32, 3)).astype("float32"),
        "categorical": rng.integers(0, 4, (32, 2)).astype("int32"),
    }


def test_default_config_is_the_papers():
    config = FTTransformer.default_config()
    assert config == dict(
        n_blocks=3, d_token=192, num_heads=8, attention_dropout=0.2, ffn_dropout=0.1,
        residual_dropout=0.0, ffn_factor=4 / 3,
    )
    assert FTTransformer.default_optimizer_config() == dict(learning_rate=1e-4, weight_decay=1e-5)
    model = FTTransformer(3, (3, 4), **config)
    assert model.blocks[0].ffn_hidden == 256


def test_architecture_shape_and_first_block_without_norm(inputs):
    model = FTTransformer(3, (3, 4), d_out=5, **TINY)
    assert tuple(model(inputs).shape) == (32, 5)
    assert not model.blocks[0].attention_norm and model.blocks[1].attention_norm
    assert model.blocks[-1].cls_only


def test_save_load_round_trip(inputs, tmp_path):
    model = FTTransformer(3, (3, 4), **TINY)
    expected = keras.ops.convert_to_numpy(model(inputs))
    model.save(tmp_path / "ft.keras")
    loaded = keras.saving.load_model(tmp_path / "ft.keras")
    assert isinstance(loaded, FTTransformer) and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(inputs)), expected)


def test_numeric_only_and_categorical_only(rng):
    numeric_only = FTTransformer(4, **TINY)
    assert tuple(numeric_only({"numeric": np.zeros((2, 4), "float32")}).shape) == (2, 1)
    categorical_only = FTTransformer(0, (5,), **TINY)
    assert tuple(categorical_only({"categorical": np.zeros((2, 1), "int32")}).shape) == (2, 1)
    with pytest.raises(ValueError, match="at least one"):
        FTTransformer(0, ())


def test_feature_importances_follow_the_cls_attention(inputs):
    model = FTTransformer(3, (3, 4), **TINY)
    maps = model.attention_maps(inputs, batch_size=10)
    assert maps.shape == (32, 2, 6)
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)
    importance = model.feature_importances(inputs, batch_size=10)
    expected = maps[..., :-1].mean(axis=(0, 1))
    np.testing.assert_allclose(importance, expected / expected.sum(), rtol=1e-5)
    assert importance.shape == (5,)


def test_optimizer_skips_decay_on_norms_biases_and_embeddings(inputs):
    model = FTTransformer(3, (3, 4), **TINY)
    optimizer = model.make_optimizer()
    optimizer.build(model.trainable_variables)
    decayed = {v.path for v in model.trainable_variables if optimizer._use_weight_decay(v)}
    assert any("ffn_in/kernel" in p for p in decayed)
    assert any("attention/query/kernel" in p for p in decayed)
    assert not any(("bias" in p or "norm" in p or "tokenizer" in p or "cls" in p) for p in decayed)
