"""Data-parallel training (the estimators' ``distribution``) on Keras's distribution API.

On the CPU, with JAX's simulated devices: two host devices in one process
(``XLA_FLAGS=--xla_force_host_platform_device_count=2``, read when JAX is imported, so that
case runs in a subprocess), and two processes on localhost joined by
``jax.distributed.initialize`` over JAX's CPU collectives (gloo). While a subprocess trains,
this process (one device) fits the reference. The argument checks run on every backend.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import BACKEND

import tabattn
from tabattn import TabularRegressor, _distribute, load
from tabattn.cli import main

jax_only = pytest.mark.skipif(BACKEND != "jax", reason="data-parallel training runs on JAX")
SRC = os.path.dirname(os.path.dirname(os.path.abspath(tabattn.__file__)))
TESTS = os.path.dirname(os.path.abspath(__file__))

# A small TabM (dropout on, so that its random masks must also agree) for a few epochs.
TABM = dict(model="tabm", model_params={"k": 4, "d_block": 32, "n_blocks": 1}, epochs=4,
            verbose=0, random_state=0, patience=100)


def table(n, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                      "c": rng.choice(["u", "v", "w"], n)})
    y = 2 * X["a"] + np.sin(X["b"]) + (X["c"] == "u") + rng.normal(scale=0.1, size=n)
    return X, y


def _start(script, env, *args):
    code = f"import sys; sys.path[:0] = [{SRC!r}, {TESTS!r}]\n" + textwrap.dedent(script)
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(process, timeout=240):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    assert process.returncode == 0, f"subprocess failed ({process.returncode}):\n{err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


def _relative(a, b):
    return abs(a - b) / abs(b)


TWO_DEVICES = """
    import json, sys
    import jax, keras
    from test_distribution import TABM, table
    from tabattn import TabularRegressor

    assert jax.device_count() == 2
    X, y = table(401)
    # 320 training rows (an even split, as on one device), 81 validation rows: one row of
    # padding at weight 0, which the logged loss must not count.
    est = TabularRegressor(**TABM, distribution="data-parallel")
    est.fit(X[:320], y[:320], eval_set=(X[320:], y[320:]))
    assert keras.distribution.distribution() is None  # nothing left set after fit
    caller = keras.distribution.DataParallel(devices=keras.distribution.list_devices()[:1])
    keras.distribution.set_distribution(caller)
    predictions = est.predict(X)
    assert keras.distribution.distribution() is caller  # the caller's, restored
    keras.distribution.set_distribution(None)
    kernel = est.model_.trainable_variables[0].value
    est.save(sys.argv[1])
    print(json.dumps({"val_loss": est.history_["val_loss"], "predictions": predictions.tolist(),
                      "devices": len(kernel.sharding.device_set),
                      "replicated": bool(kernel.sharding.is_fully_replicated)}))
"""


@jax_only
def test_two_devices_train_as_one_and_load_on_one(tmp_path):
    process = _start(TWO_DEVICES, {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
                     tmp_path / "model")
    X, y = table(401)
    reference = TabularRegressor(**TABM).fit(X[:320], y[:320], eval_set=(X[320:], y[320:]))
    result = _result(process)
    assert result["devices"] == 2 and result["replicated"]
    expected = reference.history_["val_loss"]
    assert len(result["val_loss"]) == len(expected)
    assert _relative(result["val_loss"][-1], expected[-1]) < 0.01, (result["val_loss"], expected)
    # Saved under the distribution, loaded here on one device: the same predictions.
    loaded = load(tmp_path / "model")
    assert loaded.distribution is None
    np.testing.assert_allclose(loaded.predict(X), result["predictions"], rtol=1e-5, atol=1e-5)


TWO_DEVICES_STREAMED = """
    import json, sys
    import jax
    from test_distribution import TABM
    from tabattn import TabularRegressor

    assert jax.device_count() == 2
    est = TabularRegressor(**TABM, distribution="data-parallel").fit(sys.argv[1], "y")
    print(json.dumps({"val_loss": est.history_["val_loss"]}))
"""


@jax_only
def test_two_devices_train_a_streamed_table_as_one(tmp_path):
    # A Parquet file read in batches: the last batch of each part is padded to split evenly.
    X, y = table(401)
    path = tmp_path / "table.parquet"
    X.assign(y=y).to_parquet(path)
    process = _start(TWO_DEVICES_STREAMED,
                     {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}, path)
    reference = TabularRegressor(**TABM).fit(str(path), "y")
    result = _result(process)
    expected = reference.history_["val_loss"]
    assert len(result["val_loss"]) == len(expected)
    assert _relative(result["val_loss"][-1], expected[-1]) < 0.01, (result["val_loss"], expected)


TWO_PROCESSES = """
    import json, sys
    import jax

    process, port, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=process)
    import pandas as pd
    from test_distribution import FULL_BATCH, table
    from tabattn import TabularRegressor

    X, _ = table(400)
    share = pd.read_parquet(f"{folder}/part-{process}.parquet")  # this process's file only
    est = TabularRegressor(**FULL_BATCH, distribution="data-parallel").fit(
        share.drop(columns="y"), share["y"])
    print(json.dumps({"val_loss": est.history_["val_loss"], "devices": jax.device_count(),
                      "predictions": est.predict(X[:50]).tolist()}))
"""
# Each process shuffles its own rows, so mini-batches over two processes hold other rows than
# one process's shuffle would: such a fit differs as another seed would. With every training
# row in each step (320 rows; no dropout, whose masks follow the rows' places in a batch)
# the steps are the same, and the comparison tests the exchange of the rows, the common
# preprocessing, the gradients' all-reduce and the agreed initial weights.
FULL_BATCH = dict(TABM, model_params=dict(TABM["model_params"], dropout=0.0), batch_size=320,
                  learning_rate=1e-2)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


@jax_only
def test_two_processes_train_as_one(tmp_path):
    port = _free_port()
    X, y = table(400)
    for process, share in enumerate((slice(0, 200), slice(200, 400))):
        X[share].assign(y=y[share]).to_parquet(tmp_path / f"part-{process}.parquet")
    processes = [_start(TWO_PROCESSES, {"XLA_FLAGS": ""}, i, port, tmp_path) for i in range(2)]
    reference = TabularRegressor(**FULL_BATCH).fit(X, y)
    first, second = (_result(p) for p in processes)
    assert first["devices"] == 2
    assert first == second  # the same model on both processes
    expected = reference.history_["val_loss"]
    assert _relative(first["val_loss"][-1], expected[-1]) < 0.01, (first["val_loss"], expected)
    np.testing.assert_allclose(first["predictions"], reference.predict(X[:50]), rtol=1e-4,
                               atol=1e-4)


# --- arguments ----------------------------------------------------------------------------------
@pytest.mark.skipif(BACKEND == "jax", reason="the error of backends other than JAX")
def test_data_parallel_off_jax_is_a_clear_error():
    X, y = table(40)
    with pytest.raises(ValueError, match=rf"distribution='data-parallel'.*'{BACKEND}'"
                                         r".*KERAS_BACKEND=jax"):
        TabularRegressor(distribution="data-parallel").fit(X, y)
    with pytest.raises(ValueError, match="needs the JAX backend"):
        _distribute.resolve(_Devices(2))  # any Distribution
    assert _distribute.resolve("auto") is None  # one device, silently


@pytest.mark.skipif(BACKEND == "jax", reason="the error of backends other than JAX")
def test_cli_distribution_arguments():
    result = CliRunner().invoke(main, ["fit", "--distribution", "data-parallel"])
    assert result.exit_code == 2
    assert "--distribution data-parallel needs the JAX backend" in result.output
    result = CliRunner().invoke(main, ["fit", "--devices", "2", "--distribution", "none"])
    assert result.exit_code == 2 and "--devices needs --distribution" in result.output
    result = CliRunner().invoke(main, ["fit", "--devices", "2", "--distribution", "auto"])
    assert result.exit_code == 2 and "trains on one device here" in result.output


@jax_only
def test_one_jax_device_is_no_distribution():
    if keras.distribution.get_device_count() > 1:
        pytest.skip("this process has several devices")
    assert _distribute.resolve("auto") is None
    assert _distribute.resolve("data-parallel") is None


def test_distribution_values_are_checked():
    X, y = table(40)
    with pytest.raises(ValueError, match="'distribution' parameter of TabularRegressor"):
        TabularRegressor(distribution="gpu").fit(X, y)


class _Devices:
    """What ``Feed`` reads of a distribution: its devices and processes."""

    def __init__(self, devices, processes=1):
        self.num_model_replicas, self.num_processes = devices, processes


def test_batches_split_evenly_over_the_devices():
    with pytest.raises(ValueError, match=r"batch_size=30 does not split evenly over the 4 "
                                         r"devices.*28 or 32"):
        _distribute.Feed(_Devices(4), 30, auto=False)
    assert _distribute.Feed(_Devices(4), 30, auto=True).batch_size == 32
    feed = _distribute.Feed(_Devices(4, processes=2), 64, auto=False)
    assert (feed.batch_size, feed.global_batch_size) == (32, 64)  # rows per process, in all
    feed = _distribute.Feed(_Devices(4), 32, auto=False)
    inputs, targets, weights = feed.rows({"numeric": np.arange(10.0)[:, None]},
                                         np.arange(10.0), None, "val_loss")
    assert len(targets) == len(inputs["numeric"]) == 12  # padded with row 0 at weight 0
    np.testing.assert_array_equal(weights, [1] * 10 + [0, 0])
    assert feed.factors == {"val_loss": 12 / 10}
    unchanged = feed.rows({"numeric": np.ones((8, 1))}, np.ones(8), None, "loss")
    assert unchanged[2] is None and "loss" not in feed.factors


def test_streamed_batches_are_padded_to_split_evenly():
    from tabattn.streaming import _pad

    feed = _distribute.Feed(_Devices(4), 32, auto=False)
    # 75 rows in batches of 32: the last has 11 rows, padded to 12.
    assert feed.padded_batches(75, "loss") == 4 and feed.factors == {"loss": 76 / 75}
    assert feed.padded_batches(64, "val_loss") == 4 and "val_loss" not in feed.factors
    batch = [{"numeric": np.arange(3.0)[:, None]}, np.arange(3.0), np.full(3, 2.0, "float32")]
    inputs, targets, weights = _pad(batch, 4)
    np.testing.assert_array_equal(inputs["numeric"][:, 0], [0, 1, 2, 0])
    np.testing.assert_array_equal(targets, [0, 1, 2, 0])
    np.testing.assert_array_equal(weights, [2, 2, 2, 0])
    assert _pad(batch, 3) is batch


def test_a_streamed_table_over_several_processes_is_a_clear_error(tmp_path, monkeypatch):
    X, y = table(40)
    path = tmp_path / "table.parquet"
    X.assign(y=y).to_parquet(path)
    monkeypatch.setattr(_distribute, "resolve", lambda value: _Devices(2, processes=2))
    with pytest.raises(ValueError, match="several processes is not supported with a table "
                                         "read in batches"):
        TabularRegressor(distribution="data-parallel").fit(str(path), "y")


def test_several_processes_need_a_seed_and_no_backup():
    with pytest.raises(ValueError, match="needs random_state"):
        _distribute.check_multi_process(None, None)
    with pytest.raises(ValueError, match="backup_dir is not supported"):
        _distribute.check_multi_process(0, "backup")


def test_processes_agree_on_settings_from_their_own_clocks(monkeypatch):
    assert _distribute.smallest(7) == 7 and _distribute.agreed(False) is False  # one process
    monkeypatch.setattr(_distribute, "is_multi_process", lambda distribution: True)
    gathered = {"flags": np.array([[False], [True]]), "values": np.array([[7.0], [3.0]])}
    monkeypatch.setattr(_distribute, "_allgather", lambda array: gathered[
        "flags" if np.asarray(array).dtype == bool else "values"])
    assert _distribute.smallest(7) == 3 and isinstance(_distribute.smallest(7), int)
    assert _distribute.agreed(False) is True  # set on another process


@pytest.mark.parametrize("rows, batch_size", [(1, 4096), (10, 4096), (300, 256), (45, 10)])
def test_every_prediction_batch_is_a_multiple_of_eight_rows(rows, batch_size):
    class Recorder:
        def predict(self, inputs, batch_size, verbose):
            x = inputs["numeric"]
            self.batches = [len(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
            return x[:, :1] * 2

    model = Recorder()
    x = np.arange(rows * 2, dtype="float32").reshape(rows, 2)
    outputs = _distribute.predict_rows(model, {"numeric": x}, batch_size)
    np.testing.assert_array_equal(outputs, x[:, :1] * 2)  # the padding's rows dropped
    assert all(size % _distribute.PREDICT_ROW_MULTIPLE == 0 for size in model.batches)
