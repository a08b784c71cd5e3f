"""Packaging promises: the core imports without the extras, and the CLI module loads lazily."""

import os
import subprocess
import sys

import keras

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
