"""Panel and impulse tables on disk: Parquet with one fixed schema, so every reader sees the same types.

Why fix the types here rather than trust pandas: the same table is built by different code paths (a run with
zero sessions yields object columns, a concatenation of sessions yields int64 everywhere, a future engine may
hand over int32), and a reader that joins two runs, or loads them in R or DuckDB, should not find `session`
as int64 in one file and double in the other. The rules:

- the keys have fixed integer widths: session int32, firm int16, period and periods int64 (runs reach 1e9
  periods), tau int32;
- kind ("interval" / "tail") is a dictionary-encoded string, cheap to store over millions of rows;
- every measurement column of the panel and impulse tables (price, profit, consumer_surplus, ...) is float64,
  even when it arrives as integers or as an empty object column;
- any other column keeps its kind: booleans stay bool, integers become int64, floats float64, text string.

Compression is zstd: on these tables it is several times smaller than snappy at a similar read speed.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from algocomp.engine.results import IMPULSE_COLUMNS, PANEL_COLUMNS

KEY_COLUMN_TYPES: dict[str, pa.DataType] = {
    "session": pa.int32(),
    "firm": pa.int16(),
    "period": pa.int64(),
    "periods": pa.int64(),
    "tau": pa.int32(),
    "kind": pa.dictionary(pa.int8(), pa.string()),
}

# The measurement columns of the tables the engine produces: always float64, whatever pandas inferred.
MEASUREMENT_COLUMNS: frozenset[str] = frozenset(PANEL_COLUMNS + IMPULSE_COLUMNS) - frozenset(KEY_COLUMN_TYPES)

PARQUET_COMPRESSION = "zstd"


def table_schema(df: pd.DataFrame) -> pa.Schema:
    """The Arrow schema `write_table` stores `df` with (the column order of `df` is kept)."""
    return pa.schema([pa.field(str(name), _column_type(str(name), df[name])) for name in df.columns])


def to_arrow(df: pd.DataFrame) -> pa.Table:
    """Convert `df` to an Arrow table with the fixed schema; raises ValueError naming the column that does not fit
    (a missing key, a session number beyond int32, a price that is text)."""
    if len(set(map(str, df.columns))) != len(df.columns):
        raise ValueError(f"column names must be unique, got {list(df.columns)}")
    schema = table_schema(df)
    arrays = []
    for arrow_field, name in zip(schema, df.columns):
        try:
            arrays.append(_column_array(df[name], arrow_field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as error:
            raise ValueError(f"column {name!r} cannot be stored as {arrow_field.type}: {error}") from error
    return pa.Table.from_arrays(arrays, schema=schema)


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write `df` (a panel, an impulse table or any flat table) to Parquet at `path` with the fixed schema.

    The index is dropped: the tables are long and their keys are columns. Writes `path` directly; callers that
    need all-or-nothing files (a run folder) write to a temporary name and rename (see output.writer).
    """
    path = Path(path)
    pq.write_table(to_arrow(df), path, compression=PARQUET_COMPRESSION)
    return path


def read_table(path: str | Path | BinaryIO) -> pd.DataFrame:
    """Read a table written by `write_table`, from a path or a binary file object (e.g. bytes fetched from S3).

    Integer keys come back with their stored widths (session int32, firm int16, ...), measurements as float64
    and kind as a pandas Categorical, which is what `pd.read_parquet` would give too, so code written against
    either reader behaves the same.
    """
    return pq.read_table(path if hasattr(path, "read") else Path(path)).to_pandas()


def _column_type(name: str, column: pd.Series) -> pa.DataType:
    if name in KEY_COLUMN_TYPES:
        return KEY_COLUMN_TYPES[name]
    if name in MEASUREMENT_COLUMNS:
        return pa.float64()
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return pa.bool_()
    if pd.api.types.is_integer_dtype(dtype):
        return pa.int64()
    if pd.api.types.is_float_dtype(dtype):
        return pa.float64()
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return pa.timestamp("ns", tz="UTC") if getattr(dtype, "tz", None) is not None else pa.timestamp("ns")
    if isinstance(dtype, pd.CategoricalDtype):
        return pa.dictionary(pa.int32(), pa.string())
    return pa.string()


def _column_array(column: pd.Series, arrow_type: pa.DataType) -> pa.Array:
    if pa.types.is_dictionary(arrow_type):
        # Decode to plain strings and encode afresh, so a Categorical with unused or non-string categories and
        # a plain text column end up with the same index width and value type.
        values = pa.array(column, from_pandas=True)
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        return values.cast(pa.string()).dictionary_encode().cast(arrow_type)
    if pa.types.is_integer(arrow_type):
        if column.isna().any():
            raise ValueError(f"{int(column.isna().sum())} missing values in a key column")
        # Through int64 first so an object column of Python ints converts; the cast to the narrow width is safe
        # (it raises on overflow instead of wrapping round).
        values = np.asarray(column.to_numpy(), dtype=np.int64) if len(column) else np.empty(0, dtype=np.int64)
        return pa.array(values, type=pa.int64()).cast(arrow_type, safe=True)
    if pa.types.is_floating(arrow_type):
        values = pd.to_numeric(column, errors="raise").astype(np.float64).to_numpy() if len(column) else np.empty(0)
        return pa.array(values, type=arrow_type, from_pandas=True)
    if pa.types.is_string(arrow_type):
        values = column.astype(object).where(column.notna(), None).tolist()
        return pa.array([None if v is None else str(v) for v in values], type=arrow_type)
    return pa.array(column, type=arrow_type, from_pandas=True)
