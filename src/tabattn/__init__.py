"""tabattn: attention layers and models for deep learning on tabular data, on Keras 3.

The backend is Keras's choice: ``KERAS_BACKEND``, else the one in ``~/.keras/keras.json``
(TensorFlow when that file does not exist). Only when ``KERAS_BACKEND`` is unset, Keras is not
imported yet and Keras's choice is not installed does ``import tabattn`` choose an installed
backend (JAX, then PyTorch, then TensorFlow) and log which, once. Submodules load on first
use, so ``import tabattn`` is cheap and needs only Keras and NumPy:

- ``tabattn.layers``: attention layers (``MultiHeadAttention``, ``FeatureTokenizer``, ...).
- ``tabattn.models``: models built from them (``FTTransformer``).
- ``tabattn.data``: reading tables and fitted preprocessing (needs the ``cli`` extra).
- ``tabattn.TabularClassifier`` / ``tabattn.TabularRegressor``: scikit-learn estimators
  (need the ``cli`` extra), and ``tabattn.load`` to reload a saved one.
"""

import importlib
import importlib.util
import json
import logging
import os
import sys

__version__ = "0.1.0"

_BACKEND_MODULES = {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow",
                    "numpy": "numpy", "openvino": "openvino"}


def _keras_configured_backend():
    """The backend Keras would load: its config file's, or its default (TensorFlow)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as file:
            return str(json.load(file).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def _choose_backend():
    if os.environ.get("KERAS_BACKEND") or "keras" in sys.modules:
        return  # the user's choice, or too late to make one
    configured = _keras_configured_backend()
    module = _BACKEND_MODULES.get(configured, configured)
    if importlib.util.find_spec(module) is not None:
        return
    for backend in ("jax", "torch", "tensorflow"):
        if importlib.util.find_spec(backend) is not None:
            os.environ["KERAS_BACKEND"] = backend
            logging.getLogger("tabattn").warning(
                "tabattn: Keras's configured backend %r is not installed; using %r. Set "
                "KERAS_BACKEND to choose another.", configured, backend,
            )
            return


_choose_backend()

_SUBMODULES = {"layers", "models", "data", "estimators", "targets", "cli"}
_ATTRIBUTES = {
    "TabularClassifier": "tabattn.estimators",
    "TabularRegressor": "tabattn.estimators",
    "load": "tabattn.estimators",
}

__all__ = ["TabularClassifier", "TabularRegressor", "load", "layers", "models", "data"]


def __getattr__(name):
    # PEP 562 lazy loading: the CLI must set KERAS_BACKEND before Keras is imported.
    if name in _SUBMODULES:
        return importlib.import_module(f"tabattn.{name}")
    if name in _ATTRIBUTES:
        return getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'tabattn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES | set(_ATTRIBUTES))
