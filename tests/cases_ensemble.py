"""Contract cases for ``tabattn/layers/ensemble.py``."""

from contract import Case, floats

import tabattn.layers as L

CASES = [
    # EnsembleView has no weights: the contract checks gradients through it with a probe.
    Case("EnsembleView", lambda: L.EnsembleView(k=3), (floats(5, 4),)),
    Case("EnsembleView/rank3", lambda: L.EnsembleView(k=3), (floats(5, 3, 4),)),
    # Random r and s, so every scaling differs from its start (each gets a gradient).
    Case("BatchEnsembleDense",
         lambda: L.BatchEnsembleDense(6, k=3, activation="relu", r_initializer="normal",
                                      s_initializer="random-signs"),
         (floats(5, 3, 4),)),
    Case("BatchEnsembleDense/chunks",
         lambda: L.BatchEnsembleDense(6, k=3, r_initializer="random-signs", r_chunks=[1, 3]),
         (floats(5, 3, 4),)),
    Case("EnsembleDense", lambda: L.EnsembleDense(2, k=3), (floats(5, 3, 4),)),
]
