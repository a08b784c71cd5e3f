"""Accuracy benchmark: tabattn's models next to GBDTs, an MLP and rtdl's FT-Transformer.

Protocol (after Gorishniy et al., "Revisiting Deep Learning Models for Tabular Data", 2021):

- Datasets: every ``*.csv``/``*.csv.gz``/``*.parquet`` file in the data directory
  (``--data-dir``, else ``$TABATTN_BENCH_DATA``, else ``../shared/datasets`` next to the repo),
  or the files/names given to ``--datasets``. The target is ``--target`` or the last column. A
  column named ``split`` holding only ``train``/``test`` (Adult's official split) gives the test
  rows and is not a feature. The task comes from ``tabattn.data.infer_task``.
- Splits, per seed: 64/16/20 train/validation/test (``train_test_split``, stratified for
  classification). With an official split, its test part is the test set and its train part is
  split 80/20 into train/validation. Every model gets exactly the same rows.
- Preprocessing, fitted on the training rows only:
  * neural models (tabattn's, rtdl FT-T, MLP): ``tabattn.data.TabularPreprocessor`` with
    ``random_state=seed`` (median imputation + missing flags, ``QuantileTransformer`` to a
    normal distribution, categorical codes with 0 for missing/unseen); the tabattn estimator
    fits the identical preprocessor itself. The MLP one-hot encodes the categorical codes.
    Regression targets are standardised with the training mean and std (as the estimator
    does); metrics are in the target's own units (California: $100k).
  * GBDTs (LightGBM, XGBoost, HistGradientBoosting): raw numeric columns (NaN left for the
    library's own missing-value handling) and the same categorical codes as a pandas
    ``category`` column, used through each library's native categorical support. Quantile
    transforms do not change what a tree can split on, so this is the fair input for trees.
- Training budget: neural models at most ``--epochs`` epochs (default 1000, i.e. until early
  stopping; tabattn's estimators their default ``epochs="auto"``: 30 annealed epochs for
  TabR on classification and 40 on regression, 1000 for the others) and ``--time-limit``
  seconds (default none), early stopping on validation loss with patience 16, best epoch
  restored; batch size 256, except tabattn's estimators, which use their default
  ``batch_size="auto"`` (256 from 4,096 training rows, smaller batches on smaller tables).
  GBDTs: library defaults (learning rate, depth, leaves), at most 2000 rounds, early
  stopping after 50 rounds without a better validation loss (the budget of the paper's GBDT
  runs).
- Models: ``tabattn_auto`` (the estimators' ``model="auto"``, tabattn's default: TabM on
  training splits of at most 2,000 rows, TabR above), ``tabattn_tabr``, ``tabattn_tabm`` and
  ``tabattn_modernnca`` (``model="tabr"`` / ``"tabm"`` / ``"modernnca"``, as the estimators
  configure them, on every table) and
  ``tabattn_ft`` (``model="ft_transformer"``, paper default config, AdamW lr 1e-4, wd
  1e-5), each a ``TabularClassifier``/``TabularRegressor`` on the current
  ``KERAS_BACKEND``; ``rtdl_ft``
  (``rtdl_revisiting_models.FTTransformer`` with ``get_default_kwargs()``, its default AdamW,
  PyTorch, same preprocessing, batch size, budget and early stopping); ``mlp`` (Keras,
  3 × 256 ReLU, dropout 0.1, AdamW lr 1e-3, wd 1e-5; on the current backend); ``lightgbm``,
  ``xgboost``, ``hist_gbdt`` (scikit-learn's ``HistGradientBoosting*``).
- Metrics on the test split: accuracy, ROC AUC (binary; one-vs-rest macro for multiclass) and
  log loss for classification; RMSE, MAE and R² for regression.

Each (dataset, model, seed) writes one JSON record to ``--out`` (default
``benchmarks/results``) as soon as it finishes, so a long run that stops keeps what it did;
``--resume`` skips records that exist. A model whose library is missing gets a record with
``"status": "skipped"`` and the reason; a model that raises gets ``"status": "error"`` and the
run goes on (``--strict`` re-raises instead). ``benchmarks/report.py`` turns the records into
``BENCHMARKS.md``.

Usage::

    KERAS_BACKEND=jax python benchmarks/accuracy.py                     # everything, 5 seeds
    python benchmarks/accuracy.py --datasets penguins credit_g --models tabattn_ft lightgbm
    python benchmarks/accuracy.py --datasets my.csv --target churn --seeds 3
    python benchmarks/accuracy.py --smoke --out /tmp/smoke              # the test suite's run
"""

import argparse
import contextlib
import copy
import dataclasses
import inspect
import json
import os
import re
import sys
import time
import traceback
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

from tabattn.data import TabularPreprocessor, infer_task, read_table, split_rows  # noqa: E402
from tabattn.targets import target_for_task  # noqa: E402

DATA_ENV = "TABATTN_BENCH_DATA"
DEFAULT_DATA_DIR = os.path.join(os.path.dirname(_common.REPO_ROOT), "shared", "datasets")
SPLIT_COLUMN = "split"
DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


# --- budget -------------------------------------------------------------------------------
@dataclasses.dataclass
class Budget:
    epochs: int = 1000
    patience: int = 16
    batch_size: int = 256
    # tabattn's estimators: "auto" is their default rule (256 from 4,096 training rows).
    tabattn_batch_size: object = "auto"
    tabattn_epochs: object = "auto"  # the estimators' default rule (AUTO_EPOCHS)
    time_limit: float = None
    gbdt_rounds: int = 2000
    gbdt_patience: int = 50
    # Model-size overrides for smoke runs; None = the estimators' configuration.
    ft_config: dict = None
    tabr_config: dict = None
    tabm_config: dict = None
    modernnca_config: dict = None
    mlp_layers: tuple = (256, 256, 256)


SMOKE_BUDGET = Budget(
    epochs=2, patience=2, batch_size=128, tabattn_batch_size=128, tabattn_epochs=2,
    gbdt_rounds=20,
    gbdt_patience=5,
    ft_config={"n_blocks": 1, "d_token": 16, "num_heads": 2},
    tabr_config={"d_main": 16, "num_neighbors": 8}, tabm_config={"k": 4, "d_block": 16},
    modernnca_config={"d_main": 16},
    mlp_layers=(32,),
)
SMOKE_MAX_ROWS = 400


# --- data ---------------------------------------------------------------------------------
@dataclasses.dataclass
class Split:
    """One seed's split of one dataset; frames hold features only."""

    name: str
    task: str
    target: str
    X_train: pd.DataFrame
    X_val: pd.DataFrame
    X_test: pd.DataFrame
    y_train: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray
    official_split: bool

    @property
    def classes(self):
        return np.unique(self.y_train) if self.task == "classification" else None


def dataset_name(path):
    base = os.path.basename(path)
    for suffix in DATA_SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


def find_datasets(data_dir, selected=None):
    """``{name: path}`` for the data files in ``data_dir``, or those named in ``selected``
    (names without suffix, or paths)."""
    if data_dir is not None and not os.path.isdir(data_dir):
        raise FileNotFoundError(
            f"Data directory not found: {data_dir!r}. Pass --data-dir or set ${DATA_ENV}."
        )
    available = {}
    if data_dir is not None:
        for entry in sorted(os.listdir(data_dir)):
            if entry.lower().endswith(DATA_SUFFIXES):
                available[dataset_name(entry)] = os.path.join(data_dir, entry)
    if not selected:
        if not available:
            raise FileNotFoundError(f"No .csv, .csv.gz or .parquet files in {data_dir!r}")
        return available
    chosen = {}
    for item in selected:
        if os.path.isfile(item):
            chosen[dataset_name(item)] = item
        elif item in available:
            chosen[item] = available[item]
        else:
            raise ValueError(
                f"Unknown dataset {item!r}: not a file and not one of {sorted(available)} "
                f"in {data_dir!r}"
            )
    return chosen


def load_dataset(path, target=None):
    """The table, its target column, task and whether it has an official train/test split."""
    frame = read_table(path)
    official = SPLIT_COLUMN in frame.columns and set(
        frame[SPLIT_COLUMN].dropna().astype(str).unique()
    ) <= {"train", "test"}
    if target is None:
        target = frame.columns[-1]
    if target not in frame.columns:
        raise ValueError(f"Target {target!r} not in {path!r}; columns: {list(frame.columns)}")
    frame = frame[frame[target].notna()].reset_index(drop=True)
    return frame, target, infer_task(frame[target]), official


def make_split(name, frame, target, task, official, seed, max_rows=None):
    """Per-seed 64/16/20 split (stratified for classification); official test split kept:
    ``tabattn.data.split_rows``, as ``tabattn fit`` splits."""
    stratify = (lambda y: y) if task == "classification" else (lambda y: None)
    if max_rows and official:  # smoke: a slice with the official proportions
        is_test = frame[SPLIT_COLUMN].astype(str) == "test"
        train_val, test = frame[~is_test], frame[is_test]
        n_test = max(int(max_rows * len(test) / len(frame)), 20)
        test = test.sample(min(n_test, len(test)), random_state=seed)
        train_val = train_val.sample(min(max_rows - len(test), len(train_val)), random_state=seed)
        frame = pd.concat([train_val, test])
    elif max_rows and len(frame) > max_rows:
        frame, _ = train_test_split(
            frame, train_size=max_rows, random_state=seed, stratify=stratify(frame[target])
        )
    train, val, test, _ = split_rows(
        frame, target, task, seed, split_column=SPLIT_COLUMN if official else None
    )
    features = [c for c in train.columns if c != target]

    def xy(part):
        part = part.reset_index(drop=True)
        return part[features], part[target].to_numpy()

    (X_train, y_train), (X_val, y_val), (X_test, y_test) = xy(train), xy(val), xy(test)
    return Split(name, task, target, X_train, X_val, X_test, y_train, y_val, y_test, official)


# --- targets and metrics ------------------------------------------------------------------
def fitted_target(split):
    """The estimators' target object (``tabattn.targets``) fitted on the training labels:
    class indices or the standardised target for training, probabilities or values back."""
    return target_for_task(split.task).fit(split.y_train)


def evaluate(split, output):
    """Test metrics from class probabilities ``(n, n_classes)`` or regression predictions."""
    if split.task == "classification":
        output = np.clip(np.asarray(output, dtype="float64"), 0.0, 1.0)
        output = output / output.sum(axis=1, keepdims=True)
    return fitted_target(split).evaluate(split.y_test, output)




# --- shared inputs ------------------------------------------------------------------------
def neural_inputs(split, seed):
    """The estimator's preprocessing, fitted on train: ``(preprocessor, train, val, test)``."""
    pre = TabularPreprocessor(random_state=seed).fit(split.X_train)
    parts = (split.X_train, split.X_val, split.X_test)
    return (pre, *(pre.transform(part) for part in parts))


def tree_inputs(split, seed):
    """Raw numeric columns and the preprocessor's categorical codes as pandas categories."""
    pre = TabularPreprocessor(random_state=seed).fit(split.X_train)

    def frame(X):
        out = pd.DataFrame(index=range(len(X)))
        for column in pre.numeric_columns_:
            out[column] = pd.to_numeric(X[column], errors="coerce").to_numpy(dtype="float64")
        if pre.categorical_columns_:
            codes = pre.transform(X)["categorical"]
            for j, column in enumerate(pre.categorical_columns_):
                n = len(pre.categories_[column]) + 1
                out[column] = pd.Categorical(codes[:, j], categories=range(n))
        return out

    return frame(split.X_train), frame(split.X_val), frame(split.X_test)


# --- models -------------------------------------------------------------------------------
# Each runner takes (split, seed, budget) and returns a dict with "output" (test probabilities
# or predictions), "epochs" (epochs or boosting rounds trained), "best_epoch" and optionally
# "extra"; the harness times it. Runners import their library inside, so a missing optional
# peer only skips that model.


def run_tabattn(split, seed, budget, model, model_params, **kwargs):
    """A tabattn estimator with ``model`` and ``model_params`` (None: the model's defaults)
    and any other estimator arguments in ``kwargs``."""
    from tabattn import TabularClassifier, TabularRegressor

    cls = TabularClassifier if split.task == "classification" else TabularRegressor
    estimator = cls(
        model=model, model_params=model_params, epochs=budget.tabattn_epochs,
        batch_size=budget.tabattn_batch_size, patience=budget.patience,
        time_limit=budget.time_limit,
        random_state=seed, verbose=0, **kwargs,
    )
    estimator.fit(split.X_train, split.y_train, eval_set=(split.X_val, split.y_val))
    if split.task == "classification":
        output = estimator.predict_proba(split.X_test)
    else:
        output = estimator.predict(split.X_test)
    extra = {"n_parameters": sum(int(m.count_params()) for m in estimator.models_)}
    if len(estimator.models_) > 1:
        extra.update(ensemble_size=len(estimator.models_),
                     member_epochs=[len(h["loss"]) for h in estimator.histories_])
    return {
        "output": output,
        # An ensemble's epochs are those of all its members (the time they cost).
        "epochs": sum(len(h["loss"]) for h in estimator.histories_),
        "best_epoch": estimator.best_epoch_,
        "extra": extra,
    }


def run_mlp(split, seed, budget):
    import keras

    keras.utils.set_random_seed(seed)
    pre, train, val, test = neural_inputs(split, seed)

    def matrix(inputs):
        parts = [inputs["numeric"]] if "numeric" in inputs else []
        if "categorical" in inputs:
            for j, cardinality in enumerate(pre.categorical_cardinalities):
                parts.append(np.eye(cardinality + 1, dtype="float32")[inputs["categorical"][:, j]])
        return np.concatenate(parts, axis=1).astype("float32")

    x_train, x_val, x_test = matrix(train), matrix(val), matrix(test)
    target = fitted_target(split)
    d_out, loss = target.d_out, target.loss()
    t_train, t_val = target.encode(split.y_train), target.encode(split.y_val)
    layers = [keras.Input((x_train.shape[1],))]
    for units in budget.mlp_layers:
        layers += [keras.layers.Dense(units, activation="relu"), keras.layers.Dropout(0.1)]
    model = keras.Sequential(layers + [keras.layers.Dense(d_out)])
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-5), loss=loss)
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=budget.patience, restore_best_weights=True
    )
    callbacks = [stop]
    if budget.time_limit:
        from tabattn.estimators import _TimeLimit

        callbacks.append(_TimeLimit(budget.time_limit))
    history = model.fit(
        x_train, t_train, validation_data=(x_val, t_val), epochs=budget.epochs,
        batch_size=budget.batch_size, callbacks=callbacks, verbose=0,
    )
    if stop.best_weights is not None:
        model.set_weights(stop.best_weights)
    raw = np.asarray(model.predict(x_test, batch_size=4096, verbose=0), dtype="float64")
    output = target.decode(raw)
    losses = history.history["val_loss"]
    return {
        "output": output,
        "epochs": len(losses),
        "best_epoch": int(np.argmin(losses)) + 1,
        "extra": {"n_parameters": int(model.count_params())},
    }


def run_rtdl_ft(split, seed, budget):
    import rtdl_revisiting_models as rtdl
    import torch

    torch.manual_seed(seed)
    pre, train, val, test = neural_inputs(split, seed)
    target = fitted_target(split)
    d_out = target.d_out
    targets = [torch.as_tensor(target.encode(y)) for y in (split.y_train, split.y_val)]
    if split.task == "regression":
        loss_fn = torch.nn.functional.mse_loss
    elif d_out == 1:
        loss_fn = torch.nn.functional.binary_cross_entropy_with_logits
    else:
        loss_fn = torch.nn.functional.cross_entropy
        targets = [t.long() for t in targets]
    kwargs = rtdl.FTTransformer.get_default_kwargs()
    if budget.ft_config:  # smoke: the same reduced size as tabattn's
        kwargs.update(
            n_blocks=budget.ft_config["n_blocks"], d_block=budget.ft_config["d_token"],
            attention_n_heads=budget.ft_config["num_heads"],
        )
        kwargs.pop("_is_default", None)
        warnings.filterwarnings("ignore", "The default opimizer", UserWarning)  # sic
    # rtdl's categorical codes run 0..cardinality-1; tabattn's code 0 (missing/unseen) is
    # one more category there.
    cardinalities = [c + 1 for c in pre.categorical_cardinalities]
    model = rtdl.FTTransformer(
        n_cont_features=pre.n_numeric_tokens, cat_cardinalities=cardinalities, d_out=d_out,
        **kwargs,
    )
    optimizer = model.make_default_optimizer()

    def tensors(inputs):
        num = inputs.get("numeric")
        cat = inputs.get("categorical")
        return (
            None if num is None else torch.as_tensor(num),
            None if cat is None else torch.as_tensor(cat, dtype=torch.long),
        )

    x_train, x_val, x_test = tensors(train), tensors(val), tensors(test)
    n_train = len(split.y_train)

    def forward(x, index=None):
        num, cat = x
        if index is not None:
            num = None if num is None else num[index]
            cat = None if cat is None else cat[index]
        return model(num, cat)

    def predict(x, n):
        model.eval()
        with torch.no_grad():
            return torch.cat([forward(x, slice(i, i + 4096)) for i in range(0, n, 4096)])

    generator = torch.Generator().manual_seed(seed)
    best_loss, best_state, best_epoch, epochs = float("inf"), None, 0, 0
    started, durations = time.monotonic(), []
    for epoch in range(budget.epochs):
        epoch_start = time.monotonic()
        model.train()
        for index in torch.randperm(n_train, generator=generator).split(budget.batch_size):
            optimizer.zero_grad()
            loss_fn(forward(x_train, index), targets[0][index]).backward()
            optimizer.step()
        val_loss = float(loss_fn(predict(x_val, len(split.y_val)), targets[1]))
        epochs = epoch + 1
        if val_loss < best_loss:
            best_loss, best_epoch = val_loss, epochs
            best_state = copy.deepcopy(model.state_dict())
        elif epochs - best_epoch >= budget.patience:
            break
        # The same time rule as tabattn's estimator (_TimeLimit).
        now = time.monotonic()
        durations.append(now - epoch_start)
        next_epoch = max(durations[1:] or durations)
        if budget.time_limit and now - started + next_epoch > budget.time_limit:
            break
    model.load_state_dict(best_state)
    raw = predict(x_test, len(split.y_test)).numpy().astype("float64")
    output = target.decode(raw)
    return {
        "output": output,
        "epochs": epochs,
        "best_epoch": best_epoch,
        "extra": {
            "n_parameters": int(sum(p.numel() for p in model.parameters())),
            "torch_threads": torch.get_num_threads(),
        },
    }


def _tree_targets(split):
    if split.task == "classification":
        target = fitted_target(split)
        return tuple(target.encode(y).ravel().astype("int64") for y in (split.y_train, split.y_val))
    return split.y_train.astype("float64"), split.y_val.astype("float64")


def _tree_output(split, model, X_test):
    if split.task == "classification":
        return model.predict_proba(X_test)
    return model.predict(X_test)


def run_lightgbm(split, seed, budget):
    import lightgbm

    X_train, X_val, X_test = tree_inputs(split, seed)
    y_train, y_val = _tree_targets(split)
    cls = lightgbm.LGBMClassifier if split.task == "classification" else lightgbm.LGBMRegressor
    model = cls(n_estimators=budget.gbdt_rounds, random_state=seed, verbose=-1)
    # LightGBM >= 4.7 names the validation set eval_X/eval_y (eval_set is deprecated).
    new_api = "eval_X" in inspect.signature(cls.fit).parameters
    validation = {"eval_X": (X_val,), "eval_y": (y_val,)} if new_api else {
        "eval_set": [(X_val, y_val)]
    }
    model.fit(
        X_train, y_train, **validation,
        callbacks=[lightgbm.early_stopping(budget.gbdt_patience, verbose=False)],
    )
    rounds = model.best_iteration_ or budget.gbdt_rounds
    return {
        "output": _tree_output(split, model, X_test),
        "epochs": int(model.booster_.current_iteration()),
        "best_epoch": int(rounds),
    }


def run_xgboost(split, seed, budget):
    import xgboost

    X_train, X_val, X_test = tree_inputs(split, seed)
    y_train, y_val = _tree_targets(split)
    cls = xgboost.XGBClassifier if split.task == "classification" else xgboost.XGBRegressor
    model = cls(
        n_estimators=budget.gbdt_rounds, early_stopping_rounds=budget.gbdt_patience,
        enable_categorical=True, tree_method="hist", random_state=seed,
    )
    model.fit(X_train, y_train, eval_set=[(X_val, y_val)], verbose=False)
    # predict/predict_proba use the best iteration when early stopping was on.
    return {
        "output": _tree_output(split, model, X_test),
        "epochs": int(model.get_booster().num_boosted_rounds()),
        "best_epoch": int(model.best_iteration) + 1,
    }


def run_hist_gbdt(split, seed, budget):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    X_train, X_val, X_test = tree_inputs(split, seed)
    y_train, y_val = _tree_targets(split)
    cls = (
        HistGradientBoostingClassifier
        if split.task == "classification"
        else HistGradientBoostingRegressor
    )
    model = cls(
        max_iter=budget.gbdt_rounds, early_stopping=True, n_iter_no_change=budget.gbdt_patience,
        categorical_features="from_dtype", random_state=seed,
    )
    # scikit-learn >= 1.7 takes the validation set; older versions would split their own.
    model.fit(X_train, y_train, X_val=X_val, y_val=y_val)
    # HGB stops after n_iter_no_change rounds without improvement but keeps those rounds.
    return {
        "output": _tree_output(split, model, X_test),
        "epochs": int(model.n_iter_),
        "best_epoch": int(model.n_iter_),
    }


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    run: callable
    requires: tuple  # importable modules; a missing one skips the model
    keras: bool  # runs on the current KERAS_BACKEND (the record's backend matters)
    description: str


def run_tabattn_ft(split, seed, budget):
    return run_tabattn(split, seed, budget, "ft_transformer", budget.ft_config)


def run_tabattn_auto(split, seed, budget):
    from tabattn.estimators import auto_model

    params = {"tabm": budget.tabm_config, "tabr": budget.tabr_config}
    return run_tabattn(split, seed, budget, "auto", params[auto_model(len(split.y_train))])


def run_tabattn_tabr(split, seed, budget):
    return run_tabattn(split, seed, budget, "tabr", budget.tabr_config)


def run_tabattn_tabm(split, seed, budget):
    return run_tabattn(split, seed, budget, "tabm", budget.tabm_config)


def run_tabattn_modernnca(split, seed, budget):
    return run_tabattn(split, seed, budget, "modernnca", budget.modernnca_config)


MODELS = {
    "tabattn_ft": ModelSpec(
        run_tabattn_ft, ("tabattn",), True, "tabattn FTTransformer (paper default), estimator"
    ),
    "tabattn_auto": ModelSpec(
        run_tabattn_auto, ("tabattn",), True,
        "tabattn default (estimator, model='auto'): TabM on training splits of at most "
        "2,000 rows, TabR above",
    ),
    "tabattn_tabr": ModelSpec(
        run_tabattn_tabr, ("tabattn",), True,
        "tabattn TabR (estimator, model='tabr'): d_main 128, 8 neighbours among at most "
        "16,384 stored rows, keys refreshed 512 rows a step, periodic numeric embeddings "
        "(PLR lite), 30 epochs (classification) or 40 (regression) of AdamW from lr 2e-3 "
        "annealed along a cosine, with a moving average of the weights",
    ),
    "tabattn_tabm": ModelSpec(
        run_tabattn_tabm, ("tabattn",), True,
        "tabattn TabM (estimator, model='tabm'): the paper's TabM with piecewise-linear "
        "embeddings (k 32, 2 blocks of 512, dropout 0.1, AdamW lr 2e-3, wd 3e-4)",
    ),
    "tabattn_modernnca": ModelSpec(
        run_tabattn_modernnca, ("tabattn",), True,
        "tabattn ModernNCA (estimator, model='modernnca'): the TALENT default (d 128, PLR "
        "lite, AdamW lr 0.01, wd 2e-4), at most 16,384 stored rows, searching at most "
        "4,096 of half of them a step",
    ),
    "rtdl_ft": ModelSpec(
        run_rtdl_ft, ("rtdl_revisiting_models", "torch"), False,
        "rtdl_revisiting_models.FTTransformer (default kwargs), PyTorch",
    ),
    "mlp": ModelSpec(run_mlp, ("keras",), True, "Keras MLP 3x256, dropout 0.1, one-hot cats"),
    "lightgbm": ModelSpec(run_lightgbm, ("lightgbm",), False, "LightGBM defaults + early stop"),
    "xgboost": ModelSpec(run_xgboost, ("xgboost",), False, "XGBoost defaults + early stop"),
    "hist_gbdt": ModelSpec(
        run_hist_gbdt, ("sklearn",), False, "scikit-learn HistGradientBoosting + early stop"
    ),
}


# --- harness ------------------------------------------------------------------------------
def library_versions():
    return _common.versions()


def record_name(record):
    backend = f"__{record['backend']}" if record.get("keras_model") else ""
    seed = "" if record["seed"] is None else f"__seed{record['seed']}"
    tag = f"@{record['tag']}" if record.get("tag") else ""
    return f"{record['dataset']}__{record['model']}{tag}{backend}{seed}"


def run(datasets, models, seeds, budget, out, max_rows=None, target=None, resume=False,
        strict=False, threads=None, log=print, tag=None, note=None):
    """Run every (dataset, seed, model); write one record each to ``out``; return the records.

    ``tag`` sets apart the records of a run with other settings (e.g. another time limit):
    it joins the model's name in file names and in the report, which compares each set of
    the default model's runs with LightGBM on its own (see ``report.headline_name``).
    ``note`` is printed with them.
    """
    if tag is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", tag):
        raise ValueError(f"`tag` must be letters, digits, '_', '.' or '-'. Received: {tag!r}")
    backend = _common.keras_backend()
    machine, versions = _common.machine_info(), library_versions()
    machine["thread_limit"] = threads
    commit = _common.source_commit()
    records = []
    available = {}
    for model in models:
        reasons = [r for r in (_common.optional_import(m)[1] for m in MODELS[model].requires) if r]
        available[model] = reasons[0] if reasons else None
    for name, path in datasets.items():
        frame, target_column, task, official = load_dataset(path, target)
        for model in models:
            if available[model]:
                record = {
                    "kind": "accuracy",
                    "dataset": name, "model": model, "seed": None, "status": "skipped",
                    "reason": available[model], "backend": backend,
                    "keras_model": MODELS[model].keras, "machine": machine,
                    "versions": versions, "smoke": max_rows is not None,
                }
                log(f"[skip] {name} {model}: {available[model]}")
                _common.write_record(out, record_name(record), record)
                records.append(record)
        for seed in seeds:
            split = make_split(name, frame, target_column, task, official, seed, max_rows)
            for model in models:
                if available[model]:
                    continue
                spec = MODELS[model]
                record = {
                    "kind": "accuracy",
                    "dataset": name, "path": os.path.abspath(path), "target": target_column,
                    "task": task, "model": model, "description": spec.description,
                    "seed": seed, "backend": backend, "keras_model": spec.keras,
                    "official_split": official, "smoke": max_rows is not None,
                    "rows": {
                        "total": len(frame), "train": len(split.y_train),
                        "validation": len(split.y_val), "test": len(split.y_test),
                    },
                    "n_features": split.X_train.shape[1],
                    "budget": dataclasses.asdict(budget),
                    "machine": machine, "versions": versions, "commit": commit,
                    "started": _common.now_utc(),
                }
                if tag:
                    record["tag"] = tag
                if note:
                    record["note"] = note
                name_on_disk = record_name(record)
                if resume and os.path.exists(os.path.join(out, name_on_disk + ".json")):
                    log(f"[have] {name_on_disk}")
                    continue
                started = time.perf_counter()
                try:
                    result = spec.run(split, seed, budget)
                    record["train_seconds"] = time.perf_counter() - started
                    record["metrics"] = evaluate(split, result["output"])
                    record["epochs"] = result["epochs"]
                    record["best_epoch"] = result["best_epoch"]
                    record.update(result.get("extra", {}))
                    record["status"] = "ok"
                except Exception as error:  # one failing model must not end a long run
                    if strict:
                        raise
                    record["status"] = "error"
                    record["error"] = f"{type(error).__name__}: {error}"
                    record["traceback"] = traceback.format_exc()
                    record["train_seconds"] = time.perf_counter() - started
                _common.write_record(out, name_on_disk, record)
                records.append(record)
                shown = record.get("metrics", record.get("error"))
                log(f"[{record['status']}] {name_on_disk}: {shown} "
                    f"({record['train_seconds']:.1f} s, {record.get('epochs')} epochs)")
    return records


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get(DATA_ENV, DEFAULT_DATA_DIR),
                        help=f"folder of data files (default ${DATA_ENV} or {DEFAULT_DATA_DIR})")
    parser.add_argument("--datasets", nargs="+", help="names in --data-dir, or file paths")
    parser.add_argument("--target", help="target column (default: each file's last column)")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--seeds", type=int, default=None,
                        help="number of seeds 0..N-1 (default 5; 1 with --smoke)")
    parser.add_argument("--epochs", type=int, help="maximum epochs (default 1000; tabattn: "
                        "the estimators' epochs=\"auto\")")
    parser.add_argument("--time-limit", type=float, help="seconds per neural model fit")
    parser.add_argument("--max-rows", type=int, help="subsample each dataset to this many rows")
    parser.add_argument("--out", help="folder for the JSON records (default benchmarks/results; "
                        "benchmarks/results/smoke with --smoke)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"one seed, {SMOKE_MAX_ROWS} rows, tiny models, 2 epochs")
    parser.add_argument("--threads", type=int,
                        help="limit OpenMP/BLAS threads (default: all; 1 with --smoke)")
    parser.add_argument("--resume", action="store_true", help="skip records that exist")
    parser.add_argument("--strict", action="store_true", help="raise on a model's error")
    parser.add_argument("--tag", help="label for a run with other settings (e.g. '600s' "
                        "with --time-limit 600): kept apart in file names and report")
    parser.add_argument("--note", help="sentence stored in each record; the report prints it")
    parser.add_argument("--model-params", type=json.loads, metavar="JSON",
                        help="model_params for the tabattn models of this run, e.g. "
                        "'{\"num_candidates\": 1024}' (recorded in the budget)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    budget = copy.deepcopy(SMOKE_BUDGET if args.smoke else Budget())
    if args.epochs is not None:
        budget.epochs = budget.tabattn_epochs = args.epochs
    if args.time_limit is not None:
        budget.time_limit = args.time_limit
    if args.model_params:
        budget.tabr_config = {**(budget.tabr_config or {}), **args.model_params}
        budget.tabm_config = {**(budget.tabm_config or {}), **args.model_params}
        budget.modernnca_config = {**(budget.modernnca_config or {}), **args.model_params}
    seeds = range(args.seeds if args.seeds is not None else (1 if args.smoke else 5))
    max_rows = args.max_rows or (SMOKE_MAX_ROWS if args.smoke else None)
    out = args.out or os.path.join(
        _common.DEFAULT_RESULTS_DIR, *(["smoke"] if args.smoke else [])
    )
    data_dir = args.data_dir if os.path.isdir(args.data_dir) or not args.datasets else None
    datasets = find_datasets(data_dir, args.datasets)
    threads = args.threads or (1 if args.smoke else None)
    limit = contextlib.nullcontext()
    if threads:
        # OpenMP/BLAS pools (GBDTs, torch, NumPy). On a loaded 2-core machine, OpenMP's
        # spin-waiting made a 20-round smoke HistGradientBoosting take 14 s instead of 0.2 s.
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(limits=threads)
    with limit:
        records = run(datasets, args.models, list(seeds), budget, out, max_rows=max_rows,
                      target=args.target, resume=args.resume, strict=args.strict,
                      threads=threads, tag=args.tag, note=args.note)
    errors = [r for r in records if r["status"] == "error"]
    print(f"{len(records)} records in {out}; {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
