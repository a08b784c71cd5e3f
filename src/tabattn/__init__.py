"""tabattn: attention layers and models for deep learning on tabular data, on Keras 3.

The backend is Keras's choice (``KERAS_BACKEND``); tabattn never picks one. Submodules load
on first use, so ``import tabattn`` is cheap and needs only Keras and NumPy:

- ``tabattn.layers``: attention layers (``MultiHeadAttention``, ``FeatureTokenizer``, ...).
- ``tabattn.models``: models built from them (``FTTransformer``).
- ``tabattn.data``: reading tables and fitted preprocessing (needs the ``cli`` extra).
- ``tabattn.TabularClassifier`` / ``tabattn.TabularRegressor``: scikit-learn estimators
  (need the ``cli`` extra), and ``tabattn.load`` to reload a saved one.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = {"layers", "models", "data", "estimators", "cli"}
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
