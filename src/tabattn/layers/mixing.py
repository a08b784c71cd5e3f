"""Weighting of several branches: a learned, optionally sparse, mixture of same-shaped outputs."""

__all__ = ["SparseAttentionWeighting"]

import keras
from keras import ops

from tabattn.layers import _checks


def _sorted_descending(z):
    return ops.flip(ops.sort(z, axis=-1), axis=-1)


def _sparsemax(z):
    """Sparsemax over the last axis: the Euclidean projection of ``z`` onto the simplex.

    Exact and sort-based (Martins & Astudillo 2016, Algorithm 1). The support size is a
    count, so autodiff goes only through the threshold ``tau`` and gives the sparsemax
    Jacobian; no custom gradient is needed.
    """
    z = z - ops.max(z, axis=-1, keepdims=True)
    z_sorted = _sorted_descending(z)
    rank = ops.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    # The entries with 1 + k z_(k) > sum_{j<=k} z_(j) form a prefix of the sorted vector.
    in_support = 1.0 + rank * z_sorted > ops.cumsum(z_sorted, axis=-1)
    support_size = ops.sum(ops.cast(in_support, z.dtype), axis=-1, keepdims=True)
    support_sum = ops.sum(ops.where(in_support, z_sorted, 0.0), axis=-1, keepdims=True)
    tau = (support_sum - 1.0) / support_size
    return ops.maximum(z - tau, 0.0)


def _entmax15(z):
    """1.5-entmax over the last axis, exact and sort-based (Peters et al. 2019, Algorithm 2).

    ``p_i = max(z_i / 2 - tau, 0)²`` with ``tau`` chosen so that ``p`` sums to 1. For each
    candidate support size ``k`` (the ``k`` largest entries) the threshold solves a quadratic
    in closed form; the support is the largest ``k`` whose threshold stays below
    ``z_(k) / 2``.
    """
    z = (z - ops.max(z, axis=-1, keepdims=True)) / 2.0
    z_sorted = _sorted_descending(z)
    rank = ops.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    mean = ops.cumsum(z_sorted, axis=-1) / rank
    mean_sq = ops.cumsum(ops.square(z_sorted), axis=-1) / rank
    delta = (1.0 - rank * (mean_sq - ops.square(mean))) / rank
    tau_candidates = mean - ops.sqrt(ops.maximum(delta, 0.0))
    support_size = ops.sum(
        ops.cast(tau_candidates <= z_sorted, "int32"), axis=-1, keepdims=True
    )
    # Take the square root only at the support, where delta > 0 strictly: the sqrt of a
    # clipped zero elsewhere would send 0 * inf = NaN into the gradient.
    index = support_size - 1
    tau = ops.take_along_axis(mean, index, axis=-1) - ops.sqrt(
        ops.take_along_axis(delta, index, axis=-1)
    )
    return ops.square(ops.maximum(z - tau, 0.0))


def _softmax(z):
    # Not ops.softmax: it warns on an axis of size 1, which num_modules=1 gives.
    return ops.exp(z - ops.logsumexp(z, axis=-1, keepdims=True))


_NORMALIZATIONS = {
    "softmax": _softmax,
    "sparsemax": _sparsemax,
    "entmax15": _entmax15,
}


def _same_shape(a, b):
    """Whether two static shapes agree, an unknown size (None) matching any size."""
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


@keras.saving.register_keras_serializable(package="tabattn")
class SparseAttentionWeighting(keras.layers.Layer):
    """Learned weighted sum of several same-shaped branch outputs.

    The layer holds one logit per branch (``attention_weights``, initialised to ones, so the
    mixture starts uniform). The logits are divided by ``temperature`` and normalised into
    probabilities ``p`` with softmax, sparsemax or 1.5-entmax; the output is
    ``sum_i p_i * inputs[i]``. Sparsemax and 1.5-entmax give exact zeros, so a branch can be
    switched off entirely; 1.5-entmax is smoother and less sparse than sparsemax. A lower
    temperature makes the mixture sharper (and, for the sparse normalisations, sparser). The
    normalisation runs in float32 under mixed precision; the sum runs in the compute dtype.

    The weights do not depend on the inputs: each row of the output depends only on the same
    row of the inputs, not on other rows in the batch.

    Args:
        num_modules: number of branches to mix, a positive integer.
        temperature: divides the logits before normalising; a finite number > 0. Default 1.0.
        normalization: ``"softmax"`` (default), ``"sparsemax"`` or ``"entmax15"``.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: a list of ``num_modules`` float tensors of one shape ``(batch_size, ...)``.

    Returns:
        The weighted sum, of the inputs' shape ``(batch_size, ...)``.

    Raises:
        ValueError: if ``num_modules`` is not a positive integer, ``temperature`` is not a
            finite number > 0, ``normalization`` is unknown, or the inputs are not a list of
            ``num_modules`` tensors of one shape.

    Example:

    >>> import numpy as np
    >>> layer = SparseAttentionWeighting(num_modules=3, normalization="sparsemax")
    >>> branches = [np.random.rand(4, 6).astype("float32") for _ in range(3)]
    >>> tuple(layer(branches).shape)
    (4, 6)
    >>> def show(probs):
    ...     print(np.round(keras.ops.convert_to_numpy(probs).astype("float64"), 3))
    >>> show(layer.module_weights())  # uniform at the start
    [0.333 0.333 0.333]
    >>> _ = layer.attention_weights.assign([2.0, 0.0, 1.6])
    >>> show(layer.module_weights())  # the second branch is switched off
    [0.7 0.  0.3]

    Reference:
        Martins & Astudillo, "From Softmax to Sparsemax: A Sparse Model of Attention and
        Multi-Label Classification", ICML 2016, §2 and Algorithm 1 (sparsemax). Peters,
        Niculae & Martins, "Sparse Sequence-to-Sequence Models", ACL 2019, §2-3 and
        Algorithm 2 (1.5-entmax).
    """

    def __init__(self, num_modules, temperature=1.0, normalization="softmax", **kwargs):
        super().__init__(**kwargs)
        self.num_modules = _checks.positive_int("num_modules", num_modules)
        self.temperature = _checks.positive_float("temperature", temperature)
        self.normalization = _checks.one_of("normalization", normalization, set(_NORMALIZATIONS))

    def build(self, input_shape):
        self._check_input_shapes(input_shape)
        # Not autocast: the logits and their normalisation stay float32 under mixed precision.
        self.attention_weights = self.add_weight(
            name="attention_weights",
            shape=(self.num_modules,),
            initializer="ones",
            autocast=False,
        )

    def _check_input_shapes(self, shapes):
        if not isinstance(shapes, (list, tuple)) or not all(
            isinstance(shape, (list, tuple)) for shape in shapes
        ):
            raise ValueError(
                f"SparseAttentionWeighting expects a list of num_modules={self.num_modules} "
                f"tensors. Received: one tensor of shape {tuple(shapes)}"
            )
        if len(shapes) != self.num_modules:
            raise ValueError(
                f"SparseAttentionWeighting was built with num_modules={self.num_modules}, "
                f"but received {len(shapes)} inputs. Pass num_modules={len(shapes)}."
            )
        shapes = [tuple(shape) for shape in shapes]
        if not all(_same_shape(shapes[0], shape) for shape in shapes[1:]):
            raise ValueError(
                f"SparseAttentionWeighting expects inputs of one shape. Received shapes: {shapes}"
            )

    def module_weights(self):
        """The current mixture probabilities: a float32 tensor of shape ``(num_modules,)``."""
        logits = ops.cast(self.attention_weights, "float32") / self.temperature
        return _NORMALIZATIONS[self.normalization](logits)

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            self._check_input_shapes([tuple(x.shape) for x in inputs])
        else:
            self._check_input_shapes(tuple(inputs.shape))
        weights = ops.cast(self.module_weights(), inputs[0].dtype)
        outputs = weights[0] * inputs[0]
        for i in range(1, self.num_modules):
            outputs = outputs + weights[i] * inputs[i]
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_modules=self.num_modules,
            temperature=self.temperature,
            normalization=self.normalization,
        )
        return config
