"""Rows of study data as plain records, and numeric columns taken from them.

The data layer (:mod:`metapool.data`) returns a list of records (one ``dict`` per row).  The
statistics accept that, a mapping of columns (``{"events": [...], ...}``) or a pandas DataFrame;
:func:`as_records` turns any of them into records, so no module of the statistics needs pandas.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["as_records", "columns_of", "numbers", "texts", "present_columns", "clean"]


def clean(v: Any) -> Any:
    """A cell as a plain Python value: NaN/NaT -> None, numpy scalars -> int/float/str."""
    if v is None:
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(v, float) and math.isnan(v):
        return None
    if type(v).__name__ in ("NAType", "NaTType"):
        return None
    return v


def _column_values(v) -> list:
    """One column of a mapping as a list of clean values (numpy arrays in one ``tolist`` call:
    the audit passes candidate grids of tens of thousands of rows)."""
    if isinstance(v, (str, bytes)):
        return [v]
    if hasattr(v, "dtype") and hasattr(v, "tolist") and v.dtype.kind in "biuf":
        return [None if x != x else x for x in v.tolist()]      # x != x: NaN
    return [clean(x) for x in v]


def as_records(data) -> list:
    """Records (list of dicts) from records, a mapping of columns or a DataFrame-like object."""
    if data is None:
        return []
    if hasattr(data, "to_dict") and hasattr(data, "columns"):          # pandas DataFrame
        return [{str(k): clean(v) for k, v in r.items()} for r in data.to_dict(orient="records")]
    if isinstance(data, Mapping):
        cols = {str(k): _column_values(v) for k, v in data.items()}
        n = max((len(v) for v in cols.values()), default=0)
        for k, v in cols.items():
            if len(v) != n:
                raise ValueError(f"column {k!r} has {len(v)} values, other columns {n}")
        keys = list(cols)
        return [dict(zip(keys, row)) for row in zip(*cols.values())]
    out = []
    for r in data:
        if not isinstance(r, Mapping):
            raise ValueError(f"a row must be a mapping of column: value, not {type(r).__name__}")
        out.append({str(k): clean(v) for k, v in r.items()})
    return out


def columns_of(records: Sequence[Mapping]) -> list:
    """Column names in first-seen order."""
    return list(dict.fromkeys(k for r in records for k in r))


def present_columns(records: Sequence[Mapping]) -> list:
    """Columns that hold at least one value (empty columns are ignored, e.g. for kind detection)."""
    return [c for c in columns_of(records) if any(r.get(c) not in (None, "") for r in records)]


def _as_float(v) -> float:
    if v is None or v == "":
        return math.nan
    if isinstance(v, bool):
        raise ValueError(f"{v!r} is not a number")
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(str(v).strip())
    except ValueError:
        raise ValueError(f"{v!r} is not a number") from None


def numbers(records: Sequence[Mapping], column: str):
    """Column ``column`` as a float numpy array (NaN where missing); ValueError names a non-number."""
    import numpy as np

    values = [r.get(column) for r in records]
    if {type(v) for v in values} <= {int, float, type(None)}:     # the common case, in one call
        return np.array(values, dtype=float)
    out = np.empty(len(records))
    for i, r in enumerate(records):
        try:
            out[i] = _as_float(r.get(column))
        except ValueError:
            raise ValueError(f"column {column!r} = {r.get(column)!r} is not a number "
                             f"(study {r.get('study')!r})") from None
    return out


def texts(records: Sequence[Mapping], column: str, default: str = "") -> list:
    """Column ``column`` as strings (``default`` where missing)."""
    return [default if r.get(column) is None else str(r.get(column)) for r in records]


def select(records: Iterable[Mapping], column: str, values) -> list:
    """Records whose ``column`` is in ``values``."""
    values = set(values)
    return [r for r in records if r.get(column) in values]
