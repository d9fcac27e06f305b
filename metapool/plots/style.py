"""Shared look, text measurement, number formatting and deterministic, atomic saving for figures.

Everything here is presentation: no statistics.  Figures are built as bare
:class:`matplotlib.figure.Figure` objects (no pyplot state machine), so nothing is left open
after saving, and are written with fixed metadata and a fixed SVG hash salt so that two runs
give byte-identical files.
"""
from __future__ import annotations

import math
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

FONT_FAMILY = "DejaVu Sans"
FONT_SIZE = 9.0            # body text, points
SMALL_SIZE = 8.0           # footers, notes
TITLE_SIZE = 11.0
ROW_H = 0.22               # height of one forest-plot row, inches
PNG_DPI = 150                # report-ready resolution (a 7 in figure is 1050 px wide)
MINUS = "\u2212"           # typographic minus sign

RC = {
    "font.family": "sans-serif",
    "font.sans-serif": [FONT_FAMILY],
    "font.size": FONT_SIZE,
    "axes.linewidth": 0.8,
    "xtick.labelsize": FONT_SIZE,
    "ytick.labelsize": FONT_SIZE,
    "axes.labelsize": FONT_SIZE,
    "svg.hashsalt": "metapool",
    "svg.fonttype": "path",
    "path.simplify": False,
    "axes.unicode_minus": True,
}

#: Measures whose reporting scale is a ratio (log axis, reference line at 1).
RATIO_MEASURES = frozenset({"RR", "OR", "PETO", "IRR", "ROM", "HR"})
#: Measures whose reporting scale is a proportion (shown in %, no reference line).
PROPORTION_MEASURES = frozenset({"PR", "PLO", "PAS", "PFT", "PLN"})

FILE_MODE = 0o644
"""Permissions of saved figures (as :mod:`metapool.io` gives every other result file)."""

_SVG_METADATA = {"Date": None, "Creator": "metapool", "Format": None, "Type": None}
_PNG_METADATA = {"Software": None}


def measure_family(measure: str) -> str:
    """``"ratio"``, ``"proportion"`` or ``"difference"`` (MD, SMD, RD, GEN, ...)."""
    m = str(measure).upper()
    if m in RATIO_MEASURES:
        return "ratio"
    if m in PROPORTION_MEASURES:
        return "proportion"
    return "difference"


def new_figure(width: float, height: float) -> Figure:
    """A bare Agg-backed figure (not registered with pyplot, so it cannot leak)."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


# ----------------------------------------------------------------------------- text measurement

_MEASURE_DPI = 600    # fine resolution, so glyph hinting does not distort the measured widths


@lru_cache(maxsize=1)
def _renderer() -> RendererAgg:
    return RendererAgg(10, 10, _MEASURE_DPI)


@lru_cache(maxsize=8192)
def text_width(text: str, size: float = FONT_SIZE, weight: str = "normal",
               style: str = "normal") -> float:
    """Width in inches of a one- or multi-line string rendered with the figure font."""
    if not text:
        return 0.0
    prop = FontProperties(family=FONT_FAMILY, size=size, weight=weight, style=style)
    with rc_context(RC):
        w = max(_renderer().get_text_width_height_descent(line, prop, ismath=False)[0]
                for line in str(text).split("\n"))
    return w / _MEASURE_DPI


def truncate(text: str, max_width: float, size: float = FONT_SIZE, weight: str = "normal",
             style: str = "normal") -> str:
    """Shorten ``text`` with a trailing ellipsis so it is at most ``max_width`` inches wide."""
    text = str(text)
    if text_width(text, size, weight, style) <= max_width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:                       # longest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        if text_width(text[:mid].rstrip() + "\u2026", size, weight, style) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "\u2026"


def wrap(text: str, max_width: float, size: float = SMALL_SIZE, style: str = "normal",
         weight: str = "normal") -> list:
    """Greedy word wrap by measured width; returns the lines."""
    lines, cur = [], ""
    for word in str(text).split():
        trial = f"{cur} {word}" if cur else word
        if cur and text_width(trial, size, weight, style) > max_width:
            lines.append(cur)
            cur = word
        else:
            cur = trial
    if cur:
        lines.append(cur)
    return [truncate(ln, max_width, size, weight, style) for ln in lines]


# ----------------------------------------------------------------------------- number formatting

def _minus(s: str) -> str:
    return s.replace("-", MINUS)


def fmt_num(x, digits: int = 2) -> str:
    """Fixed-point number with a typographic minus; ``NA`` when missing, ``∞`` when infinite."""
    if x is None:
        return "NA"
    x = float(x)
    if math.isnan(x):
        return "NA"
    if math.isinf(x):
        return ("" if x > 0 else MINUS) + "\u221e"
    s = f"{x:.{digits}f}"
    if float(s) == 0:
        s = s.lstrip("-")
    return _minus(s)


def fmt_raw(x) -> str:
    """A raw data value as entered (integers without decimals, others with up to 4 significant)."""
    if x is None:
        return ""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return ""
    if x == int(x) and abs(x) < 1e9:
        return _minus(str(int(x)))
    return _minus(f"{x:.4g}")


def fmt_ci(est, lb, ub, digits: int = 2) -> str:
    """``"est [lb, ub]"``."""
    return f"{fmt_num(est, digits)} [{fmt_num(lb, digits)}, {fmt_num(ub, digits)}]"


def fmt_p(p) -> str:
    """``"p = 0.023"`` or ``"p < 0.001"``."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "p = NA"
    p = float(p)
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def fmt_tau2(x) -> str:
    """tau² with four significant digits (it spans many orders of magnitude)."""
    if x is None or not np.isfinite(x):
        return "NA"
    if abs(x) < 1e-12:                  # boundary estimates (e.g. GLMM) land at ~1e-17, not 0
        return "0"
    return _minus(f"{x:.4g}") if abs(x) >= 1e-4 else _minus(f"{x:.2e}")


def parse_number(s: str) -> float:
    """Inverse of :func:`fmt_num` (for tests and round trips)."""
    s = s.strip().replace(MINUS, "-")
    if s in ("NA", ""):
        return math.nan
    if s.endswith("\u221e"):
        return -math.inf if s.startswith("-") else math.inf
    return float(s)


# ----------------------------------------------------------------------------- saving

def save_figure(fig: Figure, path_stem, formats=("png", "svg"), dpi: int = PNG_DPI) -> list:
    """Write ``fig`` as ``{path_stem}.{fmt}`` for each format, atomically and deterministically.

    Each file is first written to a temporary file in the target directory and then moved
    into place with :func:`os.replace` (after ``fsync``, with mode :data:`FILE_MODE`), so no
    half-written figure is ever visible.  SVG output uses a fixed hash salt and no date; PNG
    output carries no software/version chunk.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    stem = Path(path_stem)
    if stem.suffix.lower() in (".png", ".svg", ".pdf"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    with rc_context(RC):
        for fmt in formats:
            fmt = fmt.lower().lstrip(".")
            meta = {"svg": _SVG_METADATA, "png": _PNG_METADATA,
                    "pdf": {"CreationDate": None, "ModDate": None, "Producer": None}}.get(fmt)
            if meta is None:
                raise ValueError(f"unsupported figure format {fmt!r} (use png, svg or pdf)")
            target = stem.parent / f"{stem.name}.{fmt}"
            fd, tmp = tempfile.mkstemp(prefix=f".{stem.name}.", suffix=f".{fmt}.tmp",
                                       dir=stem.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fig.savefig(fh, format=fmt, dpi=dpi, metadata=dict(meta))
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp, FILE_MODE)       # mkstemp creates 0600; results are readable
                os.replace(tmp, target)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
            written.append(target)
    return written
