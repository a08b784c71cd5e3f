"""TabM: the ensemble's prediction and loss, save/load, batch independence, training."""

import os

import keras
import numpy as np
import pytest

from tabattn.layers import compute_bins
from tabattn.models import TabM


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _data(rng, n=200):
    numeric = rng.normal(size=(n, 3)).astype("float32")
    categorical = rng.integers(0, 4, size=(n, 2)).astype("int32")
    label = ((numeric[:, 0] + (categorical[:, 0] == 2)) > 0.5).astype("int32")
    return {"numeric": numeric, "categorical": categorical}, label


def _model(inputs, **kwargs):
    config = dict(n_num_features=3, categorical_cardinalities=(3, 3), num_classes=2, k=4,
                  d_block=16, bins=compute_bins(inputs["numeric"], n_bins=6))
    config.update(kwargs)
    if config.get("numeric_embedding", "piecewise") != "piecewise":
        config.pop("bins")
    return TabM(**config)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_defaults_are_the_papers():
    config = TabM.default_config()
    assert config["k"] == 32 and config["d_block"] == 512 and config["dropout"] == 0.1
    assert config["numeric_embedding"] == "piecewise" and config["arch_type"] == "tabm"
    assert TabM.default_optimizer_config() == {"learning_rate": 2e-3, "weight_decay": 3e-4}
    x = {"numeric": np.zeros((2, 3), "float32")}
    assert TabM(3, numeric_embedding=None).n_blocks == 3
    assert TabM(3, bins=[[-1.0, 0.0, 1.0]] * 3).n_blocks == 2
    assert TabM(3, numeric_embedding=None)(x).shape == (2, 1)


@pytest.mark.parametrize("num_classes, d_out", [(2, 1), (3, 3), (None, 2)])
def test_inference_combines_the_members(rng, num_classes, d_out):
    inputs, _ = _data(rng, 12)
    model = _model(inputs, num_classes=num_classes, d_out=d_out)
    members = _np(model.member_outputs(inputs))
    combined = _np(model(inputs))
    assert members.shape == (12, 4, d_out) and combined.shape == (12, d_out)
    if num_classes is None:
        np.testing.assert_allclose(combined, members.mean(axis=1), rtol=1e-5, atol=1e-6)
    elif d_out == 1:  # the logit of the members' mean probability
        np.testing.assert_allclose(
            _sigmoid(combined), _sigmoid(members).mean(axis=1), rtol=1e-5, atol=1e-6
        )
    else:
        e = np.exp(members - members.max(-1, keepdims=True))
        mean = (e / e.sum(-1, keepdims=True)).mean(axis=1)
        e = np.exp(combined - combined.max(-1, keepdims=True))
        np.testing.assert_allclose(e / e.sum(-1, keepdims=True), mean, rtol=1e-5, atol=1e-6)


def test_training_loss_is_the_mean_of_the_members_losses(rng):
    inputs, labels = _data(rng, 16)
    y = labels.astype("float32")[:, None]
    weights = rng.uniform(0.5, 2.0, size=16).astype("float32")
    model = _model(inputs, dropout=0.0)
    model.compile(loss=keras.losses.BinaryCrossentropy(from_logits=True))
    members = model(inputs, training=True)
    loss = float(_np(model.compute_loss(inputs, y, members, sample_weight=weights)))
    z = _np(members)[..., 0]
    per_member = -(y * np.log(_sigmoid(z)) + (1 - y) * np.log(1 - _sigmoid(z)))  # (16, 4)
    assert loss == pytest.approx(float((per_member * weights[:, None]).mean()), rel=1e-5)


def test_rows_do_not_depend_on_their_batch(rng):
    inputs, _ = _data(rng, 30)
    model = _model(inputs)
    whole = _np(model(inputs))
    one = _np(model({k: v[7:8] for k, v in inputs.items()}))
    np.testing.assert_allclose(one, whole[7:8], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "options",
    [{}, {"arch_type": "tabm-mini"}, {"numeric_embedding": "periodic"},
     {"numeric_embedding": None, "categorical_embedding": "embedding"}],
)
def test_keras_round_trip_is_exact(rng, tmp_path, options):
    inputs, labels = _data(rng, 64)
    model = _model(inputs, **options)
    model.compile(optimizer=model.make_optimizer(),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(inputs, labels.astype("float32")[:, None], epochs=1, batch_size=32, verbose=0)
    path = os.path.join(tmp_path, "tabm.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(_np(reloaded(inputs)), _np(model(inputs)))
    assert reloaded.get_config() == model.get_config()


def test_start_scalings_differ_by_member_and_feature(rng):
    inputs, _ = _data(rng, 8)
    model = _model(inputs)
    r = _np(model.blocks[0].r)  # (k, 3 * 16 + 4 + 4)
    chunks = [16, 16, 16, 4, 4]
    starts = np.cumsum([0] + chunks[:-1])
    per_feature = r[:, starts]
    assert len(np.unique(per_feature)) == per_feature.size
    for start, size in zip(starts, chunks):
        assert (r[:, start:start + size] == r[:, start:start + 1]).all()
    assert (_np(model.blocks[1].r) == 1).all()


def test_unseen_codes_read_as_missing(rng):
    inputs, _ = _data(rng, 5)
    model = _model(inputs)
    unseen = dict(inputs, categorical=np.full((5, 2), 99, "int32"))
    missing = dict(inputs, categorical=np.zeros((5, 2), "int32"))
    np.testing.assert_array_equal(_np(model(unseen)), _np(model(missing)))


def test_learns_a_simple_rule(rng):
    inputs, labels = _data(rng, 400)
    model = _model(inputs, k=8, d_block=32)
    model.compile(optimizer=model.make_optimizer(learning_rate=1e-2),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)])
    history = model.fit(inputs, labels.astype("float32")[:, None], epochs=15, batch_size=64,
                        verbose=0)
    assert history.history["binary_accuracy"][-1] > 0.9


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_num_features=0), "at least one numeric or categorical"),
        (dict(n_num_features=2), "`bins` must be given"),
        (dict(n_num_features=2, numeric_embedding=None, bins=[[0, 1]] * 2), "and only then"),
        (dict(n_num_features=2, numeric_embedding=None, arch_type="big"), "arch_type"),
        (dict(n_num_features=2, numeric_embedding=None, num_classes=3, d_out=1), "d_out"),
        (dict(n_num_features=2, numeric_embedding=None, dropout=1.0), "dropout"),
        (dict(n_num_features=2, numeric_embedding=None, k=0), "`k` must be"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TabM(**kwargs)


def test_bad_inputs(rng):
    inputs, _ = _data(rng, 4)
    model = _model(inputs)
    with pytest.raises(ValueError, match="dict"):
        model(inputs["numeric"])
    with pytest.raises(ValueError, match="'categorical'"):
        model({"numeric": inputs["numeric"]})
