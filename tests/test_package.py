"""Packaging promises: the core imports without the extras, and the CLI module loads lazily."""

import os
import subprocess
import sys

import keras
import pytest

import tabattn

BLOCK_EXTRAS = """
import sys
for name in ("pandas", "sklearn", "matplotlib", "click", "pyarrow"):
    sys.modules[name] = None  # any import of an extra now raises ImportError
import numpy as np
import tabattn, tabattn.layers, tabattn.models
model = tabattn.models.FTTransformer(3, n_blocks=1, d_token=8, num_heads=2)
print(tuple(model({"numeric": np.zeros((2, 3), "float32")}).shape))
"""


def test_core_works_without_the_extras():
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_EXTRAS], capture_output=True, text=True, env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("(2, 1)")


def test_lazy_attributes():
    assert tabattn.__version__
    assert tabattn.TabularClassifier.__name__ == "TabularClassifier"
    assert callable(tabattn.load)
    assert {"layers", "models", "TabularRegressor"} <= set(dir(tabattn))
    try:
        tabattn.no_such_thing
    except AttributeError as error:
        assert "no_such_thing" in str(error)
    else:
        raise AssertionError("expected AttributeError")


PRINT_BACKEND = "import tabattn, keras; print(keras.backend.backend())"


def _backend_in_clean_process(tmp_path, config=None, **env):
    """The backend of ``import tabattn`` in a new process with its own HOME."""
    home = tmp_path / f"home{len(list(tmp_path.iterdir()))}"
    (home / ".keras").mkdir(parents=True)
    if config is not None:
        (home / ".keras" / "keras.json").write_text(config)
    clean = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "KERAS_HOME")}
    result = subprocess.run(
        [sys.executable, "-c", PRINT_BACKEND], capture_output=True, text=True, timeout=300,
        env=dict(clean, HOME=str(home), **env),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1], result.stderr


@pytest.mark.torch_only  # the backend of the test process does not matter
def test_import_chooses_an_installed_backend_when_kerass_is_missing(tmp_path):
    # Keras's configured backend is not installed here: tabattn picks JAX and says so.
    backend, log = _backend_in_clean_process(tmp_path, '{"backend": "openvino"}')
    assert backend == "jax"
    assert log.count("Keras's configured backend 'openvino' is not installed; using 'jax'") == 1


@pytest.mark.torch_only
def test_import_keeps_the_users_backend(tmp_path):
    backend, log = _backend_in_clean_process(tmp_path, '{"backend": "openvino"}',
                                             KERAS_BACKEND="torch")
    assert backend == "torch" and "tabattn:" not in log
    backend, log = _backend_in_clean_process(tmp_path)  # Keras's default, installed here
    assert backend == "tensorflow" and "tabattn:" not in log
