"""Reading tables and the fitted preprocessing that turns them into model inputs.

Needs the ``cli`` extra (pandas, PyArrow, scikit-learn). Preprocessing follows Gorishniy et al.
(2021): numeric columns through scikit-learn's ``QuantileTransformer(output_distribution=
"normal")``, categorical columns to integer codes, in one scikit-learn ``ColumnTransformer``
(``TabularPreprocessor.column_transformer_``). Everything is fitted on the training split only
and saved as JSON (no pickle), so a saved model reloads its preprocessing exactly.

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
import numbers
import os
import re
import warnings

import numpy as np

try:
    import pandas as pd
    from sklearn.base import clone
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder, QuantileTransformer
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


class _NoisyQuantileTransformer(QuantileTransformer):
    """``QuantileTransformer`` fitted on slightly noisy values, as in Gorishniy et al.'s code,
    so that repeated values (integers, 0/1 columns) spread over the normal scores instead of
    collapsing; ``transform`` is the parent's, on the values as given.

    ``fit`` takes a float array ``(n_samples, n_features)`` without NaN (it follows the
    imputer) and adds ``N(0, 1) * 1e-3 * max(std, 1e-12)`` per column, drawn at once for the
    whole array from ``numpy.random.default_rng(random_state)``.
    """

    def fit(self, X, y=None):
        X = np.asarray(X, dtype="float64")
        rng = np.random.default_rng(self.random_state)
        # The std of the values scaled to at most 1: values beyond 1e154 would overflow.
        size = np.maximum(np.abs(X).max(axis=0), 1e-300)
        scale = np.maximum((X / size).std(axis=0) * size, 1e-12) * 1e-3
        return super().fit(X + rng.normal(0.0, 1.0, X.shape) * scale, y)


def _numbers(frame):
    """The columns of ``frame`` (a DataFrame or 2-D array) as float64, in a DataFrame with the
    same labels: numbers stored as text are parsed, bools are 0/1, missing values are NaN.

    Raises:
        ValueError: a column holds non-numeric text, ``inf``, or values beyond
            ±``MAX_ABS_VALUE``.
    """
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame)
    columns = []
    for position, column in enumerate(frame.columns):
        series = frame.iloc[:, position]
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
    matrix = np.stack(columns, axis=1) if columns else np.zeros((len(frame), 0))
    return pd.DataFrame(matrix, index=frame.index, columns=frame.columns)


def _category_keys(frame):
    """``_category_key`` of every value of ``frame`` (a DataFrame or 2-D array), in an object
    DataFrame with the same labels; NaN where a value is missing."""
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame)
    keys = np.empty(frame.shape, dtype=object)
    for position in range(frame.shape[1]):
        values = frame.iloc[:, position].to_numpy(dtype=object)
        keys[:, position] = [
            np.nan if missing else _category_key(value)
            for value, missing in zip(values, pd.isna(values))
        ]
    return pd.DataFrame(keys, index=frame.index, columns=frame.columns, dtype=object)


def _shift_codes(codes):
    """``OrdinalEncoder`` codes, -1 for missing or unseen, plus 1: 0 for those, 1..n for the
    known categories."""
    return np.asarray(codes) + 1


class TabularPreprocessor:
    """Fitted column roles and transforms: table → ``{"numeric", "categorical"}`` arrays.

    Args:
        categorical: columns forced to be categorical (default: inferred; strings, bools and
            pandas categories are categorical).
        numeric: columns forced to be numeric (must hold numbers; an error otherwise).
        random_state: seed for the small noise added to numeric columns when fitting the
            quantile transform (as in the paper's code), so ties spread over quantiles.

    After ``fit``: ``feature_names_in_`` (input columns, in order), ``numeric_columns_``,
    ``categorical_columns_``, ``categories_`` (dict: column → its known category keys, sorted),
    ``missing_flag_columns_`` (numeric columns that get a missing flag), ``medians_``,
    ``quantiles_`` (per numeric column, its ``n_quantiles`` quantiles) and ``references_``
    (the quantiles' levels in [0, 1]), ``token_columns_`` (the input column behind every
    model token, numeric first), and ``column_transformer_``, the fitted scikit-learn
    ``ColumnTransformer`` that does the work. Its parts, each a ``Pipeline`` on the columns of
    one role, in this order:

    - ``"numeric"``: ``numbers`` (the values as float64; text numbers parsed), ``impute``
      (``SimpleImputer(strategy="median")``), ``quantiles`` (``QuantileTransformer(
      output_distribution="normal")``, fitted on slightly noisy values);
    - ``"missing"``: ``numbers``, then ``flags`` (``MissingIndicator(features="missing-only")``):
      a 0/1 column for every numeric column that had NaN in ``fit``'s rows;
    - ``"categorical"``: ``keys`` (one string per category: 3, 3.0 and "3" are one), ``codes``
      (``OrdinalEncoder``, -1 for missing and unseen), ``shift`` (plus 1): code 0 for missing
      or unseen categories, 1..n for the known ones in sorted order of keys.

    ``column_transformer_.transform(frame)`` gives these as one array ``(n, n_numeric_tokens +
    n_categorical)``, float64 (int32 when every column is categorical); ``transform`` splits it.
    A part with no column is left out.

    Column roles: strings, bools, pandas categories, and numeric columns with at most two
    distinct values in ``fit``'s rows (flags) are categorical; other numeric columns are
    numeric. ``categorical`` and ``numeric`` override this.

    ``fit`` warns (``ColumnWarning``) about columns that would probably mislead the model, unless
    ``categorical`` or ``numeric`` names them: a different value in every row of at least 20
    (an identifier, integer or text), dates stored as text, numbers written with thousands
    separators, and text columns of which nine in ten values are numbers. Nothing is converted.

    ``to_dict``/``save`` write the fitted state as plain JSON values (no pickle);
    ``from_dict``/``load`` rebuild ``column_transformer_`` from them.
    """

    def __init__(self, categorical=None, numeric=None, random_state=0):
        self.categorical = categorical
        self.numeric = numeric
        self.random_state = random_state

    # --- fitting ---------------------------------------------------------------------------
    def fit(self, frame):
        """Learn column roles, imputation values, quantiles and categories from ``frame``.

        Args:
            frame: pandas DataFrame of training rows, with string column names; every column
                is a feature.

        Returns:
            ``self``.

        Raises:
            ValueError: ``categorical`` or ``numeric`` names a column not in ``frame``, or
                both name one; ``frame`` has no columns; a column has no value in any row;
                a numeric column holds non-numeric text, ``inf`` or values beyond ±1e300.
        """
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

        n_quantiles = max(min(len(frame) // 30, 1000), 10)
        self.column_transformer_ = self._column_transformer(min(n_quantiles, len(frame)))
        self.column_transformer_.fit(frame)
        self._read_fitted_parts()
        self.token_columns_ = (
            self.numeric_columns_ + self.missing_flag_columns_ + self.categorical_columns_
        )
        return self

    def _column_transformer(self, n_quantiles):
        """The unfitted ``ColumnTransformer`` for the column roles."""
        parts = []
        if self.numeric_columns_:
            numbers = FunctionTransformer(_numbers, feature_names_out="one-to-one")
            quantiles = _NoisyQuantileTransformer(
                n_quantiles=n_quantiles, output_distribution="normal", subsample=10**9,
                random_state=self.random_state,
            )
            # keep_empty_features: an all-NaN column keeps its place (median 0).
            impute = SimpleImputer(strategy="median", keep_empty_features=True)
            parts.append((
                "numeric",
                Pipeline([("numbers", numbers), ("impute", impute), ("quantiles", quantiles)]),
                self.numeric_columns_,
            ))
            # error_on_new=False: NaN in a column that had none in fit is imputed, unflagged.
            flags = MissingIndicator(features="missing-only", error_on_new=False)
            parts.append((
                "missing",
                Pipeline([("numbers", clone(numbers)), ("flags", flags)]),
                self.numeric_columns_,
            ))
        if self.categorical_columns_:
            # Codes must not be 0 for a known category, which the encoder's unknown_value
            # forbids: encode missing and unseen as -1, then shift every code by 1.
            codes = OrdinalEncoder(
                handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1,
                dtype=np.int32,
            )
            parts.append((
                "categorical",
                Pipeline([
                    ("keys", FunctionTransformer(_category_keys, feature_names_out="one-to-one")),
                    ("codes", codes),
                    ("shift", FunctionTransformer(_shift_codes, feature_names_out="one-to-one")),
                ]),
                self.categorical_columns_,
            ))
        # Plain arrays whatever sklearn.set_config(transform_output=...) says.
        return ColumnTransformer(parts, sparse_threshold=0).set_output(transform="default")

    def _read_fitted_parts(self):
        """The JSON-able fitted attributes, from the parts of ``column_transformer_``."""
        parts = self.column_transformer_.named_transformers_
        self.medians_, self.quantiles_, self.references_ = [], [], []
        self.missing_flag_columns_ = []
        if self.numeric_columns_:
            self.medians_ = parts["numeric"]["impute"].statistics_.tolist()
            self.quantiles_ = parts["numeric"]["quantiles"].quantiles_.T.tolist()
            self.references_ = parts["numeric"]["quantiles"].references_.tolist()
            self.missing_flag_columns_ = [
                self.numeric_columns_[i] for i in parts["missing"]["flags"].features_
            ]
        self.categories_ = {}
        if self.categorical_columns_:
            encoder = parts["categorical"]["codes"]
            for column, keys in zip(self.categorical_columns_, encoder.categories_):
                # The encoder lists missing values seen in fit as a last NaN; not a category.
                self.categories_[column] = [key for key in keys.tolist() if isinstance(key, str)]

    def _restored_column_transformer(self):
        """``column_transformer_``, fitted, rebuilt from the JSON-able attributes."""
        # ColumnTransformer.transform relies on private state (which columns go to which
        # part) that its fit derives from the column names alone; fitting it on a stand-in
        # table made from the saved state gets that state through public API. Then each part
        # gets its saved, documented fitted attributes (the stand-in fit gives the same,
        # but for the quantiles).
        rows = max([2, len(self.references_)] + [len(keys) for keys in self.categories_.values()])
        stand_in = {}
        for column, median in zip(self.numeric_columns_, self.medians_):
            stand_in[column] = np.full(rows, float(median))
            if column in self.missing_flag_columns_:
                stand_in[column][0] = np.nan
        for column in self.categorical_columns_:
            keys = np.asarray(self.categories_[column], dtype=object)
            stand_in[column] = np.resize(keys, rows)
        transformer = self._column_transformer(len(self.references_))
        transformer.fit(pd.DataFrame(stand_in, columns=self.feature_names_in_))
        parts = transformer.named_transformers_
        if self.numeric_columns_:
            parts["numeric"]["impute"].statistics_ = np.asarray(self.medians_, dtype="float64")
            quantiles = parts["numeric"]["quantiles"]
            quantiles.quantiles_ = np.asarray(self.quantiles_, dtype="float64").T
            quantiles.references_ = np.asarray(self.references_, dtype="float64")
            quantiles.n_quantiles_ = len(self.references_)
            parts["missing"]["flags"].features_ = np.asarray(
                [self.numeric_columns_.index(c) for c in self.missing_flag_columns_],
                dtype=np.intp,
            )
        if self.categorical_columns_:
            parts["categorical"]["codes"].categories_ = [
                np.asarray(self.categories_[column], dtype=object)
                for column in self.categorical_columns_
            ]
        return transformer

    # --- transforming ----------------------------------------------------------------------
    def transform(self, frame):
        """Model inputs for the rows of ``frame`` (a pandas DataFrame).

        Returns:
            ``{"numeric": float32 (n, n_numeric_tokens), "categorical": int32 (n, n_cat)}``:
            the numeric columns' normal scores, then their missing flags (0/1); the categorical
            columns' codes (0 for missing or unseen). Keys with no columns are left out. Extra
            columns in ``frame`` are ignored.

        Raises:
            ValueError: a fitted column is missing, a numeric column holds non-numeric
                values, or a numeric column holds ``inf`` or values beyond ±1e300.
        """
        missing = [c for c in self.feature_names_in_ if c not in frame.columns]
        if missing:
            raise ValueError(
                f"The data is missing feature columns the model was trained on: {missing}"
            )
        if list(frame.columns) != self.feature_names_in_:
            # Extra columns, which might have names scikit-learn refuses (not strings).
            frame = frame[self.feature_names_in_]
        encoded = self.column_transformer_.transform(frame)
        out = {}
        if self.numeric_columns_:
            out["numeric"] = encoded[:, :self.n_numeric_tokens].astype("float32")
        if self.categorical_columns_:
            out["categorical"] = encoded[:, self.n_numeric_tokens:].astype("int32")
        return out

    def fit_transform(self, frame):
        """``fit(frame)``, then ``transform(frame)``."""
        return self.fit(frame).transform(frame)

    @property
    def n_numeric_tokens(self):
        """Numeric columns plus missing flags: the width of ``transform``'s ``"numeric"``."""
        return len(self.numeric_columns_) + len(self.missing_flag_columns_)

    @property
    def categorical_cardinalities(self):
        """Known categories per categorical column (tuple of ints; code 0 comes on top)."""
        return tuple(len(self.categories_[c]) for c in self.categorical_columns_)

    # --- JSON ------------------------------------------------------------------------------
    _STATE = (
        "feature_names_in_", "numeric_columns_", "categorical_columns_",
        "missing_flag_columns_", "medians_", "quantiles_", "references_", "categories_",
        "token_columns_",
    )

    def to_dict(self):
        """The fitted state as a dict of plain JSON values (lists, strings, numbers)."""
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
        """The fitted preprocessor from ``to_dict``'s dict, ``column_transformer_`` rebuilt.

        Args:
            state: the dict of ``to_dict`` (as read back from JSON).

        Returns:
            A fitted ``TabularPreprocessor``.

        Raises:
            ValueError: another ``format_version``, or entries that do not fit together
                (e.g. quantile lists of different lengths).
            KeyError, TypeError: a missing or malformed entry.
        """
        if state.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"Unsupported preprocessing format_version {state.get('format_version')!r}; "
                f"this tabattn reads version {FORMAT_VERSION}"
            )
        self = cls(**state["params"])
        for name in cls._STATE:
            setattr(self, name, state[name])
        self.column_transformer_ = self._restored_column_transformer()
        return self

    def save(self, path):
        """Write ``to_dict()`` as JSON to ``path``."""
        with open(path, "w", encoding="utf-8") as file:
            json.dump(self.to_dict(), file)

    @classmethod
    def load(cls, path):
        """The fitted preprocessor saved by ``save`` at ``path`` (see ``from_dict``)."""
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
