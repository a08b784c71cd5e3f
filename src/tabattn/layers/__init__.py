"""Public tabattn layers, grouped by family (one module each).

- ``classic``: scaled dot-product and multi-head attention and their classic relatives.
- ``embeddings``: feature tokenizers that turn table columns into tokens.
- ``row``: attention across rows (samples).
- ``column``: attention and selection across columns (features).
- ``tabular``: inter-feature plus inter-sample attention blocks.
- ``mixing``: weighting of several branches.
- ``channel``: channel attention for 1D CNNs over features.
"""

from tabattn.layers import channel, classic, column, embeddings, mixing, row, tabular
from tabattn.layers.channel import *  # noqa: F401,F403
from tabattn.layers.classic import *  # noqa: F401,F403
from tabattn.layers.column import *  # noqa: F401,F403
from tabattn.layers.embeddings import *  # noqa: F401,F403
from tabattn.layers.mixing import *  # noqa: F401,F403
from tabattn.layers.row import *  # noqa: F401,F403
from tabattn.layers.tabular import *  # noqa: F401,F403

__all__ = sorted(
    [
        *channel.__all__,
        *classic.__all__,
        *column.__all__,
        *embeddings.__all__,
        *mixing.__all__,
        *row.__all__,
        *tabular.__all__,
    ]
)
