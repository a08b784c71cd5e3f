"""MkDocs hooks: draw the attention figures of the docs from small models trained on Adult.

``mkdocs build`` (and ``make docs``) trains four tiny models on rows of the UCI Adult data
bundled with tabattn and draws their attention weights into ``docs/figures/`` (ignored by
git). ``mkdocs serve`` draws them only when they are missing, since writing into ``docs/``
would make it rebuild again and again; delete the folder to draw them anew.

Everything here is small on purpose (a few thousand rows, a few epochs, tokens of size 8 to
32): the whole set takes well under a minute on two CPU cores. The figures show what the
layers compute on real rows, not how accurate these toy models are.
"""

import logging
import os
import pathlib
import sys
import time
import warnings

DOCS = pathlib.Path(__file__).resolve().parent
FIGURES = DOCS / "figures"
# The docs describe the source tree they are built from, not whatever tabattn is installed.
sys.path.insert(0, str(DOCS.parent / "src"))

log = logging.getLogger("mkdocs.hooks.figures")

NAMES = ("variable_selection", "tabular_attention", "retrieval_attention", "ft_transformer")
_command = "build"


def on_startup(command, dirty, **kwargs):
    global _command
    _command = command


def on_pre_build(config, **kwargs):
    missing = [name for name in NAMES if not (FIGURES / f"{name}.png").exists()]
    if _command == "serve" and not missing:
        return
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The models are tiny: XLA's compile time dwarfs their run time, so compile with fewer
    # optimisation passes (this more than halves the time of the figures on JAX).
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    )
    FIGURES.mkdir(exist_ok=True)
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the libraries' deprecation notices, not the docs'
        draw_all(FIGURES)
    log.info("Drew %d figures in %.1f s", len(NAMES), time.monotonic() - started)


# --- data ---------------------------------------------------------------------------------


def adult_inputs(n_train=3000, n_test=1000):
    """Preprocessed Adult rows: ``(preprocessor, x_train, y_train, x_test, y_test)``.

    ``x_*`` are the model-input dicts of ``tabattn.data.TabularPreprocessor`` (numeric columns
    quantile-normalised, categorical columns as codes); ``y_*`` are 0/1 labels (1: >50K).
    """
    from tabattn.data import TabularPreprocessor, load_adult

    adult = load_adult()
    train = adult[adult["split"] == "train"].sample(n_train, random_state=0)
    test = adult[adult["split"] == "test"].sample(n_test, random_state=0)
    features = [c for c in adult.columns if c not in ("income", "split")]
    preprocessor = TabularPreprocessor().fit(train[features])
    return (
        preprocessor,
        preprocessor.transform(train[features]),
        (train["income"] == ">50K").to_numpy("float32"),
        preprocessor.transform(test[features]),
        (test["income"] == ">50K").to_numpy("float32"),
    )


def _tokens_model(preprocessor, body, d_token):
    """A binary classifier ``tokens -> body -> Dense(1)`` on the preprocessor's inputs.

    ``body`` maps ``(batch, n_features, d_token)`` tokens to ``(batch, d)`` and anything else
    to read later (attention weights). Returns the compiled model, its inputs and the extras.
    """
    import keras

    from tabattn.layers import FeatureTokenizer

    inputs = {
        "numeric": keras.Input((preprocessor.n_numeric_tokens,), name="numeric"),
        "categorical": keras.Input(
            (len(preprocessor.categorical_cardinalities),), dtype="int32", name="categorical"
        ),
    }
    tokenizer = FeatureTokenizer(d_token, preprocessor.categorical_cardinalities)
    features, extras = body(tokenizer(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(features))
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    return model, inputs, extras


# --- figures ------------------------------------------------------------------------------


def draw_all(folder):
    import keras
    import matplotlib

    matplotlib.use("Agg")
    keras.utils.set_random_seed(0)
    data = adult_inputs()
    for name in NAMES:
        keras.utils.set_random_seed(0)
        globals()[f"draw_{name}"](data, folder / f"{name}.png")


def _heatmap(ax, values, xlabels, ylabels, title, cmap="viridis", vmin=0.0, vmax=None):
    import numpy as np

    image = ax.imshow(values, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(np.arange(len(xlabels)), xlabels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(np.arange(len(ylabels)), ylabels, fontsize=8)
    ax.set_title(title, fontsize=10)
    return image


def _row_labels(y, n):
    return [f"row {i + 1} ({'>50K' if label else '<=50K'})" for i, label in enumerate(y[:n])]


def draw_variable_selection(data, path):
    """Selection weights of ``VariableSelection`` for 20 test rows, one column per feature."""
    import keras
    import matplotlib.pyplot as plt

    from tabattn.layers import VariableSelection

    preprocessor, x_train, y_train, x_test, y_test = data
    selection = VariableSelection(units=16, dropout_rate=0.0)
    model, inputs, weights = _tokens_model(preprocessor, selection, d_token=8)
    model.fit(x_train, y_train, epochs=4, batch_size=128, verbose=0)
    rows = {k: v[:20] for k, v in x_test.items()}
    weights = keras.Model(inputs, weights).predict(rows, verbose=0)

    fig, ax = plt.subplots(figsize=(8, 5.2))
    image = _heatmap(ax, weights, preprocessor.token_columns_, _row_labels(y_test, 20),
                     "VariableSelection: weight of each feature, per row")
    fig.colorbar(image, ax=ax, label="selection weight (each row sums to 1)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    keras.backend.clear_session()


def draw_tabular_attention(data, path):
    """``TabularAttention``: feature-to-feature attention, and row-to-row attention."""
    import keras
    import matplotlib.pyplot as plt
    import numpy as np
    from keras import ops

    from tabattn.layers import TabularAttention

    preprocessor, x_train, y_train, x_test, y_test = data
    block = TabularAttention(num_heads=2, d_model=8, dropout_rate=0.0)

    def body(tokens):
        tokens, scores = block(tokens, return_attention_scores=True)
        return ops.mean(tokens, axis=1), scores

    model, inputs, scores = _tokens_model(preprocessor, body, d_token=8)
    model.fit(x_train, y_train, epochs=3, batch_size=128, verbose=0)
    n_rows = 16  # one batch: sample attention is over the rows of the batch
    rows = {k: v[:n_rows] for k, v in x_test.items()}
    scores = keras.Model(inputs, scores).predict(rows, batch_size=n_rows, verbose=0)
    features = preprocessor.token_columns_
    feature_map = scores["feature"].mean(axis=(0, 1))  # over rows and heads
    column = features.index("relationship")
    sample_map = scores["sample"][:, :, column, :].mean(axis=1)

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.4), gridspec_kw={"width_ratios": [1, 1]})
    image = _heatmap(axes[0], feature_map, features, features,
                     "feature attention (mean over 16 rows and 2 heads)")
    axes[0].set_xlabel("attended feature", fontsize=9)
    axes[0].set_ylabel("attending feature", fontsize=9)
    fig.colorbar(image, ax=axes[0], fraction=0.046)
    labels = _row_labels(y_test, n_rows)
    image = _heatmap(axes[1], sample_map, labels, labels,
                     "sample attention of the 'relationship' tokens (mean over 2 heads)")
    axes[1].set_xlabel("attended row of the batch", fontsize=9)
    fig.colorbar(image, ax=axes[1], fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    keras.backend.clear_session()
    assert np.isfinite(feature_map).all()


def draw_retrieval_attention(data, path):
    """TabR's ``RetrievalAttention``: the weights of each row's nearest training rows."""
    import keras
    import matplotlib.pyplot as plt
    import numpy as np
    from keras import ops

    from tabattn.models import TabR

    preprocessor, x_train, y_train, x_test, y_test = data
    model = TabR(
        preprocessor.n_numeric_tokens, preprocessor.categorical_cardinalities, num_classes=2,
        d_main=32, num_neighbors=8, context_refresh="epoch",  # epoch: the cheapest to compile
    )
    stored = model.set_context(x_train, y_train.astype("int32"))
    model.compile(
        optimizer=model.make_optimizer(learning_rate=1e-3),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    row_index = np.arange(len(stored), dtype="int32")  # a training row must not find itself
    model.fit(dict(x_train, row_index=row_index), y_train[:, None], epochs=3, batch_size=128,
              verbose=0)
    n_rows = 16
    indices, weights = model.neighbors({k: v[:n_rows] for k, v in x_test.items()})
    labels = ops.convert_to_numpy(model.context_labels)[indices]

    fig, ax = plt.subplots(figsize=(8, 5.6))
    image = _heatmap(ax, weights, [f"{j + 1}" for j in range(weights.shape[1])],
                     _row_labels(y_test, n_rows),
                     "RetrievalAttention in TabR: weights of the 8 nearest training rows",
                     cmap="Blues", vmin=None)
    ax.set_xlabel("neighbour, nearest first (text: its label, 1 = >50K)", fontsize=9)
    for i in range(n_rows):
        for j in range(weights.shape[1]):
            dark = weights[i, j] > weights.min() + 0.6 * (weights.max() - weights.min())
            ax.text(j, i, str(labels[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")
    fig.colorbar(image, ax=ax, label="attention weight (each row sums to 1)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    keras.backend.clear_session()


def draw_ft_transformer(data, path):
    """FT-Transformer: how much the [CLS] token attends to each feature, per row."""
    import keras
    import matplotlib.pyplot as plt

    from tabattn.models import FTTransformer

    preprocessor, x_train, y_train, x_test, y_test = data
    model = FTTransformer(
        preprocessor.n_numeric_tokens, preprocessor.categorical_cardinalities,
        n_blocks=2, d_token=16, num_heads=2,
    )
    model.compile(
        optimizer=model.make_optimizer(learning_rate=1e-3),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    model.fit(x_train, y_train[:, None], epochs=3, batch_size=128, verbose=0)
    n_rows = 20
    maps = model.attention_maps({k: v[:n_rows] for k, v in x_test.items()})
    per_row = maps[..., :-1].mean(axis=1)  # over blocks; the [CLS] token's self-attention left out

    fig, ax = plt.subplots(figsize=(8, 5.2))
    image = _heatmap(ax, per_row, preprocessor.token_columns_, _row_labels(y_test, n_rows),
                     "FT-Transformer: [CLS] attention to each feature (mean over blocks and heads)")
    fig.colorbar(image, ax=ax, label="attention weight")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    keras.backend.clear_session()
