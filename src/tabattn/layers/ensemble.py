"""BatchEnsemble layers: one network that holds ``k`` ensemble members at once.

The layers of TabM (Gorishniy et al., ICLR 2025). A batch ``(batch_size, d)`` is first
viewed as ``(batch_size, k, d)`` (``EnsembleView``): member ``i`` reads row ``[:, i]``.
``BatchEnsembleDense`` then gives each member its own linear layer
``((x ⊙ r_i) W) ⊙ s_i + b_i`` that shares ``W`` with the other members and owns only the
vectors ``r_i``, ``s_i`` and ``b_i``; ``EnsembleDense`` gives each member a fully separate
linear layer (TabM's output heads). Every member sees only its own slice, so a member's
output for a row never depends on the other members or on the other rows of the batch.
"""

__all__ = ["BatchEnsembleDense", "EnsembleDense", "EnsembleView"]

import math

import keras
import numpy as np
from keras import ops

from tabattn.layers import _checks

SCALING_INITIALIZERS = ("ones", "random-signs", "normal")


def _rsqrt_uniform(fan_in):
    # TabM's (and PyTorch's nn.Linear's) U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    limit = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-limit, limit)


def _check_chunks(name, chunks):
    if chunks is None:
        return None
    if isinstance(chunks, (str, bytes)) or not len(chunks):
        raise ValueError(
            f"`{name}` must be None or a non-empty list of positive integers. "
            f"Received: {name}={chunks!r}"
        )
    return tuple(_checks.positive_int(f"{name}[{j}]", c) for j, c in enumerate(chunks))


def scaling_initializer(kind, chunks=None):
    """Initializer of a ``(k, d)`` scaling, as TabM draws it.

    ``"ones"``: all ones. ``"random-signs"``: each entry ±1 with probability 1/2.
    ``"normal"``: each entry from N(0, 1). With ``chunks`` (sizes summing to ``d``), the
    entries of one chunk share one random value per member: TabM draws one value per input
    feature, however many columns the feature's embedding or one-hot code takes.
    """
    _checks.one_of("scaling initializer", kind, SCALING_INITIALIZERS)

    def initializer(shape, dtype=None):
        dtype = dtype or "float32"
        if kind == "ones":
            return ops.ones(shape, dtype)
        k, d = shape
        n = d if chunks is None else len(chunks)
        if kind == "normal":
            values = keras.random.normal((k, n), dtype="float32")
        else:
            values = 2.0 * ops.cast(keras.random.uniform((k, n)) < 0.5, "float32") - 1.0
        if chunks is not None:
            if sum(chunks) != d:
                raise ValueError(
                    f"The chunks of a scaling must add up to its size {d}. "
                    f"Received: chunks summing to {sum(chunks)}"
                )
            values = ops.take(values, np.repeat(np.arange(n), chunks), axis=1)
        return ops.cast(values, dtype)

    return initializer


@keras.saving.register_keras_serializable(package="tabattn")
class EnsembleView(keras.layers.Layer):
    """Give each of ``k`` ensemble members its own view of a batch: ``(b, d) -> (b, k, d)``.

    A rank-2 input is repeated ``k`` times along a new axis 1, so every member reads the
    same rows (TabM's default, "shared training batches"). A rank-3 input that already holds
    one row per member, ``(batch_size, k, d)``, is returned unchanged. No weights.

    Args:
        k: number of ensemble members, a positive integer.
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: ``(batch_size, d)`` or ``(batch_size, k, d)``, any dtype.

    Returns:
        ``(batch_size, k, d)`` in the input's dtype.

    Raises:
        ValueError: if ``k`` is not a positive integer, or the input is not of rank 2 or 3,
            or a rank-3 input has another size than ``k`` on axis 1.

    Example:

    >>> import numpy as np
    >>> tuple(EnsembleView(k=4)(np.ones((2, 3), "float32")).shape)
    (2, 4, 3)

    Reference:
        Gorishniy, Kotelnikov & Babenko, "TabM: Advancing Tabular Deep Learning with
        Parameter-Efficient Ensembling", ICLR 2025, §3 (``tabm.EnsembleView``).
    """

    def __init__(self, k, **kwargs):
        super().__init__(**kwargs)
        self.k = _checks.positive_int("k", k)
        self.supports_masking = False

    def build(self, input_shape):
        name = type(self).__name__
        _checks.rank("inputs", input_shape, (2, 3), name)
        if len(input_shape) == 3 and input_shape[1] not in (None, self.k):
            raise ValueError(
                f"{name} with k={self.k} expects a rank-3 input of shape (batch_size, {self.k}, "
                f"d). Received: inputs.shape={tuple(input_shape)}"
            )

    def call(self, inputs):
        if len(inputs.shape) == 3:
            return inputs
        return ops.repeat(ops.expand_dims(inputs, 1), self.k, axis=1)

    def compute_output_shape(self, input_shape):
        if len(input_shape) == 3:
            return tuple(input_shape)
        return (input_shape[0], self.k, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(k=self.k)
        return config


def _check_ensemble_input(layer, k, input_shape):
    _checks.rank("inputs", input_shape, 3, layer)
    if input_shape[1] != k or input_shape[-1] is None:
        raise ValueError(
            f"{layer} with k={k} expects inputs of shape (batch_size, {k}, d) with a known d "
            f"(use EnsembleView first). Received: inputs.shape={tuple(input_shape)}"
        )


class _EnsembleLinear(keras.layers.Layer):
    """What the two ensemble dense layers share: sizes, activation, bias, config."""

    def __init__(self, units, k, activation=None, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.units = _checks.positive_int("units", units)
        self.k = _checks.positive_int("k", k)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)

    def _finish(self, outputs):
        if self.bias is not None:
            outputs = outputs + self.bias
        return self.activation(outputs) if self.activation is not None else outputs

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.k, self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            k=self.k,
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
        )
        return config


@keras.saving.register_keras_serializable(package="tabattn")
class BatchEnsembleDense(_EnsembleLinear):
    """BatchEnsemble linear layer: ``k`` dense layers that share one weight matrix.

    Member ``i`` computes ``y_i = activation(((x_i ⊙ r_i) W) ⊙ s_i + b_i)``: ``W`` (``d_in ×
    units``) is shared by all members, and each member owns the vectors ``r_i`` (size
    ``d_in``), ``s_i`` (size ``units``) and ``b_i`` (size ``units``). All members run as one
    matrix product over ``batch_size * k`` rows, so the layer costs about what one dense
    layer costs on a ``k`` times larger batch, with ``k * (d_in + 2 * units)`` weights on top
    of one layer's.

    Initialisation as in TabM: ``W`` and the bias from U(-1/sqrt(d_in), 1/sqrt(d_in)), the
    same bias for every member (a shared bias plus per-member offsets that start at zero);
    ``r`` and ``s`` from ``r_initializer`` and ``s_initializer``. TabM draws ``r`` at random
    only in its first layer (``"random-signs"`` without numeric embeddings, ``"normal"`` with
    them, one value per input feature: ``r_chunks``), and all other scalings as ones, so
    that members differ from the first step on while deeper layers start identical.

    Args:
        units: output size of each member, a positive integer.
        k: number of ensemble members, a positive integer.
        activation: Keras activation applied to the output (name or callable). Default
            ``None`` (linear).
        use_bias: whether the members have biases ``b_i``. Default ``True``.
        r_initializer: ``"ones"`` (default), ``"random-signs"`` or ``"normal"``: the input
            scalings ``r``.
        s_initializer: the same choices for the output scalings ``s``. Default ``"ones"``.
        r_chunks: optional list of positive sizes summing to ``d_in``: the entries of ``r``
            within one chunk share one random value per member (see above). Default
            ``None``: every entry drawn on its own.
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: float ``(batch_size, k, d_in)``, row ``[:, i]`` read by member ``i``
            (``EnsembleView`` makes it from ``(batch_size, d_in)``).

    Returns:
        ``(batch_size, k, units)`` in the layer's compute dtype.

    Raises:
        ValueError: if ``units`` or ``k`` is not a positive integer, an initializer is not
            one of the choices above, ``r_chunks`` holds a non-positive size or does not add
            up to ``d_in``, or the input is not ``(batch_size, k, d_in)`` with a known
            ``d_in``.

    Example:

    >>> import numpy as np
    >>> layer = BatchEnsembleDense(8, k=4, r_initializer="random-signs")
    >>> x = np.random.rand(2, 4, 3).astype("float32")
    >>> tuple(layer(x).shape)
    (2, 4, 8)
    >>> tuple(layer.kernel.shape), tuple(layer.r.shape), tuple(layer.s.shape)
    ((3, 8), (4, 3), (4, 8))

    Reference:
        Wen, Tran & Ba, "BatchEnsemble: an Alternative Approach to Efficient Ensemble and
        Lifelong Learning", ICLR 2020, Eq. 5; initialisation: Gorishniy, Kotelnikov &
        Babenko, "TabM", ICLR 2025, §3.3 (``tabm.LinearBatchEnsemble``).
    """

    def __init__(
        self,
        units,
        k,
        activation=None,
        use_bias=True,
        r_initializer="ones",
        s_initializer="ones",
        r_chunks=None,
        **kwargs,
    ):
        super().__init__(units, k, activation=activation, use_bias=use_bias, **kwargs)
        self.r_initializer = _checks.one_of("r_initializer", r_initializer, SCALING_INITIALIZERS)
        self.s_initializer = _checks.one_of("s_initializer", s_initializer, SCALING_INITIALIZERS)
        self.r_chunks = _check_chunks("r_chunks", r_chunks)

    def build(self, input_shape):
        name = type(self).__name__
        _check_ensemble_input(name, self.k, input_shape)
        d_in = input_shape[-1]
        if self.r_chunks is not None and sum(self.r_chunks) != d_in:
            raise ValueError(
                f"{name}: `r_chunks` must add up to the input size {d_in}. "
                f"Received: r_chunks summing to {sum(self.r_chunks)}"
            )
        init = _rsqrt_uniform(d_in)
        self.kernel = self.add_weight(name="kernel", shape=(d_in, self.units), initializer=init)
        self.r = self.add_weight(
            name="r", shape=(self.k, d_in),
            initializer=scaling_initializer(self.r_initializer, self.r_chunks),
        )
        self.s = self.add_weight(
            name="s", shape=(self.k, self.units),
            initializer=scaling_initializer(self.s_initializer),
        )
        self.bias = None
        if self.use_bias:
            # One draw shared by the members (TabM's initialisation).
            self.bias = self.add_weight(
                name="bias", shape=(self.k, self.units),
                initializer=lambda shape, dtype=None: ops.ones((shape[0], 1), dtype=dtype)
                * init((1, shape[1]), dtype=dtype),  # a product: its own memory on torch
            )

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype) * self.r
        return self._finish(ops.matmul(x, self.kernel) * self.s)

    def get_config(self):
        config = super().get_config()
        config.update(
            r_initializer=self.r_initializer,
            s_initializer=self.s_initializer,
            r_chunks=None if self.r_chunks is None else list(self.r_chunks),
        )
        return config


@keras.saving.register_keras_serializable(package="tabattn")
class EnsembleDense(_EnsembleLinear):
    """``k`` independent dense layers, one per ensemble member: ``y_i = x_i W_i + b_i``.

    Unlike ``BatchEnsembleDense`` nothing is shared: member ``i`` owns its whole ``(d_in,
    units)`` kernel ``W_i`` and bias ``b_i``. TabM uses it as the output head of each member.
    Kernels and biases start from U(-1/sqrt(d_in), 1/sqrt(d_in)), drawn for each member.

    Args:
        units: output size of each member, a positive integer.
        k: number of ensemble members, a positive integer.
        activation: Keras activation applied to the output. Default ``None`` (linear).
        use_bias: whether each member has a bias. Default ``True``.
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: float ``(batch_size, k, d_in)``.

    Returns:
        ``(batch_size, k, units)`` in the layer's compute dtype.

    Raises:
        ValueError: if ``units`` or ``k`` is not a positive integer, or the input is not
            ``(batch_size, k, d_in)`` with a known ``d_in``.

    Example:

    >>> import numpy as np
    >>> layer = EnsembleDense(2, k=4)
    >>> tuple(layer(np.random.rand(5, 4, 3).astype("float32")).shape)
    (5, 4, 2)
    >>> tuple(layer.kernel.shape)
    (4, 3, 2)

    Reference:
        Gorishniy, Kotelnikov & Babenko, "TabM", ICLR 2025, §3 (``tabm.LinearEnsemble``).
    """

    def build(self, input_shape):
        _check_ensemble_input(type(self).__name__, self.k, input_shape)
        d_in = input_shape[-1]
        init = _rsqrt_uniform(d_in)
        self.kernel = self.add_weight(
            name="kernel", shape=(self.k, d_in, self.units), initializer=init
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.k, self.units), initializer=init)

    def call(self, inputs):
        return self._finish(
            ops.einsum("bki,kio->bko", ops.cast(inputs, self.compute_dtype), self.kernel)
        )
