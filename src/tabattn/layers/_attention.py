"""The attention kernels that every tabattn attention layer shares.

Layout: ``q`` ``(batch, Tq, heads, d)``, ``k`` ``(batch, Tv, heads, d)``, ``v``
``(batch, Tv, heads, d_v)``; masks ``(batch, 1, Tq, Tv)`` boolean, ``True`` = may attend.
"""

from keras import ops

# Logit given to masked positions before the softmax: large enough to vanish, small enough
# to stay finite in float32 (so a fully masked row has no inf - inf = NaN).
MASK_LOGIT = -1e9


def as_attention_mask(mask, query_len):
    """Turn a boolean mask broadcastable to (batch, Tq, Tv) into (batch, 1, Tq, Tv)."""
    mask = ops.cast(mask, "bool")
    if len(mask.shape) == 2:  # (batch, Tv): a key padding mask
        mask = ops.expand_dims(mask, axis=1)
    mask = ops.expand_dims(mask, axis=1)  # heads axis
    # Make the Tq axis explicit: fused kernels need it, and it is cheap.
    return ops.logical_and(mask, ops.ones((1, 1, query_len, 1), dtype="bool"))


def masked_softmax(logits, mask=None, axis=-1):
    """Float32 softmax over ``axis``; masked entries get 0 and fully masked rows are all 0."""
    logits = ops.cast(logits, "float32")
    if mask is None:
        return ops.softmax(logits, axis=axis)
    weights = ops.softmax(ops.where(mask, logits, MASK_LOGIT), axis=axis)
    return ops.where(ops.any(mask, axis=axis, keepdims=True), weights, 0.0)


def fused_attention(q, k, v, mask, scale):
    """``softmax(scale * Q Kᵀ) V`` with ``keras.ops.dot_product_attention``.

    Returns the context ``(batch, Tq, heads, d_v)`` in the dtype of ``q``; logits and softmax
    run in float32 under mixed precision; a fully masked query gets a zero context.
    """
    compute_dtype = ops.dtype(q)  # a string on every backend (torch dtypes are not)
    if compute_dtype in ("float16", "bfloat16"):
        q, k, v = (ops.cast(t, "float32") for t in (q, k, v))
    depth, depth_v = q.shape[-1], v.shape[-1]
    if depth != depth_v:
        # JAX's kernel needs one size for q, k and v: zero-pad the smaller side (zeros add
        # nothing to Q Kᵀ) and slice the padding off the context.
        width = max(depth, depth_v)
        q, k = (ops.pad(t, [(0, 0)] * 3 + [(0, width - depth)]) for t in (q, k))
        v = ops.pad(v, [(0, 0)] * 3 + [(0, width - depth_v)])
    context = ops.dot_product_attention(q, k, v, mask=mask, scale=scale)[..., :depth_v]
    if mask is not None:
        # Fused kernels average the values of a fully masked row; we want zeros.
        any_key = ops.any(mask, axis=-1)  # (batch, 1, Tq)
        any_key = ops.transpose(any_key, (0, 2, 1))[..., None]  # (batch, Tq, 1, 1)
        context = ops.where(any_key, context, ops.zeros_like(context))
    return ops.cast(context, compute_dtype)


def explicit_attention(q, k, v, mask, scale, dropout_layer=None, training=None):
    """The same attention with an explicit float32 softmax; also returns the probabilities.

    Returns ``(context (batch, Tq, heads, d_v), scores (batch, heads, Tq, Tv) float32)``;
    dropout (in training) acts on the probabilities that weight the values, not on
    ``scores``.
    """
    logits = ops.einsum("bqhd,bkhd->bhqk", ops.cast(q, "float32"), ops.cast(k, "float32"))
    scores = masked_softmax(logits * scale, mask)
    probs = ops.cast(scores, ops.dtype(v))
    if dropout_layer is not None:
        probs = dropout_layer(probs, training=training)
    context = ops.einsum("bhqk,bkhd->bqhd", probs, v)
    return context, scores
