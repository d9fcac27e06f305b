"""Summary tables of fitted models: one row per model, as CSV (byte-stable) and Markdown.

:func:`summary_frame` turns :class:`~metapool.results.MetaResult` objects (or whole
:class:`~metapool.results.OutcomeAnalysis` objects) into the rows of ``results/summary.csv``
(columns :data:`SUMMARY_COLUMNS`, see DESIGN.md).  :func:`csv_text` / :func:`write_csv` write
any frame with fixed float formatting, so two runs on the same input give byte-identical
files, and neutralise text cells that a spreadsheet would run as a formula.
:func:`to_markdown` renders a frame as a GitHub-flavoured Markdown table without extra
dependencies.

Validated against
-----------------
Nothing is computed here: every number is copied from a ``MetaResult`` (validated against R
metafor 3.8-1 in ``tests/test_models.py`` and ``tests/test_counts.py``) or back-transformed by
:meth:`MetaResult.reporting`; ``tests/test_tables.py`` checks the copy field by field.
"""
from __future__ import annotations

import csv
import io
import math
import re
from typing import Iterable

import numpy as np
import pandas as pd

from .results import MetaResult, OutcomeAnalysis
from .transforms import scale_label

__all__ = ["SUMMARY_COLUMNS", "summary_frame", "summary_row", "csv_text", "write_csv",
           "to_markdown", "md_escape", "format_number", "neutralise"]

#: Columns of ``results/summary.csv``: estimate .. pi_ub on the reporting scale (back-transformed),
#: estimate_analysis .. pval on the analysis scale.
SUMMARY_COLUMNS = (
    "outcome", "label", "measure", "scale", "model", "method", "ci_method", "level", "k", "n",
    "estimate", "ci_lb", "ci_ub", "pi_lb", "pi_ub", "pi_method",
    "estimate_analysis", "se", "stat", "pval",
    "tau2", "tau2_ci_lb", "tau2_ci_ub", "I2", "I2_ci_lb", "I2_ci_ub", "H2", "Q", "Q_df", "Q_pval",
)
_INTEGER_COLUMNS = ("k", "n", "Q_df")
_CI_METHOD = {"z": "z", "knha": "hksj", "hksj": "hksj", "t": "t"}
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$|^\s*[+-]?inf\s*$", re.IGNORECASE)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _total_n(ni) -> float:
    if ni is None:
        return math.nan
    n = np.asarray(ni, dtype=float)
    n = n[np.isfinite(n)]
    return float(n.sum()) if n.size else math.nan


def summary_row(res: MetaResult, *, outcome: str = "", label: str = "") -> dict:
    """One ``summary.csv`` row (a dict keyed by :data:`SUMMARY_COLUMNS`) for one fitted model."""
    rep = res.reporting()
    row = {"outcome": outcome, "label": label, "measure": res.measure,
           "scale": scale_label(res.measure), "model": "random" if res.is_random else "fixed",
           "method": res.method, "ci_method": _CI_METHOD.get(res.test, res.test), "level": res.level,
           "k": res.k, "n": _total_n(res.ni), **rep,
           "pi_method": res.pi_method if res.is_random else "",
           "estimate_analysis": res.estimate}
    for name in SUMMARY_COLUMNS:
        if name not in row:
            row[name] = getattr(res, name)
    return {name: row[name] for name in SUMMARY_COLUMNS}


def _rows(results, outcome, label) -> Iterable[dict]:
    if isinstance(results, MetaResult):
        yield summary_row(results, outcome=outcome, label=label)
    elif isinstance(results, OutcomeAnalysis):
        for f in results.fits:
            yield summary_row(f, outcome=results.outcome, label=results.label)
    elif isinstance(results, dict):
        for value in results.values():
            yield from _rows(value, outcome, label)
    elif isinstance(results, Iterable) and not isinstance(results, (str, bytes)):
        for item in results:
            yield from _rows(item, outcome, label)
    else:
        raise TypeError("summary_frame needs MetaResult or OutcomeAnalysis objects (or a list/dict of "
                        f"them), not {type(results).__name__}")


def summary_frame(results, *, outcome: str = "", label: str = "") -> pd.DataFrame:
    """The ``results/summary.csv`` table: one row per fitted model.

    Parameters
    ----------
    results : MetaResult, OutcomeAnalysis, or a list/dict of them
        Fitted models.  An :class:`OutcomeAnalysis` contributes one row per fit and supplies
        its own ``outcome`` and ``label``.
    outcome, label : str
        Outcome key and label for bare :class:`MetaResult` objects.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SUMMARY_COLUMNS`.  ``estimate, ci_lb, ci_ub, pi_lb, pi_ub`` are on the
        reporting scale (named in ``scale``; :meth:`MetaResult.reporting`), the rest on the
        analysis scale.  ``model`` is ``fixed`` or ``random``; ``ci_method`` is ``z`` or
        ``hksj`` (Hartung-Knapp-Sidik-Jonkman); ``n`` is the total sample size (sum of the
        per-study n when known).  Quantities that do not apply are NaN.  ``k``, ``n`` and
        ``Q_df`` are nullable integers.
    """
    df = pd.DataFrame(list(_rows(results, outcome, label)), columns=list(SUMMARY_COLUMNS))
    for col in _INTEGER_COLUMNS:
        x = pd.to_numeric(df[col], errors="coerce").astype(float)
        finite = x[np.isfinite(x)]
        if (finite == np.round(finite)).all():
            df[col] = x.round().astype("Int64")
    return df


# ----------------------------------------------------------------------------- formatting

def format_number(x, digits: int = 12, *, fixed: bool = False) -> str:
    """Deterministic text of a number: '' for missing, integers without a decimal point.

    ``fixed=False`` uses ``digits`` significant digits (``%.{digits}g``, for CSV files);
    ``fixed=True`` uses ``digits`` decimals, switching to scientific notation for non-zero
    values that would round to zero (for Markdown tables).
    """
    if x is None or x is pd.NA or x is pd.NaT:
        return ""
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if math.isnan(x):
        return ""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if fixed:
        if x != 0 and abs(x) < 0.5 * 10.0 ** -digits:
            return f"{x:.{max(digits - 1, 1)}e}"
        text = f"{x:.{digits}f}"
        return "0" if float(text) == 0 and digits == 0 else text
    text = f"{x:.{digits}g}"
    return "0" if text == "-0" else text


def neutralise(text: str) -> str:
    """Prefix ``'`` to text that starts like a spreadsheet formula (=, +, -, @) and is no number."""
    if text.startswith(_FORMULA_START) and not _NUMBER.match(text):
        return "'" + text
    return text


def _cell(x, digits) -> str:
    if isinstance(x, str):
        return neutralise(x)
    if x is None or isinstance(x, (int, float, np.integer, np.floating, bool, np.bool_)) or x is pd.NA:
        return format_number(x, digits)
    return neutralise(str(x))


def csv_text(df: pd.DataFrame, digits: int = 12) -> str:
    """CSV text of ``df`` with fixed float formatting (``%.{digits}g``), '' for NaN, ``\\n`` line ends.

    Text cells starting with ``=``, ``+``, ``-``, ``@`` (or tab/CR) that are not numbers get a
    leading ``'`` so that spreadsheet programs do not evaluate them (CSV/formula injection).
    The same frame always gives the same bytes.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([neutralise(str(c)) for c in df.columns])
    for row in df.itertuples(index=False, name=None):
        writer.writerow([_cell(x, digits) for x in row])
    return buf.getvalue()


def write_csv(path, df: pd.DataFrame, digits: int = 12):
    """Write :func:`csv_text` of ``df`` to ``path`` atomically (see :mod:`metapool.io`)."""
    from .io import write_text

    return write_text(path, csv_text(df, digits))


_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|~&!#$]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def md_escape(text: str) -> str:
    """Text for one Markdown table cell: shown literally, never as markup or HTML.

    Backslash-escapes the characters that CommonMark/GitHub Markdown would read as markup or
    raw HTML (``\\ ` * [ ] < > | ~ & ! # $`` and ``_`` at a word boundary; ``_`` inside a word,
    as in ``ln_remission``, is literal already) and turns line breaks into spaces.  So a study
    named ``<script>alert(1)</script> | *x*`` stays one cell and reads as typed.
    """
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\r\n", " ").replace("\r", " ").replace("\n", " ")


_md_escape = md_escape


def to_markdown(df: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table of ``df`` (numbers right-aligned, ``digits`` decimals).

    Missing values are blank; integers are written without decimals; text is escaped with
    :func:`md_escape` (no cell can break the table or act as markup/HTML).
    """
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
               for c in df.columns]
    header = "| " + " | ".join(_md_escape(str(c)) for c in df.columns) + " |"
    rule = "|" + "|".join("---:" if num else ":---" for num in numeric) + "|"
    lines = [header, rule]
    for row in df.itertuples(index=False, name=None):
        cells = []
        for x in row:
            if isinstance(x, str):
                cells.append(_md_escape(x))
            elif x is None or x is pd.NA or isinstance(x, (int, float, np.integer, np.floating)):
                cells.append(format_number(x, digits, fixed=True))
            else:
                cells.append(_md_escape(str(x)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
