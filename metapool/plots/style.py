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


def truncate_middle(text: str, max_width: float, size: float = FONT_SIZE, weight: str = "normal",
                    style: str = "normal") -> str:
    """Shorten ``text`` in the middle, keeping its last word ("Featherstonehaugh-Ch\u2026 2019"), so
    that labels which differ only at the end (the year, a/b suffix) stay distinguishable."""
    text = str(text)
    if text_width(text, size, weight, style) <= max_width:
        return text
    head, sep, tail = text.rpartition(" ")
    if not sep or not head or text_width("\u2026 " + tail, size, weight, style) > 0.6 * max_width:
        return truncate(text, max_width, size, weight, style)
    lo, hi = 0, len(head)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if text_width(head[:mid].rstrip() + "\u2026 " + tail, size, weight, style) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return head[:lo].rstrip() + "\u2026 " + tail


def fill_words(words, fits, lines: list, cur: str = "") -> str:
    """Greedy fill: append ``words`` to the open line ``cur``, moving full lines (``fits(line)``
    False for the next word) to ``lines``; returns the line still open."""
    for word in words:
        trial = f"{cur} {word}" if cur else word
        if cur and not fits(trial):
            lines.append(cur)
            cur = word
        else:
            cur = trial
    return cur


def wrap(text: str, max_width: float, size: float = SMALL_SIZE, style: str = "normal",
         weight: str = "normal") -> list:
    """Greedy word wrap by measured width; returns the lines."""
    lines: list = []
    cur = fill_words(str(text).split(), lambda s: text_width(s, size, weight, style) <= max_width, lines)
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


# ----------------------------------------------------------------------------- axis ticks

def log_tick_label(v: float) -> str:
    """Label of a tick on a ratio axis: ``0.001``, ``0.5``, ``10``, ``1000``; powers of ten beyond
    1e-4 .. 1e5 as ``10⁻⁵``."""
    if 1e-4 <= v < 1e5:
        return f"{v:g}"
    e = int(round(math.log10(v)))
    sup = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")
    return "10" + str(e).translate(sup)


def ticks_fit(positions, labels, size: float = FONT_SIZE, min_gap: float = 0.08) -> bool:
    """Whether tick labels centred on ``positions`` (inches along the axis) leave at least
    ``min_gap`` inches between neighbours (widths measured with :func:`text_width`)."""
    half = [0.5 * text_width(lab, size) for lab in labels]
    return all(p1 - h1 >= p0 + h0 + min_gap
               for p0, h0, p1, h1 in zip(positions, half, positions[1:], half[1:]))


def log_ticks(lo: float, hi: float, width: float, size: float = FONT_SIZE, keep=(1.0,),
              max_ticks: int = 9) -> np.ndarray:
    """Ticks for a log axis from ``lo`` to ``hi`` (ratio units) that fit ``width`` inches.

    The densest of 1-2-5, 1-5, 1-3, powers of ten, every second, third ... power of ten whose
    labels (measured) do not touch; the values in ``keep`` (the null, 1) stay when in range.
    """
    a, b = math.log10(lo), math.log10(hi)
    if not (np.isfinite(a) and np.isfinite(b)) or b <= a:
        return np.array([])
    e0, e1 = math.floor(a) - 1, math.ceil(b) + 1

    def within(vals):
        vals = np.asarray(sorted(set(vals)), float)
        return vals[(vals >= lo * (1 - 1e-9)) & (vals <= hi * (1 + 1e-9))]

    sets = [within(m * 10.0 ** e for e in range(e0, e1 + 1) for m in mant)
            for mant in ((1, 2, 5), (1, 5), (1, 3), (1,))]
    for step in range(2, e1 - e0 + 2):
        sets.append(within([10.0 ** e for e in range(e0, e1 + 1) if e % step == 0] + list(keep)))
    for ticks in sets:
        if ticks.size > max_ticks:
            continue
        pos = (np.log10(ticks) - a) / (b - a) * width
        if ticks_fit(list(pos), [log_tick_label(t) for t in ticks], size):
            return ticks
    return within(keep)


def linear_ticks(lo: float, hi: float, width: float, labeller, size: float = FONT_SIZE,
                 nbins: int = 6, extend: bool = False, steps=(1, 2, 2.5, 5, 10)) -> np.ndarray:
    """``MaxNLocator`` ticks with the most bins (at most ``nbins``) whose labels, made by
    ``labeller``, fit an axis of ``width`` inches without touching.

    With ``extend`` the axis will run from the first to the last tick (the ticks may lie outside
    ``lo .. hi``); otherwise the axis is ``lo .. hi`` and only the ticks inside it are returned.
    """
    from matplotlib.ticker import MaxNLocator

    tol = 1e-9 * abs(hi - lo)
    ticks = np.array([lo, hi])
    for n in range(nbins, 0, -1):
        ticks = MaxNLocator(nbins=n, steps=list(steps)).tick_values(lo, hi)
        if extend:
            a, b = min(lo, ticks[0]), max(hi, ticks[-1])
        else:
            a, b = lo, hi
            ticks = ticks[(ticks >= lo - tol) & (ticks <= hi + tol)]
        pos = (ticks - a) / (b - a) * width if b > a else ticks * 0
        if ticks_fit(list(pos), [labeller(t) for t in ticks], size):
            return ticks
    return ticks


# ----------------------------------------------------------------------------- saving

def _palette_png(fig: Figure, dpi: int) -> bytes:
    """The figure as a 256-colour palette PNG: line art and text lose nothing visible, and the
    file is about a third of the size of the full-colour PNG (the report embeds these)."""
    import io

    from PIL import Image

    saved = fig.get_dpi()
    try:                                   # render once at ``dpi`` and take the pixels (no PNG round trip)
        fig.set_dpi(dpi)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        im = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    finally:
        fig.set_dpi(saved)
    out = io.BytesIO()
    im.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(out, format="PNG")
    return out.getvalue()


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
                    if fmt == "png":
                        fh.write(_palette_png(fig, dpi))
                    else:
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
