"""Contract cases for ``tabattn/layers/column.py``."""

from contract import Case, floats

import tabattn.layers as L

CASES = [
    Case("ColumnAttention", lambda: L.ColumnAttention(input_dim=6), (floats(4, 6),),
         returns_scores=True),
    Case("GatedResidualNetwork/projected", lambda: L.GatedResidualNetwork(8, dropout=0.1),
         (floats(4, 5),)),
    Case("GatedResidualNetwork/rank3+context", lambda: L.GatedResidualNetwork(6),
         (floats(4, 3, 6),), {"context": floats(4, 2)}),
    Case("VariableSelection/plain", lambda: L.VariableSelection(3, 8), (floats(4, 3, 2),)),
    Case("VariableSelection/context_list",
         lambda: L.VariableSelection(units=8, use_context=True),
         ([floats(4, 3, 2), floats(4, 2)],)),
    Case("VariableSelection/context_keyword+rank2",
         lambda: L.VariableSelection(3, 4, dropout_rate=0.0, use_context=True),
         (floats(4, 3),), {"context": floats(4, 3)}),
]
