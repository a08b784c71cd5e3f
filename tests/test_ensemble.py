"""BatchEnsemble layers against NumPy references, and the initialisation TabM prescribes."""

import keras
import numpy as np
import pytest

from tabattn.layers import BatchEnsembleDense, EnsembleDense, EnsembleView


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_ensemble_view_repeats_rows_for_every_member(rng):
    x = rng.normal(size=(4, 3)).astype("float32")
    out = _np(EnsembleView(k=5)(x))
    assert out.shape == (4, 5, 3)
    np.testing.assert_array_equal(out, np.repeat(x[:, None], 5, axis=1))
    members = rng.normal(size=(4, 5, 3)).astype("float32")
    np.testing.assert_array_equal(_np(EnsembleView(k=5)(members)), members)


def test_batch_ensemble_dense_matches_numpy(rng):
    x = rng.normal(size=(6, 4, 3)).astype("float32")
    layer = BatchEnsembleDense(5, k=4, activation="relu", r_initializer="normal",
                               s_initializer="normal")
    out = _np(layer(x))
    r, s, w, b = (_np(v) for v in (layer.r, layer.s, layer.kernel, layer.bias))
    # Member i: relu(((x_i * r_i) W) * s_i + b_i), W shared.
    expected = np.stack(
        [np.maximum(((x[:, i] * r[i]) @ w) * s[i] + b[i], 0.0) for i in range(4)], axis=1
    )
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_ensemble_dense_matches_numpy(rng):
    x = rng.normal(size=(6, 3, 4)).astype("float32")
    layer = EnsembleDense(2, k=3)
    out = _np(layer(x))
    w, b = _np(layer.kernel), _np(layer.bias)
    expected = np.stack([x[:, i] @ w[i] + b[i] for i in range(3)], axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_members_do_not_see_each_other_or_other_rows(rng):
    x = rng.normal(size=(6, 3, 4)).astype("float32")
    layer = BatchEnsembleDense(5, k=3, r_initializer="normal")
    base = _np(layer(x))
    changed = x.copy()
    changed[2, 1] += 10.0  # row 2, member 1 only
    out = _np(layer(changed))
    differs = np.abs(out - base).max(axis=-1) > 0
    assert differs[2, 1] and differs.sum() == 1


def test_tabm_initialisation():
    d_in, k = 10, 8
    layer = BatchEnsembleDense(4, k=k, r_initializer="random-signs", r_chunks=[3, 2, 5])
    layer.build((None, k, d_in))
    r, s, w, b = (_np(v) for v in (layer.r, layer.s, layer.kernel, layer.bias))
    assert set(np.unique(r)) <= {-1.0, 1.0}
    # One value per member and chunk (input feature).
    for start, stop in ((0, 3), (3, 5), (5, 10)):
        assert (r[:, start:stop] == r[:, start:start + 1]).all()
    np.testing.assert_array_equal(s, np.ones((k, 4)))
    limit = 1 / np.sqrt(d_in)
    assert np.abs(w).max() <= limit and np.abs(b).max() <= limit
    np.testing.assert_array_equal(b, np.repeat(b[:1], k, axis=0))  # one draw for all members
    normal = BatchEnsembleDense(4, k=k, r_initializer="normal")
    normal.build((None, k, d_in))
    assert len(np.unique(_np(normal.r))) == k * d_in
    ones = BatchEnsembleDense(4, k=k)
    ones.build((None, k, d_in))
    np.testing.assert_array_equal(_np(ones.r), np.ones((k, d_in)))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: EnsembleView(k=0), "`k` must be a positive integer"),
        (lambda: BatchEnsembleDense(0, k=2), "`units` must be a positive integer"),
        (lambda: BatchEnsembleDense(3, k=2, r_initializer="uniform"), "r_initializer"),
        (lambda: BatchEnsembleDense(3, k=2, r_chunks=[2, 0]), r"r_chunks\[1\]"),
        (lambda: EnsembleDense(3, k=-1), "`k` must be a positive integer"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_shapes(rng):
    with pytest.raises(ValueError, match=r"\(batch_size, 3, d\)"):
        BatchEnsembleDense(2, k=3)(rng.normal(size=(4, 2, 5)).astype("float32"))
    with pytest.raises(ValueError, match="rank 3"):
        EnsembleDense(2, k=3)(rng.normal(size=(4, 5)).astype("float32"))
    with pytest.raises(ValueError, match="r_chunks"):
        BatchEnsembleDense(2, k=3, r_chunks=[2, 2])(rng.normal(size=(4, 3, 5)).astype("float32"))
    with pytest.raises(ValueError, match="k=3"):
        EnsembleView(k=3)(rng.normal(size=(4, 2, 5)).astype("float32"))
