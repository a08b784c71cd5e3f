"""The AdamW both models train with: no weight decay on norms, biases and embeddings."""

import keras


def adamw_without_decay_on(model, excluded, learning_rate, weight_decay, **kwargs):
    """AdamW that decays every weight of ``model`` except ``excluded``, LayerNorm weights
    and biases (the rule of the papers' code, rtdl and TabR); ``kwargs`` go to
    ``keras.optimizers.AdamW`` (e.g. ``use_ema=True``)."""
    optimizer = keras.optimizers.AdamW(
        learning_rate=learning_rate, weight_decay=weight_decay, **kwargs
    )
    excluded = list(excluded)
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.LayerNormalization):
            excluded.extend(layer.weights)
    excluded.extend(w for w in model.weights if w.path.endswith("bias"))
    optimizer.exclude_from_weight_decay(var_list=excluded)
    return optimizer
