"""Reading tables and the fitted preprocessing that turns them into model inputs.

Needs the ``cli`` extra (pandas, PyArrow, scikit-learn). Preprocessing follows Gorishniy et al.
(2021): numeric columns through scikit-learn's ``QuantileTransformer(output_distribution=
"normal")``, categorical columns to integer codes. Everything is fitted on the training split
only and saved as JSON (no pickle), so a saved model reloads its preprocessing exactly.

Missing values and unseen data:

- numeric NaN: imputed with the training median (before the quantile transform), and a 0/1
  "missing" flag column ``<column>__missing`` is added for every numeric column that had NaN
  in the training data;
- categorical NaN and categories not seen in training: code 0;
- ``inf``/``-inf`` in a numeric column: ``ValueError`` (they are almost always a bug upstream);
  so are finite values beyond ±1e300 (``MAX_ABS_VALUE``), which overflow in arithmetic;
- a column with no value in any training row: ``ValueError`` naming it;
- NaN in the target: those rows are dropped, with a warning that says how many (an error if
  every row's target is NaN).
"""

import json
import math
import numbers
import os
import re
import warnings

import numpy as np

try:
    import pandas as pd
    from sklearn.preprocessing import QuantileTransformer
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "tabattn.data needs pandas, pyarrow and scikit-learn. "
        "Install them with: pip install 'tabattn[cli]'"
    ) from error

FORMAT_VERSION = 1
_MAX_CLASSES_FOR_INTEGER_TARGET = 20
# Larger magnitudes overflow float64 in sums and differences (medians, quantiles, standard
# scores): numeric columns and regression targets beyond it are refused.
MAX_ABS_VALUE = 1e300


class ColumnWarning(UserWarning):
    """A column that will probably mislead the model (an identifier, dates or numbers stored
    as text); the message names it and says what to do."""


def read_table(source):
    """Read a table from a CSV (``.csv``, ``.csv.gz``), Parquet file or a pandas DataFrame.

    Args:
        source: a path (str or ``os.PathLike``) or a ``pandas.DataFrame`` (returned as a copy).

    Returns:
        A ``pandas.DataFrame``.

    Raises:
        FileNotFoundError: the path does not exist.
        PermissionError: the file may not be read.
        ValueError: the file is empty, has no rows, is corrupt or truncated, is not UTF-8
            text, cannot be parsed, or has an extension other than ``.csv``, ``.csv.gz``,
            ``.parquet``/``.pq``.
    """
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
    else:
        path = os.fspath(source)
        if not os.path.exists(path):
            raise FileNotFoundError(f"Data file not found: {path!r}")
        if os.path.isdir(path):
            raise ValueError(f"Expected a data file, got a directory: {path!r}")
        lower = path.lower()
        if lower.endswith((".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".txt")):
            reader = pd.read_csv
        elif lower.endswith((".parquet", ".pq")):
            reader = pd.read_parquet
        else:
            raise ValueError(
                f"Unsupported file type for {path!r}: expected .csv, .csv.gz or .parquet"
            )
        import lzma
        import zipfile
        import zlib

        try:
            from pyarrow import ArrowInvalid
        except ImportError:  # pragma: no cover - pandas may read Parquet with fastparquet
            ArrowInvalid = ()
        try:
            frame = reader(path)
        except pd.errors.EmptyDataError:
            raise ValueError(f"Data file is empty: {path!r}") from None
        except PermissionError:
            raise PermissionError(
                f"Permission denied reading data file {path!r}: ask for read access or copy "
                "the file somewhere you can read it"
            ) from None
        except UnicodeDecodeError as error:
            raise ValueError(
                f"Could not read {path!r}: it is not UTF-8 text ({error.reason} at byte "
                f"{error.start}). Save it as UTF-8 CSV"
            ) from error
        except (EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile, ArrowInvalid,
                OSError, ValueError) as error:
            # gzip and bz2 report damaged data as OSErrors without an errno.
            damaged = not isinstance(error, (OSError, ValueError)) or isinstance(
                error, ArrowInvalid) or getattr(error, "errno", 0) is None
            if damaged:
                raise ValueError(
                    f"Could not read {path!r}: the file is corrupt or truncated ({error}). "
                    "Download or export it again"
                ) from error
            raise ValueError(f"Could not read {path!r}: {error}") from error
    if frame.shape[0] == 0:
        raise ValueError(f"The table has no rows (columns: {list(frame.columns)})")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def infer_task(y):
    """``"classification"`` for string, bool, category or few-valued integer targets, else
    ``"regression"``. Integers count as classes when there are at most 20 distinct values."""
    y = pd.Series(y).dropna()
    if _is_categorical_dtype(y):
        return "classification"
    if pd.api.types.is_integer_dtype(y) or (
        pd.api.types.is_float_dtype(y) and len(y) and np.all(np.mod(y, 1) == 0)
    ):
        if y.nunique() <= _MAX_CLASSES_FOR_INTEGER_TARGET:
            return "classification"
    return "regression"


def _is_categorical_dtype(series):
    return (
        pd.api.types.is_object_dtype(series)
        or pd.api.types.is_string_dtype(series)
        or pd.api.types.is_bool_dtype(series)
        or isinstance(series.dtype, pd.CategoricalDtype)
    )


def _is_binary(series):
    """A numeric column with at most two distinct finite values (a flag): a category, not a
    quantity; numeric embeddings would spend many inputs on it for nothing. A column with
    ``inf`` stays numeric, where it is an error."""
    values = series.dropna()
    if values.nunique() > 2:
        return False
    try:
        return bool(np.isfinite(values.to_numpy(dtype="float64")).all())
    except (TypeError, ValueError):
        return False


def _category_key(value):
    """One string per category, stable across dtypes (3, 3.0 and "3" are the same key)."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return str(int(value))
    return str(value)


def target_mask(target, name=None):
    """Boolean Series: the rows of ``target`` (a Series) that have a value. Warns with the
    count of those that do not.

    Raises:
        ValueError: every value is missing.
    """
    label = "The target" if name is None else f"Target column {name!r}"
    missing = target.isna()
    if missing.all():
        raise ValueError(f"{label} has no values: all {len(target)} are missing")
    if missing.any():
        warnings.warn(
            f"Dropped {int(missing.sum())} of {len(target)} rows whose target "
            f"{'' if name is None else repr(name) + ' '}is missing",
            stacklevel=3,
        )
    return ~missing


SPLIT_VALUES = ("train", "test")


def split_rows(frame, target, task, seed, split_column=None, validation_fraction=0.2,
               test_fraction=0.2):
    """Train, validation and test rows of a table: the split the CLI and the benchmarks use.

    The test rows are those marked ``"test"`` in ``split_column`` (by default a column named
    ``split`` that holds exactly ``"train"`` and ``"test"``, as Adult's official split), or
    else a random ``test_fraction`` of the rows. Then a random ``validation_fraction`` of the
    remaining rows is held out for early stopping. Random splits are stratified on the target
    for classification and repeatable with ``seed``.

    Args:
        frame: pandas DataFrame with the target column and no missing target.
        target: name of the target column.
        task: ``"classification"`` or ``"regression"``.
        seed: integer seed of the random splits.
        split_column: column of ``"train"``/``"test"`` values, or ``None`` (see above).

    Returns:
        ``(train, validation, test, description)``: three DataFrames (the split column left
        out) and a few words on where the test rows came from.

    Raises:
        ValueError: ``split_column`` is not a column, is the target, has missing values or
            values other than ``"train"`` and ``"test"``, or leaves no train or no test rows.
    """
    from sklearn.model_selection import train_test_split

    name = f"--split-column {split_column!r}"
    if split_column is None and "split" in frame.columns and target != "split":
        if set(frame["split"].dropna().astype(str).unique()) == set(SPLIT_VALUES):
            split_column = "split"
            name = "Column 'split' (the train/test split, as it holds 'train' and 'test')"
    stratify = (lambda part: part[target]) if task == "classification" else (lambda part: None)
    if split_column is not None:
        if split_column not in frame.columns:
            raise ValueError(f"{name} is not a column. Available: {list(frame.columns)}")
        if split_column == target:
            raise ValueError(f"{name} is the target; choose another --split-column")
        missing = int(frame[split_column].isna().sum())
        if missing:
            raise ValueError(
                f"{name} has no value in {missing} of {len(frame)} rows: fill them with 'train' "
                "or 'test', or drop those rows"
            )
        split = frame[split_column].astype(str)
        other = ~split.isin(SPLIT_VALUES)
        if other.any():
            raise ValueError(
                f"{name} must hold only 'train' and 'test', but {int(other.sum())} rows hold "
                f"other values: {sorted(split[other].unique())[:5]}. Change them to 'train' or "
                "'test', or choose another --split-column"
            )
        rest = frame.drop(columns=[split_column])
        train, test = rest[split == "train"], rest[split == "test"]
        if len(train) == 0 or len(test) == 0:
            raise ValueError(
                f"{name} leaves no {'train' if len(train) == 0 else 'test'} rows; it needs both "
                "'train' and 'test' rows"
            )
        description = f"column {split_column!r}"
    else:
        train, test = train_test_split(
            frame, test_size=test_fraction, random_state=seed, stratify=stratify(frame)
        )
        description = f"random {test_fraction:.0%}"
    train, validation = train_test_split(
        train, test_size=validation_fraction, random_state=seed, stratify=stratify(train)
    )
    return train, validation, test, description


def drop_missing_target(frame, target):
    """Drop rows whose ``target`` is NaN, warning with the count.

    Raises:
        ValueError: ``target`` is not a column, or every value is missing.
    """
    if target not in frame.columns:
        raise ValueError(
            f"Target column {target!r} not found. Available columns: {list(frame.columns)}"
        )
    return frame.loc[target_mask(frame[target], target)]


# Fewer rows than this and "every value distinct" says nothing about a column.
_IDENTIFIER_MIN_ROWS = 20
_DATE = re.compile(
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?"
    r"|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}"
)
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})*(\.\d+)?")


def _misleading(series, role):
    """Why ``series`` would mislead the model in its ``role``, or ``None``."""
    values = series.dropna()
    if len(values) == 0:
        return None
    # Plain text (a pandas categorical would keep its dtype through map).
    text = values.iloc[:1000].astype(str).astype(object) if role == "categorical" else None
    if text is not None and not pd.api.types.is_bool_dtype(series):
        if text.map(lambda v: bool(_DATE.fullmatch(v))).mean() >= 0.9:
            return ("holds dates as text, which become unrelated categories; parse them into "
                    "numbers (e.g. year, month, day of week) or drop the column")
        if text.map(lambda v: bool(_THOUSANDS.fullmatch(v))).all() and text.str.contains(",").any():
            return ("holds numbers written with thousands separators (e.g. '1,234'), which "
                    "become categories; read them as numbers (pandas.read_csv(..., "
                    "thousands=',')) or pass the column in `numeric=` after cleaning it")
        numbers_share = pd.to_numeric(text, errors="coerce").notna().mean()
        if numbers_share >= 0.9 and text.nunique() > 20:
            return (f"holds numbers stored as text ({numbers_share:.0%} of values), which "
                    "become categories; clean the other values (e.g. a missing-value marker) "
                    "so that the column reads as numbers")
    identifier = role == "categorical" or pd.api.types.is_integer_dtype(series)
    if identifier and len(series) >= _IDENTIFIER_MIN_ROWS and values.is_unique and (
        len(values) == len(series)
    ):
        return ("has a different value in every row, like a row identifier: it cannot carry "
                "over to new rows. Drop it, or pass it in `numeric=` if it is a quantity")
    return None


class TabularPreprocessor:
    """Fitted column roles and transforms: table → ``{"numeric", "categorical"}`` arrays.

    Args:
        categorical: columns forced to be categorical (default: inferred; strings, bools and
            pandas categories are categorical).
        numeric: columns forced to be numeric (must hold numbers; an error otherwise).
        random_state: seed for the small noise added to numeric columns when fitting the
            quantile transform (as in the paper's code), so ties spread over quantiles.

    After ``fit``: ``feature_names_in_`` (input columns, in order), ``numeric_columns_``,
    ``categorical_columns_``, ``categories_`` (known category keys per categorical column),
    ``missing_flag_columns_`` (numeric columns that get a missing flag) and
    ``token_columns_`` (the input column behind every model token, numeric first).

    Column roles: strings, bools, pandas categories, and numeric columns with at most two
    distinct values in ``fit``'s rows (flags) are categorical; other numeric columns are
    numeric. ``categorical`` and ``numeric`` override this.

    ``fit`` warns (``ColumnWarning``) about columns that would probably mislead the model, unless
    ``categorical`` or ``numeric`` names them: a different value in every row of at least 20
    (an identifier, integer or text), dates stored as text, numbers written with thousands
    separators, and text columns of which nine in ten values are numbers. Nothing is converted.
    """

    def __init__(self, categorical=None, numeric=None, random_state=0):
        self.categorical = categorical
        self.numeric = numeric
        self.random_state = random_state

    # --- fitting ---------------------------------------------------------------------------
    def fit(self, frame):
        """Learn column roles, imputation values, quantiles and categories from ``frame``."""
        self.feature_names_in_ = [str(c) for c in frame.columns]
        forced_cat = _as_list(self.categorical, "categorical")
        forced_num = _as_list(self.numeric, "numeric")
        for name, columns in (("categorical", forced_cat), ("numeric", forced_num)):
            unknown = [c for c in columns if c not in self.feature_names_in_]
            if unknown:
                raise ValueError(
                    f"`{name}` names columns that are not in the data: {unknown}. "
                    f"Available columns: {self.feature_names_in_}"
                )
        both = sorted(set(forced_cat) & set(forced_num))
        if both:
            raise ValueError(f"Columns forced to be both categorical and numeric: {both}")
        self.numeric_columns_, self.categorical_columns_ = [], []
        for column in self.feature_names_in_:
            if column in forced_cat:
                self.categorical_columns_.append(column)
            elif column in forced_num or not (
                _is_categorical_dtype(frame[column]) or _is_binary(frame[column])
            ):
                self.numeric_columns_.append(column)
            else:
                self.categorical_columns_.append(column)
        if not self.feature_names_in_:
            raise ValueError("The table has no feature columns besides the target")
        empty = [c for c in self.feature_names_in_ if frame[c].isna().all()]
        if empty:
            raise ValueError(
                f"Column(s) {empty} have no value in any of the {len(frame)} training rows: "
                "drop them, or fill them in"
            )
        for column in self.feature_names_in_:
            if column in forced_cat or column in forced_num:
                continue  # the user chose its role
            role = "categorical" if column in self.categorical_columns_ else "numeric"
            reason = _misleading(frame[column], role)
            if reason:
                warnings.warn(f"Column {column!r} {reason}.", ColumnWarning, stacklevel=3)

        numeric = self._numeric_matrix(frame)
        self.missing_flag_columns_ = [
            c for c, has_nan in zip(self.numeric_columns_, np.isnan(numeric).any(axis=0)) if has_nan
        ]
        medians = np.nanmedian(numeric, axis=0) if numeric.shape[1] else np.zeros(0)
        self.medians_ = [0.0 if math.isnan(m) else float(m) for m in medians]
        self.quantiles_, self.references_ = [], []
        if numeric.shape[1]:
            filled = np.where(np.isnan(numeric), np.asarray(self.medians_), numeric)
            # Paper's code: fit the quantiles on slightly noisy data so repeated values
            # (integers, 0/1 columns) spread over the normal scores instead of collapsing.
            rng = np.random.default_rng(self.random_state)
            # The std of the values scaled to at most 1: values beyond 1e154 would overflow.
            size = np.maximum(np.abs(filled).max(axis=0), 1e-300)
            scale = np.maximum((filled / size).std(axis=0) * size, 1e-12) * 1e-3
            noisy = filled + rng.normal(0.0, 1.0, filled.shape) * scale
            n_quantiles = max(min(len(frame) // 30, 1000), 10)
            transformer = QuantileTransformer(
                n_quantiles=min(n_quantiles, len(frame)),
                output_distribution="normal",
                subsample=10**9,
                random_state=self.random_state,
            ).fit(noisy)
            self.quantiles_ = transformer.quantiles_.T.tolist()
            self.references_ = transformer.references_.tolist()
        self.categories_ = {}
        for column in self.categorical_columns_:
            values = frame[column].dropna().map(_category_key)
            self.categories_[column] = sorted(values.unique().tolist())
        self.token_columns_ = (
            self.numeric_columns_ + self.missing_flag_columns_ + self.categorical_columns_
        )
        return self

    # --- transforming ----------------------------------------------------------------------
    def transform(self, frame):
        """Return ``{"numeric": float32 (n, n_num), "categorical": int32 (n, n_cat)}``.

        Keys with no columns are left out. Extra columns in ``frame`` are ignored.

        Raises:
            ValueError: a fitted column is missing, a numeric column holds non-numeric
                values, or a numeric column holds ``inf``.
        """
        missing = [c for c in self.feature_names_in_ if c not in frame.columns]
        if missing:
            raise ValueError(
                f"The data is missing feature columns the model was trained on: {missing}"
            )
        out = {}
        if self.numeric_columns_:
            numeric = self._numeric_matrix(frame)
            is_nan = np.isnan(numeric)
            filled = np.where(is_nan, np.asarray(self.medians_), numeric)
            transformed = self._quantile_transformer().transform(filled)
            flags = [is_nan[:, self.numeric_columns_.index(c)] for c in self.missing_flag_columns_]
            if flags:
                transformed = np.concatenate([transformed, np.stack(flags, axis=1)], axis=1)
            out["numeric"] = transformed.astype("float32")
        if self.categorical_columns_:
            codes = np.zeros((len(frame), len(self.categorical_columns_)), dtype="int32")
            for j, column in enumerate(self.categorical_columns_):
                lookup = {key: i + 1 for i, key in enumerate(self.categories_[column])}
                values = frame[column]
                keys = values.map(lambda v: None if pd.isna(v) else _category_key(v))
                # Missing (None) and unseen categories both map to the reserved code 0.
                codes[:, j] = keys.map(lambda k: lookup.get(k, 0)).to_numpy(dtype="int32")
            out["categorical"] = codes
        return out

    def fit_transform(self, frame):
        return self.fit(frame).transform(frame)

    @property
    def n_numeric_tokens(self):
        return len(self.numeric_columns_) + len(self.missing_flag_columns_)

    @property
    def categorical_cardinalities(self):
        return tuple(len(self.categories_[c]) for c in self.categorical_columns_)

    def _numeric_matrix(self, frame):
        columns = []
        for column in self.numeric_columns_:
            series = frame[column]
            if _is_categorical_dtype(series) and not pd.api.types.is_bool_dtype(series):
                converted = pd.to_numeric(series, errors="coerce")
                bad = series[converted.isna() & series.notna()]
                if len(bad):
                    examples = bad.astype(str).unique()[:3].tolist()
                    raise ValueError(
                        f"Numeric column {column!r} holds non-numeric values, e.g. {examples}. "
                        "Clean the column or pass it in `categorical=`."
                    )
                series = converted
            values = series.to_numpy(dtype="float64", na_value=np.nan)
            if np.isinf(values).any():
                raise ValueError(
                    f"Numeric column {column!r} holds {int(np.isinf(values).sum())} infinite "
                    "values; replace them (e.g. with NaN) before training or predicting."
                )
            huge = np.abs(np.nan_to_num(values)) > MAX_ABS_VALUE
            if huge.any():
                raise ValueError(
                    f"Numeric column {column!r} holds {int(huge.sum())} values too large to "
                    f"compute with (beyond ±{MAX_ABS_VALUE:g}, near the largest float); "
                    "rescale the column (e.g. take its logarithm)"
                )
            columns.append(values)
        if not columns:
            return np.zeros((len(frame), 0))
        return np.stack(columns, axis=1)

    def _quantile_transformer(self):
        # Rebuild the fitted scikit-learn transformer from its JSON-able state.
        transformer = QuantileTransformer(output_distribution="normal")
        transformer.quantiles_ = np.asarray(self.quantiles_, dtype="float64").T
        transformer.references_ = np.asarray(self.references_, dtype="float64")
        transformer.n_quantiles_ = len(self.references_)
        transformer.n_features_in_ = len(self.numeric_columns_)
        return transformer

    # --- JSON ------------------------------------------------------------------------------
    _STATE = (
        "feature_names_in_", "numeric_columns_", "categorical_columns_",
        "missing_flag_columns_", "medians_", "quantiles_", "references_", "categories_",
        "token_columns_",
    )

    def to_dict(self):
        return {
            "format_version": FORMAT_VERSION,
            "params": {
                "categorical": self.categorical,
                "numeric": self.numeric,
                "random_state": self.random_state,
            },
            **{name: getattr(self, name) for name in self._STATE},
        }

    @classmethod
    def from_dict(cls, state):
        if state.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"Unsupported preprocessing format_version {state.get('format_version')!r}; "
                f"this tabattn reads version {FORMAT_VERSION}"
            )
        self = cls(**state["params"])
        for name in cls._STATE:
            setattr(self, name, state[name])
        return self

    def save(self, path):
        with open(path, "w", encoding="utf-8") as file:
            json.dump(self.to_dict(), file)

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as file:
            return cls.from_dict(json.load(file))


def _as_list(value, name):
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return [str(v) for v in value]
    except TypeError:
        raise ValueError(f"`{name}` must be a list of column names. Received: {value!r}") from None


def load_adult():
    """The bundled UCI Adult census-income table (48,842 rows; see ``datasets/README.md``).

    Returns a DataFrame with the 14 features, ``split`` (``"train"``/``"test"``: the official
    UCI files) and the target ``income`` (``"<=50K"``/``">50K"``).
    """
    return read_table(adult_path())


def adult_path():
    return os.path.join(os.path.dirname(__file__), "datasets", "adult.csv.gz")
