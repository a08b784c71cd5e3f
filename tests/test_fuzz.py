"""Property-based fuzz tests (Hypothesis) of ``TabularClassifier`` and ``TabularRegressor``.

Hypothesis draws small tables: pandas DataFrames of 1-40 rows and 1-5 columns of random
types (floats with NaN, +/-inf and extreme finite values such as +/-1e300, 1e-300, 0 and the
largest float64; integers up to +/-2**63; booleans; nullable ``Int64``/``string``; strings,
empty or unicode; pandas categoricals; object columns mixing numbers and text; all-missing and
constant columns), odd column names (unicode, spaces, ``""``, ``"0"``, ``"y.1"``, repeated
names), a row index that is sometimes not a RangeIndex, and a target: 1-3 string, integer or
boolean classes with or without missing values, or a float regression target with NaN,
+/-inf and huge values; as a list, a NumPy array or a (named) pandas Series.

The contract checked on every table (``check_contract``):

- ``fit`` then ``predict`` (and ``predict_proba`` for the classifier) succeed, with finite
  predictions of the right shape (probabilities that sum to 1, labels among ``classes_``)
  whose values for the first rows are the same predicted one row at a time as all at once
  (``assert_allclose``, ``atol=1e-5``; regression compared in standardised units); or
- they raise a ``ValueError`` or ``TypeError`` (never ``KeyError``, ``IndexError``,
  ``ZeroDivisionError``, ``AttributeError``..., and never one raised inside Keras or the
  backend) with a message of at least 20 characters that names the problem. Where the
  problem is specific the message is checked (``expected_errors``): the repeated column name,
  the numeric column that holds ``inf`` or values beyond +/-1e300, the column with no value
  in the training rows, "infinite" or "too large" for such a regression target, "only one
  class", "no values" for a target that is all missing, the ``y.1``-style copy of a target
  named ``y``, the feature column equal to the target.
  Inputs with such a problem that the estimator must refuse (repeated names, one class, an
  infinite regression target, ...) must raise. Warnings (``ColumnWarning``, "Dropped N
  rows whose target is missing", NumPy's overflow warnings) are allowed.

Contract violations that this suite finds and that are not fixed yet are listed in
``KNOWN``: the property tests let an example pass when it holds the violation's trigger and
fails in exactly the known way (they count these with ``hypothesis.event``: ``pytest
--hypothesis-show-statistics``), and each violation has an explicit ``xfail(strict=True)``
test at the end of the file that checks the full contract on a minimal reproducer. Once the
library is fixed that test passes, which strict xfail reports as a failure: then delete the
``KNOWN`` entry and the ``xfail`` mark, and keep the test as a regression test. None is open
today. Fixed (regression tests ``test_found_*``): a column with no value in the training
split, values near the float64 maximum in a numeric column or a regression target, a boolean
target with missing values, single-category pandas categoricals, TabM's piecewise bins from
an integer column with ties, and TabR on PyTorch retrieving, for a row predicted alone,
another of two stored rows at nearly the same distance than for the same row predicted
among others.

Models are tiny (TabM with ``k=2``, ``d_block=8``, one block; TabR with ``d_main=8``, two
neighbours), trained for one epoch. Each property runs 15 generated examples on PyTorch
plus its explicit ``@example`` cases; JAX and TensorFlow (where every new model and input
shape compiles) run the explicit cases only. Derandomized (``derandomize=True``, no example database) so that every
run tests the same tables. Environment variables:

- ``TABATTN_FUZZ_EXAMPLES=N``: run N examples per property instead, e.g.
  ``TABATTN_FUZZ_EXAMPLES=500 KERAS_BACKEND=torch pytest tests/test_fuzz.py`` for a longer
  search (still derandomized, so reproducible);
- ``TABATTN_FUZZ_SHRINK=1``: let Hypothesis shrink a failing table to a minimal one. Off by
  default: every step trains a model, and shrinking takes Hypothesis's full five minutes per
  property. The failing table is printed either way (``Case(...)``, rebuilds it).

Needs ``hypothesis`` (skipped without it); the interchange test also needs ``polars`` and
``pyarrow``.
"""

import math
import os
import re
import sys
import traceback
import warnings

import keras
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, Phase, example, given, settings  # noqa: E402
from hypothesis import event as _hypothesis_event  # noqa: E402
from hypothesis import note as _hypothesis_note  # noqa: E402
from hypothesis.errors import InvalidArgument  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tabattn import TabularClassifier, TabularRegressor  # noqa: E402

# Input handling does not depend on the backend: the suite runs on PyTorch, which compiles
# nothing (the estimators' training and resuming are tested on every backend elsewhere).
pytestmark = pytest.mark.torch_only

BACKEND = keras.backend.backend()
_DEFAULT_EXAMPLES = 15
N_EXAMPLES = int(os.environ.get("TABATTN_FUZZ_EXAMPLES") or _DEFAULT_EXAMPLES)
# Generated tables test input handling, which no backend changes: they run on PyTorch (no
# compilation); JAX and TensorFlow run the explicit examples and the test_found_* cases.
_PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target] if (
    BACKEND == "torch" or os.environ.get("TABATTN_FUZZ_EXAMPLES")
) else [Phase.explicit]
if os.environ.get("TABATTN_FUZZ_SHRINK"):
    _PHASES.append(Phase.shrink)


def note(text):
    """``hypothesis.note``, or a print (shown by pytest on failure) outside a property."""
    try:
        _hypothesis_note(text)
    except InvalidArgument:
        print(text)


def event(text):
    """``hypothesis.event`` in a property; nothing outside one."""
    try:
        _hypothesis_event(text)
    except InvalidArgument:
        pass


FUZZ = settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=_PHASES,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
    ],
)

TABM = {"model": "tabm", "model_params": {"k": 2, "d_block": 8, "n_blocks": 1}}
TABR = {"model": "tabr", "model_params": {"d_main": 8, "num_neighbors": 2}}
COMMON = {"epochs": 1, "batch_size": 8, "verbose": 0, "random_state": 0}

# tabattn.data.MAX_ABS_VALUE: larger finite numbers (numeric columns, regression targets)
# are refused, naming the column or the target.
HUGE = 1e300
MAX_ROWS = 40
MAX_COLUMNS = 5
FLOAT_MAX = sys.float_info.max
nan, inf = math.nan, math.inf

# --- strategies --------------------------------------------------------------------------------

SPECIAL_FLOATS = [
    nan, inf, -inf, 1e300, -1e300, 1e-300, -1e-300, 0.0, -0.0, 5e-324, FLOAT_MAX, -FLOAT_MAX,
]
FINITE = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
TEXT = st.one_of(
    st.sampled_from(
        ["", "a", "b", "é", "日本", " ", "2024-01-31", "1,234", "3.5", "nan", "None"]
    ),
    st.text(max_size=4),
)
NAMES = st.one_of(
    st.sampled_from([
        "a", "b", "x0", "x1", "0", "1", "", " ", "y", "y.1", "target.2", "col name", "ünï",
        "日本語", "a.b", "a__missing", "nan",
    ]),
    st.text(max_size=5),
)
# Weighted by repetition: all-missing columns are rarer (a known violation hides the rest of
# the contract in the tables that hold one).
COLUMN_KINDS = 2 * [
    "float", "float", "int", "Int64", "bool", "bool_object", "str", "string", "category",
    "mixed", "constant",
] + ["missing"]


def _often(probability):
    """A boolean strategy that is True about ``probability`` of the time (in tenths)."""
    tenths = round(probability * 10)
    return st.sampled_from([True] * tenths + [False] * (10 - tenths))


def _sprinkle(draw, values, elements, max_count=3):
    """``values`` with a few positions (at most ``max_count``) replaced by ``elements``."""
    values = list(values)
    positions = draw(st.sets(st.integers(0, len(values) - 1), max_size=max_count))
    for i in sorted(positions):
        values[i] = draw(elements)
    return values


@st.composite
def columns(draw, n):
    """One pandas Series of ``n`` values of a random kind."""
    kind = draw(st.sampled_from(COLUMN_KINDS))

    def values(elements):
        return draw(st.lists(elements, min_size=n, max_size=n))

    def maybe_missing(values, missing=None):
        return _sprinkle(draw, values, st.just(missing)) if draw(st.booleans()) else values

    if kind == "float":
        column = maybe_missing(values(FINITE), nan)
        if draw(_often(0.4)):  # a few inf, huge, tiny or zero values
            column = _sprinkle(draw, column, st.sampled_from(SPECIAL_FLOATS), max_count=2)
        return pd.Series(column, dtype="float64")
    if kind == "int":
        return pd.Series(
            values(st.one_of(st.integers(-3, 3), st.integers(-(2**63), 2**63 - 1))),
            dtype="int64",
        )
    if kind == "Int64":
        return pd.Series(pd.array(maybe_missing(values(st.integers(-5, 5))), dtype="Int64"))
    if kind == "bool":
        return pd.Series(values(st.booleans()), dtype=bool)
    if kind == "bool_object":
        return pd.Series(maybe_missing(values(st.booleans())), dtype=object)
    if kind == "str":
        return pd.Series(maybe_missing(values(TEXT)), dtype=object)
    if kind == "string":
        return pd.Series(pd.array(maybe_missing(values(TEXT)), dtype="string"))
    if kind == "category":
        pool = draw(st.lists(TEXT, min_size=1, max_size=4, unique=True))
        cats = maybe_missing(values(st.sampled_from(pool)))
        unused = draw(st.lists(TEXT.filter(lambda v: v not in pool), max_size=2, unique=True))
        return pd.Series(pd.Categorical(cats, categories=pool + unused))
    if kind == "mixed":
        elements = st.one_of(
            st.integers(-3, 3), FINITE, TEXT, st.none(), st.sampled_from([inf, nan, 1e300])
        )
        return pd.Series(values(elements), dtype=object)
    if kind == "missing":
        how = draw(st.sampled_from(["float", "object", "category"]))
        if how == "float":
            return pd.Series([nan] * n, dtype="float64")
        if how == "object":
            return pd.Series([None] * n, dtype=object)
        return pd.Series(pd.Categorical([None] * n, categories=["a", "b"]))
    # constant
    value = draw(st.one_of(FINITE, TEXT, st.booleans(), st.integers(-3, 3)))
    return pd.Series([value] * n)


@st.composite
def tables(draw):
    # Mostly 10-40 rows; sometimes as few as one.
    n = draw(st.integers(10, MAX_ROWS) if draw(_often(0.8)) else st.integers(1, 9))
    k = draw(st.integers(1, MAX_COLUMNS))
    # Mostly distinct names; sometimes repeated ones (pandas allows them).
    names = draw(st.lists(NAMES, min_size=k, max_size=k, unique=draw(_often(0.8))))
    frame = pd.concat([draw(columns(n)) for _ in range(k)], axis=1, ignore_index=True)
    frame.columns = pd.Index(names, dtype=object)
    index = draw(st.sampled_from(["range", "reversed", "labels"]))
    if index == "reversed":
        frame.index = pd.RangeIndex(n)[::-1] + 100
    elif index == "labels":
        frame.index = pd.Index([f"row {i}" for i in range(n)], dtype=object)
    return frame


def _container(draw, values, index):
    """``values`` as a list, a NumPy array or a pandas Series (named or not, on X's index)."""
    how = draw(st.sampled_from(["list", "array", "series", "named series"]))
    if how == "list":
        return list(values)
    if how == "array":
        return np.asarray(values)
    name = draw(st.sampled_from(["y", "target", "ü"])) if how == "named series" else None
    return pd.Series(values, index=index, name=name)


CLASS_POOLS = [(0, 1, 2), ("a", "b", "c"), ("", "ü", "日本"), (True, False), (-1, 10**12, 7)]


@st.composite
def class_targets(draw, n, index):
    pool = draw(st.sampled_from(CLASS_POOLS))
    n_classes = min(draw(st.sampled_from([1, 2, 2, 2, 3, 3])), len(pool))
    labels = draw(st.lists(st.sampled_from(pool[:n_classes]), min_size=n, max_size=n))
    if draw(_often(0.3)):  # a few missing labels
        labels = _sprinkle(draw, labels, st.sampled_from([None, nan]), max_count=max(1, n // 4))
    return _container(draw, labels, index)


@st.composite
def regression_targets(draw, n, index):
    values = draw(st.lists(st.one_of(FINITE, st.integers(-1000, 1000).map(float)),
                           min_size=n, max_size=n))
    if draw(_often(0.3)):
        values = _sprinkle(draw, values, st.just(nan), max_count=max(1, n // 4))
    if draw(_often(0.3)):
        values = _sprinkle(draw, values, st.sampled_from(
            [inf, -inf, 1e300, -1e300, 1e-300, FLOAT_MAX, -FLOAT_MAX]), max_count=2)
    return _container(draw, values, index)


def _values_repr(values):
    return repr([None if v is pd.NA else v for v in values])


class Case:
    """A generated problem: ``X``, ``y`` and the task. Its repr rebuilds it (with ``nan``,
    ``inf`` from ``math``; a categorical column's unused categories are not shown)."""

    def __init__(self, X, y, task):
        self.X, self.y, self.task = X, y, task

    def __repr__(self):
        X, y = self.X, self.y
        series = ", ".join(
            f"pd.Series({_values_repr(X.iloc[:, j].tolist())}, dtype={str(X.dtypes.iloc[j])!r})"
            for j in range(X.shape[1])
        )
        if isinstance(y, pd.Series):
            y_repr = (f"pd.Series({_values_repr(y.tolist())}, dtype={str(y.dtype)!r}, "
                      f"name={y.name!r}, index={list(y.index)!r})")
        elif isinstance(y, np.ndarray):
            y_repr = f"np.array({_values_repr(y.tolist())}, dtype={str(y.dtype)!r})"
        else:
            y_repr = repr(y)
        return (
            f"Case(X=pd.concat([{series}], axis=1).set_axis({list(X.columns)!r}, axis=1)"
            f".set_axis({list(X.index)!r}, axis=0), y={y_repr}, task={self.task!r})"
        )


@st.composite
def cases(draw, task=None):
    task = task or draw(st.sampled_from(["classification", "regression"]))
    X = draw(tables())
    targets = class_targets if task == "classification" else regression_targets
    return Case(X, draw(targets(len(X), X.index)), task)


# --- what the input says about the outcome -------------------------------------------------------


def _target_values(case):
    """The target as a list of Python values, and a mask of the missing ones (a list's
    ``nan`` beside strings is missing too: the estimators read a list as an object array)."""
    y = case.y
    values = y if isinstance(y, list) else y.tolist()
    missing = np.array([v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))
                        for v in values], dtype=bool)
    return values, missing


def _kept(case):
    values, missing = _target_values(case)
    return [v for v, m in zip(values, missing) if not m], ~missing


def _float_columns(X):
    return [j for j in range(X.shape[1]) if X.dtypes.iloc[j] == np.float64]


def _has_inf(series):
    return bool(np.isinf(series.to_numpy(dtype="float64")).any())


def _n_validation(n_kept):
    return math.ceil(0.2 * n_kept)  # validation_fraction=0.2, as train_test_split rounds


def _sparse_columns(case):
    """Columns that may have no value at all in the training split (missing on all but at
    most as many rows as the validation split takes)."""
    _, keep = _kept(case)
    n_val = _n_validation(int(keep.sum()))
    return [
        case.X.columns[j] for j in range(case.X.shape[1])
        if int(case.X.iloc[:, j][keep].notna().sum()) <= n_val
    ]


def _column_pattern(names):
    return "(" + "|".join(re.escape(repr(str(n))) for n in names) + ")"


def expected_errors(case):
    """``(must_raise, patterns)``: whether ``fit`` must refuse ``case``, and the regexes of
    which an error's message must match one (each names a problem the input has)."""
    X, y = case.X, case.y
    names = [str(c) for c in X.columns]
    repeated = X.columns[X.columns.duplicated()].unique().tolist()
    if repeated:
        return True, [rf"more than one column named .*{re.escape(repr(repeated[0]))}"]
    kept, _ = _kept(case)
    if not kept:
        return True, [r"has no values: all \d+ are missing"]
    if len(kept) < 2:
        return True, [rf"Found {len(kept)} sample\(s\) with a target value; fit needs at least 2"]
    name = getattr(y, "name", None)
    if name is not None:
        copies = [c for c in names if re.fullmatch(re.escape(str(name)) + r"\.\d+", c)]
        if copies:
            return True, [
                rf"Feature column\(s\) {re.escape(repr(copies))} are named like a second "
                rf"copy of the target {re.escape(repr(name))}"
            ]
    must_raise, patterns = False, []
    if len(kept) >= 20:  # a feature column equal to the target on every row
        patterns.append(rf"Feature column {_column_pattern(names)} equals the target on every row")
    if case.task == "classification":
        if len(set(kept)) == 1:
            must_raise = True
            patterns.append(
                r"The target has only one class \(.+\); classification needs at least two"
            )
    else:
        if any(math.isinf(v) for v in kept):
            must_raise = True
            patterns.append(r"The regression target holds \d+ infinite values")
        # Values near the float64 maximum: a refusal must say that the target is too large.
        if max((abs(v) for v in kept if not math.isinf(v)), default=0.0) > HUGE:
            patterns.append(r"The regression target holds \d+ values too large")
    patterns.extend(_column_value_patterns(X))
    # A column with no value in the training split: an error must name it.
    sparse = _sparse_columns(case)
    if sparse:
        patterns.append(rf"{_column_pattern(sparse)}.* no value")
    return must_raise, patterns


def _bad_numbers(series):
    """Which values of a float column are infinite, and which are finite beyond ``HUGE``."""
    values = series.to_numpy(dtype="float64")
    return np.isinf(values), np.isfinite(values) & (np.abs(values) > HUGE)


def _column_value_patterns(X):
    """An ``inf`` or a finite value beyond ``HUGE`` in a float column: an error (in ``fit``
    or ``predict``) must name the column and say what is wrong."""
    patterns = []
    for j in _float_columns(X):
        infinite, huge = _bad_numbers(X.iloc[:, j])
        name = re.escape(repr(str(X.columns[j])))
        if infinite.any():
            patterns.append(rf"Numeric column {name} holds \d+ infinite values")
        if huge.any():
            patterns.append(rf"Numeric column {name} holds \d+ values too large")
    return patterns


# --- known contract violations ---------------------------------------------------------------
# name -> (trigger: does the case hold it?, regex of the error it raises instead of a clear
# one). Each needs an xfail(strict=True) test at the end of the file. None open today: the
# ones this suite found are fixed, and tested by the test_found_* tests.
KNOWN = {}


def _known(case, message=None):
    """The name of a known violation that ``case`` triggers (and whose error ``message``
    is, if given), or None."""
    for name, (trigger, pattern) in KNOWN.items():
        if trigger(case) and (message is None or re.search(pattern, message)):
            return name
    return None


# --- the contract ------------------------------------------------------------------------------

_BACKEND_PACKAGES = ("keras", "torch", "jax", "jaxlib", "tensorflow", "optree")


def _where(error):
    frames = traceback.extract_tb(error.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


def _check_error(error, case, stage, patterns, tolerate_known):
    """``error`` raised by ``stage`` must be a clear refusal of one of the input's problems."""
    message = str(error)
    described = f"{stage} raised {type(error).__name__}({message!r}) at {_where(error)}"
    note(described)
    if tolerate_known:
        known = _known(case, message)
        if known:
            event(f"known violation: {known}")
            return
    assert isinstance(error, (ValueError, TypeError)), described
    frames = traceback.extract_tb(error.__traceback__)
    innermost = frames[-1].filename.replace("\\", "/") if frames else ""
    assert not any(f"/{p}/" in innermost for p in _BACKEND_PACKAGES), (
        f"raised inside Keras or the backend: {described}"
    )
    assert len(message) >= 20, f"message too short to say what is wrong: {described}"
    assert any(re.search(p, message) for p in patterns), (
        f"the message does not name a problem of the input ({patterns}): {described}"
    )
    event(f"{stage} refused: {re.sub(r'[^A-Za-z ]', '', message)[:40]}")


def _rows_without_bad_numbers(X):
    bad = np.zeros(len(X), dtype=bool)
    for j in _float_columns(X):
        infinite, huge = _bad_numbers(X.iloc[:, j])
        bad |= infinite | huge
    return X.iloc[~bad]


def check_contract(case, estimator, tolerate_known=True, n_first=3):
    """Fit ``estimator`` on ``case``; assert the module's contract (see the docstring)."""
    note(repr(case))
    must_raise, patterns = expected_errors(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # warnings are allowed
        try:
            estimator.fit(case.X, case.y)
        except Exception as error:  # noqa: BLE001 - what is raised is what is checked
            _check_error(error, case, "fit", patterns, tolerate_known)
            return
        assert not must_raise, f"fit accepted an input it must refuse, expected {patterns}"
        X = case.X
        try:
            outputs = _outputs(estimator, X)
        except Exception as error:  # noqa: BLE001
            # Only an inf or a huge value, in a row that fit did not read (its target is
            # missing), may be refused.
            _check_error(error, case, "predict", _column_value_patterns(X), tolerate_known)
            X = _rows_without_bad_numbers(X)
            if len(X) == 0:
                return
            outputs = _outputs(estimator, X)
        _check_outputs(estimator, case, X, outputs)
        n = min(n_first, len(X))
        one_by_one = np.concatenate([_outputs(estimator, X.iloc[[i]]) for i in range(n)])
        if isinstance(estimator, TabularRegressor):  # compare in standardised units
            one_by_one = (one_by_one - estimator.target_mean_) / estimator.target_std_
            outputs = (outputs - estimator.target_mean_) / estimator.target_std_
        np.testing.assert_allclose(
            one_by_one, outputs[:n], rtol=0, atol=1e-5,
            err_msg="a row's prediction depends on the other rows predicted with it",
        )
    event("fit and predict succeeded")


def _outputs(estimator, X):
    if isinstance(estimator, TabularClassifier):
        return estimator.predict_proba(X)
    return estimator.predict(X)


def _check_outputs(estimator, case, X, outputs):
    n = len(X)
    kept, _ = _kept(case)
    assert np.isfinite(outputs).all(), f"non-finite predictions: {outputs}"
    if isinstance(estimator, TabularClassifier):
        assert set(estimator.classes_.tolist()) == set(kept), estimator.classes_
        assert outputs.shape == (n, len(estimator.classes_)), outputs.shape
        assert (outputs >= 0).all()
        np.testing.assert_allclose(outputs.sum(axis=1), 1.0, atol=1e-6)
        labels = estimator.predict(X)
        assert labels.shape == (n,), labels.shape
        np.testing.assert_array_equal(labels, estimator.classes_[np.argmax(outputs, axis=1)])
    else:
        assert outputs.shape == (n,), outputs.shape
        assert outputs.dtype == np.float64, outputs.dtype


# --- properties --------------------------------------------------------------------------------


_X10 = pd.DataFrame({"a": np.arange(10.0), "b": list("ababcbabab")})


@FUZZ
@given(case=cases("classification"))
@example(case=Case(_X10.set_axis(["a", "a"], axis=1), [0, 1] * 5, "classification"))
@example(case=Case(_X10.assign(a=[inf] + [1.0] * 9), [0, 1] * 5, "classification"))
@example(case=Case(_X10, ["x"] * 9 + [None], "classification"))
@example(case=Case(_X10.rename(columns={"b": "y.1"}), pd.Series([0, 1] * 5, name="y"),
                   "classification"))
@example(case=Case(_X10, [None] * 10, "classification"))
@example(case=Case(_X10.assign(a=[inf] + list(range(1, 10))), [None] + ["p", "q"] * 4 + ["p"],
                   "classification"))  # the inf is in a row that fit drops: predict refuses
def test_classifier_contract(case):
    check_contract(case, TabularClassifier(**TABM, **COMMON))


@FUZZ
@given(case=cases("regression"))
@example(case=Case(_X10, [inf] + [1.0] * 9, "regression"))
@example(case=Case(_X10, [1e300, -1e300, 1e-300, 0.0, nan] * 2, "regression"))
@example(case=Case(_X10.assign(a=[1e300, -1e300, 1e-300, 0.0, nan] * 2), np.arange(10.0),
                   "regression"))
def test_regressor_contract(case):
    check_contract(case, TabularRegressor(**TABM, **COMMON))


@FUZZ
@given(case=cases())
def test_tabr_contract(case):
    estimator = TabularClassifier if case.task == "classification" else TabularRegressor
    check_contract(case, estimator(**TABR, **COMMON))


# --- other table types ------------------------------------------------------------------------


def _mixed_frame(n=40):
    rng = np.random.default_rng(0)
    num = rng.normal(size=n)
    return pd.DataFrame({
        "num": num,
        "with nan": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
        "count": rng.integers(0, 10, n),
        "flag": rng.random(n) < 0.5,
        "colour": rng.choice(["red", "grün", ""], n),
    }), np.where(num > 0, "yes", "no")


def _fitted(X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TabularClassifier(**TABM, **COMMON).fit(X, y)


def test_polars_and_pyarrow_tables_predict_as_pandas():
    pl = pytest.importorskip("polars")
    pa = pytest.importorskip("pyarrow")
    X, y = _mixed_frame()
    tables = {"polars": pl.from_pandas(X), "pyarrow": pa.Table.from_pandas(X, preserve_index=False)}
    reference = _fitted(X, y)
    expected = reference.predict_proba(X)
    for kind, table in tables.items():
        # The same table in another library: the same predictions from the pandas-fitted
        # model, and the same fit (columns, roles, categories, weights) from that table.
        np.testing.assert_allclose(reference.predict_proba(table), expected, atol=1e-6,
                                   err_msg=kind)
        target = pl.Series("target", y) if kind == "polars" else pa.array(y)
        fitted = _fitted(table, target)
        assert list(fitted.feature_names_in_) == list(X.columns), kind
        for attribute in ("numeric_columns_", "categorical_columns_", "categories_",
                          "missing_flag_columns_"):
            assert getattr(fitted.preprocessor_, attribute) == getattr(
                reference.preprocessor_, attribute), (kind, attribute)
        np.testing.assert_allclose(fitted.predict_proba(table), expected, atol=1e-6,
                                   err_msg=kind)
        np.testing.assert_array_equal(fitted.predict(X), reference.predict(X))


def test_numpy_object_array_keeps_float_columns_numeric():
    X, y = _mixed_frame()
    frame = X[["num", "colour", "with nan"]]
    array = frame.values  # object: floats beside strings
    assert array.dtype == object
    fitted = _fitted(array, y)
    assert fitted.preprocessor_.numeric_columns_ == ["x0", "x2"]
    assert fitted.preprocessor_.categorical_columns_ == ["x1"]
    assert fitted.preprocessor_.missing_flag_columns_ == ["x2"]
    # As the same frame without string names (columns x0, x1, x2 too); lists of rows as well.
    unnamed = frame.set_axis(range(3), axis=1)
    expected = _fitted(unnamed, y).predict_proba(unnamed)
    np.testing.assert_allclose(fitted.predict_proba(array), expected, atol=1e-6)
    np.testing.assert_allclose(fitted.predict_proba(array.tolist()), expected, atol=1e-6)
    assert _fitted(array.tolist(), y).preprocessor_.numeric_columns_ == ["x0", "x2"]


# --- found by this suite, fixed: the contract on minimal reproducers ----------------------------
# Before the fixes (commit 9268dd9) each of these failed as its docstring says.


@pytest.mark.parametrize("column", [
    pd.Series([nan] * 10),
    pd.Series([None] * 10, dtype=object),
    pd.Series(pd.Categorical([None] * 10, categories=["u", "v"])),
], ids=["float", "object", "category"])
def test_found_all_missing_column(column):
    """Was: a column with no value in the training split became a categorical column with
    no category, and the model's constructor raised "`categorical_cardinalities[0]` must be a
    positive integer", naming no column."""
    X = _X10.assign(empty=column)
    check_contract(Case(X, [0, 1] * 5, "classification"), TabularClassifier(**TABM, **COMMON),
                   tolerate_known=False)


def test_found_float_column_near_float_max():
    """Was: the noise added before the quantile transform overflowed to inf, and
    scikit-learn raised "Input X contains infinity or a value too large for
    dtype('float64')", naming no column."""
    X = _X10.assign(a=[FLOAT_MAX, -FLOAT_MAX, 1e-300, 0.0, 1.0] * 2)
    check_contract(Case(X, [0, 1] * 5, "classification"), TabularClassifier(**TABM, **COMMON),
                   tolerate_known=False)


@pytest.mark.parametrize("y", [
    pd.Series([True, False, None] * 3 + [True]),
    np.array([True, False, nan] * 3 + [True], dtype=object),
    [True, False, None] * 3 + [True],
], ids=["series", "numpy", "list"])
def test_found_boolean_target_with_missing_values(y):
    """Was: the target stayed an object array once its missing values were dropped, and the
    permutation importances at the end of ``fit`` raised scikit-learn's "Classification
    metrics can't handle a mix of unknown and binary targets"."""
    check_contract(Case(_X10, y, "classification"), TabularClassifier(**TABM, **COMMON),
                   tolerate_known=False)


def test_found_regression_target_near_float_max():
    """Was: the standardised target overflowed to -inf, the model trained to NaN weights, and
    ``fit`` raised scikit-learn's "Input contains NaN." from the permutation importances."""
    y = [FLOAT_MAX] * 9 + [-FLOAT_MAX]
    check_contract(Case(_X10, y, "regression"), TabularRegressor(**TABM, **COMMON),
                   tolerate_known=False)


@pytest.mark.parametrize("column", [
    pd.Categorical(["u"] * 10),
    pd.Categorical(["2024-01-31", "x"] * 5),
    pd.Categorical(["a", "3"] * 5),
], ids=["one category", "date and text", "number and text"])
def test_found_categorical_column(column):
    """Was: ``Series.map`` kept the category dtype where the mapped categories were distinct,
    and ``tabattn.data._misleading`` raised pandas' TypeError "'Categorical' with dtype
    category does not support reduction 'mean'" (or 'all')."""
    X = _X10.assign(c=column)
    check_contract(Case(X, [0, 1] * 5, "classification"), TabularClassifier(**TABM, **COMMON),
                   tolerate_known=False)


def test_found_piecewise_bins_equal_in_float32():
    """Was: TabM's piecewise bins from this integer column with ties held two edges 1.5e-15
    apart (0.9847084879875168, 0.9847084879875183), equal in float32, and the embedding
    raised "`bins[0]` must be strictly increasing, also once rounded to float32"."""
    X = pd.DataFrame({"a": [3, 3, 0, 0, 3, 0, 0, 0, 0, 0, 0, 3, 0, 0, 3, 3, -3]})
    y = [1, 1, 0, 1, 1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 1]
    check_contract(Case(X, y, "classification"), TabularClassifier(**TABM, **COMMON),
                   tolerate_known=False)


# --- known violations: each fails the contract today ---------------------------------------------


def _tabr_table(seed, n=40):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "b": rng.random(n) < 0.5,
        "i": rng.integers(-(10**9), 10**9, n),
        "c": rng.choice(["u", "v"], n),
        "f": rng.normal(size=n),
    })
    return X, rng.normal(size=n)


@pytest.mark.torch_only
# Tables where, predicted alone or among the last rows of a batch, a row's TabR key differed
# in its last bits (PyTorch's matmul computes the rows past a whole group of 4 or 8 with
# another kernel) and it retrieved another of two stored rows at nearly the same distance:
# its prediction moved by up to 0.7 target standard deviations.
def test_found_tabr_prediction_of_a_row_alone_is_its_prediction_in_a_batch():
    for seed in (8, 10, 17, 34, 37):
        X, y = _tabr_table(seed)
        reg = TabularRegressor(**TABR, **COMMON)
        check_contract(Case(X, y, "regression"), reg, tolerate_known=False, n_first=len(X))
        everything = reg.predict(X)
        for rows in range(9, len(X)):
            np.testing.assert_allclose(
                reg.predict(X.iloc[:rows]), everything[:rows], rtol=0,
                atol=1e-5 * reg.target_std_, err_msg=f"seed {seed}, the first {rows} rows",
            )
