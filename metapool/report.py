"""Markdown tables and the self-contained HTML report, rendered from stored results only.

Everything shown comes from the :class:`~metapool.analysis.OutcomeAnalysis` records (with their
:class:`~metapool.reproduce.TargetCheck`) and the figures drawn from them: nothing here fits a
model, so a number in the report is the number in ``results/pooled/{outcome}.json``, in
``summary.csv`` and in the figures.

The report reads top-down as a reviewer expects: the published estimates and what the public data
give (one screen), the main results, one section per outcome, then methods, data provenance and
references; a navigation bar links every section and outcome.  It fits a 1280 px window (wide
tables scroll inside themselves; a confidence interval never breaks across lines) and prints
cleanly.  Presentation rules: a single-study outcome is shown compactly, without heterogeneity
statistics (``k = 1``); a p-value always names its null hypothesis, and single-arm proportions get
none unless the config names a reference proportion (:func:`metapool.tables.null_test`).

Validated against
-----------------
Nothing is computed here; ``tests/test_report.py`` checks that the report shows the stored
numbers, escapes data text and links every source, and ``tests/test_report_browser.py`` opens it
in Chromium.
"""
from __future__ import annotations

import base64
import html
import math
import platform
import re
from pathlib import Path
from typing import Mapping, Sequence

from .registry import ANALYSES, FIGURE_TITLES, MEASURES, METHODS, TESTS
from .reproduce import STATUS_WORDS, STATUSES, distance_text, headline
from .results import NotRun
from .tables import null_test, to_markdown

__all__ = ["render_html", "summary_markdown", "reproduction_markdown", "REPRODUCTION_COLUMNS",
           "software_versions", "fmt_value", "fmt_ci", "REFERENCES"]

REPRODUCTION_COLUMNS = ("target_id", "paper", "outcome", "subgroup", "published_estimate", "published_ci_lb",
                        "published_ci_ub", "computed_estimate", "computed_ci_lb", "computed_ci_ub", "model",
                        "studies", "k", "evidence_statuses", "difference_units", "status", "single_study",
                        "duplicate_of", "reason", "missing")
_URL = re.compile(r"https?://[^\s<>\"';,)]+[^\s<>\"';,.)]")
MINUS, DASH = "\u2212", "\u2013"


# --------------------------------------------------------------------------- numbers as text
def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _family(measure: str) -> str:
    return MEASURES[measure].family if measure in MEASURES else "difference"


def fmt_value(x, measure: str = "", digits: int | None = None) -> str:
    """A reporting-scale value as printed: proportions in % (1 decimal), ratios and differences with
    2 decimals (``digits`` overrides), a typographic minus; '–' when missing."""
    x = _num(x)
    if not math.isfinite(x):
        return DASH
    if _family(measure) == "proportion":
        d = 1 if digits is None else digits
        return f"{100 * x:.{d}f}%"
    d = 2 if digits is None else digits
    return f"{x:.{d}f}".replace("-", MINUS)


def fmt_ci(est, lb, ub, measure: str = "", digits: int | None = None, html_span: bool = True) -> str:
    """``54.8% (37.3% to 72.4%)``.  In HTML the interval never breaks across lines (``ci-i``); in
    narrow table columns the line may break between the estimate and its interval."""
    text = fmt_value(est, measure, digits)
    interval = ""
    if math.isfinite(_num(lb)) and math.isfinite(_num(ub)):
        interval = f"({fmt_value(lb, measure, digits)} to {fmt_value(ub, measure, digits)})"
    if not html_span:
        return f"{text} {interval}".strip()
    inner = html.escape(text) + (f' <span class="ci-i">{html.escape(interval)}</span>' if interval else "")
    return f'<span class="ci">{inner}</span>'


def fmt_p(p) -> str:
    p = _num(p)
    if not math.isfinite(p):
        return DASH
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def p_text(p) -> str:
    """``p = 0.061`` or ``p < 0.001``."""
    s = fmt_p(p)
    return s if s == DASH else (f"p {s[0]} {s[1:]}" if s.startswith("<") else f"p = {s}")


def model_name(fit) -> str:
    """``FE, logit`` / ``REML, raw proportion``: the model and the scale it pools on."""
    m = MEASURES.get(fit.measure)
    return f"{fit.method}, {m.analysis_label}" if m else fit.method


def _tau2(x) -> str:
    from .plots.style import fmt_tau2

    return DASH if not math.isfinite(_num(x)) else fmt_tau2(x)


def _e(x) -> str:
    """Escaped text (None -> '')."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return html.escape(str(x))


def _linked(text) -> str:
    """Escaped text with every URL turned into a link."""
    s = "" if text is None else str(text)
    out, last = [], 0
    for m in _URL.finditer(s):
        out.append(html.escape(s[last:m.start()]))
        url = m.group(0)
        out.append(f'<a href="{html.escape(url, quote=True)}" rel="noopener">{html.escape(url)}</a>')
        last = m.end()
    out.append(html.escape(s[last:]))
    return "".join(out)


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", s)


# --------------------------------------------------------------------------- Markdown
def summary_markdown(rows: Sequence[Mapping]) -> str:
    """``results/summary.md``: one row per outcome x model, reporting scale, heterogeneity '–' for k = 1."""
    def ci(_, r):
        return fmt_ci(r["estimate"], r["ci_lb"], r["ci_ub"], r["measure"], html_span=False)

    def pi(_, r):
        if not math.isfinite(_num(r["pi_lb"])):
            return DASH
        return f"{fmt_value(r['pi_lb'], r['measure'])} to {fmt_value(r['pi_ub'], r['measure'])}"

    def het(col, fmt):
        return lambda x, r: DASH if r["k"] == 1 or not math.isfinite(_num(x)) else fmt(x)

    def test(_, r):
        if not math.isfinite(_num(r["pval"])):
            return DASH
        null = r["null"]
        shown = fmt_value(null, r["measure"]) if _family(r["measure"]) == "proportion" else f"{_num(null):g}"
        return f"{p_text(r['pval'])} (vs {shown})"

    cols = ["label", "method", "k", "n", "estimate", "pi_lb", "pval", "tau2", "I2", "Q_pval"]
    shown = [{**r, "estimate": r["estimate"]} for r in rows]
    table = to_markdown(shown, cols, formats={
        "estimate": ci, "pi_lb": pi, "pval": test, "tau2": het("tau2", _tau2),
        "I2": het("I2", lambda x: f"{_num(x):.0f}%"), "Q_pval": het("Q_pval", fmt_p),
        "n": lambda x, r: DASH if not math.isfinite(_num(x)) else f"{_num(x):.0f}"})
    table = table.replace("| label | method | k | n | estimate | pi_lb | pval | tau2 | I2 | Q_pval |",
                          "| outcome | model | k | N | estimate (95% CI) | 95% prediction interval | test of "
                          "no effect | tau² | I² | p (Q) |", 1)
    return ("# Summary of pooled estimates\n\nReporting scale: proportions in %, ratios back-transformed. "
            "Heterogeneity is not defined for one study (k = 1: shown as –). A p-value names its null "
            "value; single-arm proportions have none unless a reference proportion is configured. "
            "All columns (analysis scale, CIs of tau² and I²): summary.csv.\n\n" + table)


def _headline_text(checks) -> str:
    h = headline(checks)
    c, single = h["counts"], h["single_study"]
    parts = []
    for s in STATUSES:
        if c[s]:
            extra = f" ({single[s]} from a single study)" if single[s] and s in ("reproduced", "close",
                                                                                  "differs") else ""
            parts.append(f"{c[s]} {STATUS_WORDS[s]}{extra}")
    dup = f"; {h['duplicates']} more rows repeat one of these numbers" if h["duplicates"] else ""
    return (f"{h['distinct']} distinct published numbers and statements: " + ", ".join(parts) + dup + ".")


def reproduction_markdown(checks) -> str:
    """``results/reproduction.md``: the headline, then one row per target."""
    rows = []
    for c in checks:
        m = c.measure or ""
        rows.append({"target": c.target_id, "outcome": c.outcome + (f" [{c.subgroup}]" if c.subgroup else ""),
                     "published": fmt_ci(c.published_estimate, c.published_ci_lb, c.published_ci_ub,
                                         m or _guess_measure(c), digits=_pub_digits(c, m or _guess_measure(c)),
                                         html_span=False)
                     if math.isfinite(c.published_estimate) else "no number",
                     "computed": fmt_ci(c.computed_estimate, c.computed_ci_lb, c.computed_ci_ub, m,
                                        digits=_pub_digits(c, m, extra=1), html_span=False)
                     if math.isfinite(c.computed_estimate) else DASH,
                     "model": c.model_label() or DASH,
                     "status": STATUS_WORDS[c.status] + (" (k = 1)" if c.single_study else "")
                     + (f"; repeats {c.duplicate_of}" if c.duplicate_of else ""),
                     "reason": c.reason, "missing": c.missing})
    return ("# Reproduction of published pooled estimates\n\n" + _headline_text(checks) + "\n\n"
            "Statuses: *reproduced* = every printed number matches at the published rounding using only "
            "reported, derived or secondary numbers; *reproduced only with inferred numbers* = matches only "
            "when an inferred number is included (a consistency check, not an independent reproduction); "
            "*close* = within 2 units of the last printed digit (proportions: 1 percentage point); "
            "*differs* = further away; *no public data*; *no number printed*. (k = 1) marks a comparison "
            "that rests on a single study. The audit of each target: results/audit/<target>.json. "
            "Columns for computers: reproduction.csv.\n\n"
            + to_markdown(rows, ["target", "outcome", "published", "computed", "model", "status", "reason",
                                 "missing"]))


def _guess_measure(c) -> str:
    return "PR" if c.published_estimate is not None and 0 < _num(c.published_estimate) < 1 and \
        str(c.target_id).lower().endswith(("remission", "isr", "fever", "sri4", "sae")) else ""


# --------------------------------------------------------------------------- HTML pieces
def software_versions() -> dict:
    """Versions of Python and the packages that produce the numbers and figures."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("metapool", "numpy", "scipy", "matplotlib", "snakemake"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


_CSS = """
*{box-sizing:border-box}
html{scroll-padding-top:3.4em}
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1d1d1d;line-height:1.45;
margin:0;font-size:15px;background:#fff}
main{max-width:1180px;margin:0 auto;padding:0 1.2em 3em}
nav.top{position:sticky;top:0;z-index:10;background:#1f4e79;color:#fff;font-size:.9em}
nav.top .bar{max-width:1180px;margin:0 auto;padding:.45em 1.2em;display:flex;flex-wrap:wrap;gap:.3em 1.1em;
align-items:center}
nav.top a{color:#fff;text-decoration:none}nav.top a:hover{text-decoration:underline}
nav.top details{position:relative}nav.top summary{cursor:pointer;list-style:none;color:#fff}
nav.top summary::-webkit-details-marker{display:none}
nav.top summary::after{content:" \\25BE"}
nav.top .menu{position:absolute;top:1.8em;left:0;background:#fff;color:#1d1d1d;border:1px solid #ccc;
box-shadow:0 4px 12px rgba(0,0,0,.15);padding:.5em 1em;width:min(560px,92vw);max-height:70vh;overflow:auto}
nav.top .menu a{color:#1f4e79;display:block;padding:.1em 0}
h1{font-size:1.6em;margin:.8em 0 .2em}h2{font-size:1.3em;border-bottom:2px solid #dde3ea;padding-bottom:.2em;
margin-top:2.2em}h3{font-size:1.1em;margin:1.8em 0 .4em}h4{font-size:1em;margin:1.2em 0 .3em}
a.up{font-size:.8em;font-weight:normal;margin-left:.6em;color:#1f4e79;text-decoration:none}
.lead{font-size:1.02em}.note{color:#555;font-size:.9em}
.scroll{overflow-x:auto;max-width:100%;margin:.6em 0}
table{border-collapse:collapse;font-size:.88em;margin:0}
table.fixed{table-layout:fixed;width:100%}table.fixed td{overflow-wrap:anywhere}
table.fixed .ci{white-space:normal}
th,td{border:1px solid #d3d7dc;padding:.3em .5em;vertical-align:top;text-align:left}
th{background:#f2f4f6;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.wide{min-width:18em;max-width:34em}td.src{min-width:16em;max-width:30em;overflow-wrap:anywhere}
.ci{white-space:nowrap;font-variant-numeric:tabular-nums}.ci-i{white-space:nowrap}
.badge{display:inline-block;padding:.05em .45em;border-radius:.8em;font-size:.85em}
ul.targets{padding-left:1.2em}ul.targets li{margin:.5em 0}
.st-reproduced{background:#cdeccd}.st-reproduced_with_inferred{background:#e3edc0}
.st-close{background:#fbecb5}.st-differs{background:#f6d0cf}
.st-no_public_data,.st-no_number_printed,.st-not_analysed{background:#e6e6e6}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.85em}
details{margin:.4em 0}details>summary{cursor:pointer;color:#1f4e79}
section.outcome{border-top:1px solid #e5e8eb}
section.single p{margin:.3em 0}
ul.compact{margin:.3em 0;padding-left:1.3em}
@media print{nav.top,a.up{display:none}main{max-width:none;padding:0}
.scroll{overflow:visible}table{font-size:8.5pt}section.outcome{break-inside:avoid-page}
details{display:block}details>summary{display:none}details>*{display:block}
a{color:inherit;text-decoration:none}figure{break-inside:avoid}}
"""


def _table(header: Sequence[str], rows: Sequence[Sequence], classes: Sequence[str] | None = None) -> str:
    """An HTML table inside a horizontally scrolling box; cells are given as HTML."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for r in rows:
        cells = []
        for j, v in enumerate(r):
            cls = f' class="{classes[j]}"' if classes and classes[j] else ""
            cells.append(f"<td{cls}>{v}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


REPORT_IMAGE_WIDTH = 1100
"""Widest embedded figure in pixels (the page is 1180 px wide); larger PNGs are scaled down once,
so the report stays small (under 2 MB for the bundled analysis)."""


def _png_for_report(path: Path) -> bytes:
    """The figure's PNG, scaled to at most :data:`REPORT_IMAGE_WIDTH` pixels wide, 256 colours."""
    import io

    from PIL import Image

    with Image.open(path) as im:
        if im.width <= REPORT_IMAGE_WIDTH:
            return path.read_bytes()
        h = round(im.height * REPORT_IMAGE_WIDTH / im.width)
        small = im.convert("RGB").resize((REPORT_IMAGE_WIDTH, h), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        small.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(out, format="PNG")
        return out.getvalue()


def _img(path: Path, alt: str, caption: str = "") -> str:
    """A figure embedded once, as PNG (the SVG is in the figure folder)."""
    if not path.exists():
        return f'<p class="note">Figure not available: {_e(path.name)}</p>'
    b64 = base64.b64encode(_png_for_report(path)).decode("ascii")
    cap = caption or alt
    return (f'<figure><img alt="{html.escape(alt, quote=True)}" '
            f'src="data:image/png;base64,{b64}"><figcaption>{_e(cap)} '
            f'(results/figures/{_e(path.parent.name)}/{_e(path.stem)}.png, .svg)</figcaption></figure>')


def _badge(status: str, single: bool = False) -> str:
    text = STATUS_WORDS[status] + (" (k = 1)" if single else "")
    return f'<span class="badge st-{status}">{html.escape(text)}</span>'


def _paper_short(paper: str) -> str:
    """``Su QY, Luo J, ... Zhang SX. Immun Inflamm Dis 2024;12(1):e1165 (...)`` -> ``Su QY et al.,
    Immun Inflamm Dis 2024``."""
    if not paper:
        return ""
    authors, _, rest = paper.partition(". ")
    first = authors.split(",")[0].strip()
    etal = " et al." if "," in authors else ""
    m = re.match(r"\s*([A-Z][A-Za-z .&-]*?)\s+((?:19|20)\d\d)\b", rest)
    if m and len(first) > 30:                 # no author list: a title; name the journal
        return f"{m.group(1).strip()} {m.group(2)}"
    if m:
        return f"{first}{etal}, {m.group(1).strip()} {m.group(2)}"
    m = re.search(r"((?:19|20)\d\d)", paper)
    return f"{first}{etal}" + (f" {m.group(1)}" if m else "")


# --------------------------------------------------------------------------- sections
def _short_label(label: str) -> str:
    """An outcome label without its parenthesised qualifiers (for the one-screen overview)."""
    return label.split(" (")[0]


def _published_section(checks, analyses_by_key) -> str:
    """One screen: every distinct printed number against the public data (one line each), the
    statements without a number in one paragraph, then the reasons and audits target by target."""
    rows, statements, details = [], [], []
    for c in checks:
        if c.duplicate_of:
            continue
        dups = [d.target_id for d in checks if d.duplicate_of == c.target_id]
        measure = c.measure or _guess_measure(c)
        if not math.isfinite(c.published_estimate):
            statements.append(c)
            continue
        out = c.outcome
        where = (f'<a href="#o-{_slug(out)}">{_e(_short_label(analyses_by_key[out].label))}</a>'
                 if out in analyses_by_key else "<span class='note'>no public data</span>")
        if c.subgroup:
            where += f" <span class='note'>[{_e(c.subgroup)}]</span>"
        name = (f'<a href="#t-{_slug(c.target_id)}">{_e(c.target_id)}</a> '
                f"<span class='note'>{_e(_paper_short(c.paper))}"
                + (f"; also {_e(', '.join(dups))}" if dups else "") + "</span>")
        pub = fmt_ci(c.published_estimate, c.published_ci_lb, c.published_ci_ub, measure,
                     digits=_pub_digits(c, measure))
        comp = (fmt_ci(c.computed_estimate, c.computed_ci_lb, c.computed_ci_ub, measure,
                       digits=_pub_digits(c, measure, extra=1))
                + f" <span class='note'>{_e(c.model_label())}</span>" if math.isfinite(c.computed_estimate) else DASH)
        rows.append([name, where, pub, comp, _badge(c.status, c.single_study)])
        details.append(c)
    head = "".join(f"<th>{h}</th>" for h in ("Published estimate", "Outcome", "Printed", "From the public data",
                                             "Verdict"))
    body = "".join("<tr>" + "".join(f"<td>{v}</td>" for v in r) + "</tr>" for r in rows)
    cols = "".join(f'<col style="width:{w}">' for w in ("23%", "22%", "16%", "25%", "14%"))
    out = (f'<div class="scroll"><table class="fixed"><colgroup>{cols}</colgroup><thead><tr>{head}</tr>'
           f"</thead><tbody>{body}</tbody></table></div>")
    if statements:
        items = "; ".join(f'<a href="#t-{_slug(c.target_id)}">{_e(c.target_id)}</a>' for c in statements)
        out += (f"<p class='note'>{len(statements)} published statements print no number, so there is nothing "
                f"to compute: {items}.</p>")
    why = []
    for c in details + statements:
        dups = [d.target_id for d in checks if d.duplicate_of == c.target_id]
        head_ = f"{c.target_id}" + (f" (also {', '.join(dups)})" if dups else "")
        why.append(f'<li id="t-{_slug(c.target_id)}"><b>{_e(head_)}</b> {_badge(c.status, c.single_study)} '
                   f"<span class='note'>{_e(_paper_short(c.paper))}</span><br>{_linked(c.reason)}"
                   + (f"<br><span class='note'>Not public: {_linked(c.missing)}</span>" if c.missing else "")
                   + _audit_details(c) + "</li>")
    out += ("<details><summary>Why each verdict, and how each number could have been computed</summary>"
            "<ul class='targets'>" + "".join(why) + "</ul></details>")
    return out


def _pub_digits(c, measure, extra=0):
    d = _num(c.decimals)
    if not math.isfinite(d):
        return None
    d = int(d)
    if _family(measure) == "proportion":
        return max(d - 2, 0) + extra
    return d + extra


def _audit_details(c) -> str:
    """'How could this number have been computed?': the audit's findings in a few lines."""
    a = c.audit
    if not a:
        return ""
    items = []
    scales = a.get("ci_scales") or []
    checks = a.get("scale_checks") or []
    if checks:
        examined = [s.get("scale") for s in checks if s.get("scale")]
        items.append(f"CI symmetric on: {', '.join(scales) or 'none of the scales'}"
                     + (f" (examined: {', '.join(examined)})" if examined else ""))
    for scale, v in (a.get("implied_se") or {}).items():
        if isinstance(v, Mapping) and v.get("se") is not None:
            items.append(f"implied SE on the {scale} scale: {_num(v['se']):.4g}")
    for scale, v in (a.get("implied_n") or {}).items():
        if isinstance(v, Mapping) and v.get("n") is not None:
            lo, hi = _num(v.get("lo")), _num(v.get("hi"))
            rng = f" ({lo:.0f}{DASH}{hi:.0f} within the rounding)" if math.isfinite(lo) and math.isfinite(hi) else ""
            items.append(f"implied number of patients ({scale}): {_num(v['n']):.0f}{rng}")
    pc = a.get("p_check")
    if isinstance(pc, Mapping) and pc.get("summary"):
        items.append(str(pc["summary"]))
    n_rep = int(a.get("n_reproducing") or 0)
    if n_rep:
        best = (a.get("reproducing") or [{}])[0]
        items.append(f"{n_rep} model/study combinations reproduce the printed numbers; best: "
                     f"{best.get('method')} {best.get('measure')} ({best.get('test')}) of "
                     f"{len(best.get('studies') or [])} studies")
    elif a.get("nearest"):
        nr = a["nearest"]
        items.append(f"no model reproduces it; nearest: {nr.get('method')} {nr.get('measure')} "
                     f"({nr.get('test')}), "
                     f"{distance_text(nr.get('distance'), c.published_estimate, c.decimals, nr.get('measure') or '')}")
    miss = a.get("missing")
    if isinstance(miss, Mapping) and miss.get("summary"):
        items.append(f"what the non-public studies must contain: {miss['summary']}")
    if a.get("evaluated"):
        items.append(f"{int(a['evaluated']):,} model x study combinations evaluated")
    if not items:
        return ""
    lis = "".join(f"<li>{_e(i)}</li>" for i in items)
    return (f"<details><summary>How could this number have been computed?</summary>"
            f"<ul class='compact note'>{lis}</ul></details>")


def _main_results(analyses) -> str:
    any_sens = any(_sens(a) is not None for a in analyses)
    rows = []
    for a in analyses:
        f = a.primary
        rep = f.reporting()
        n = _total_n(f)
        null, stat, pval = _null(a, f)
        test = DASH if not math.isfinite(_num(pval)) else f"{p_text(pval)} (vs {_null_text(null, f.measure)})"
        row = [f'<a href="#o-{_slug(a.outcome)}">{_e(a.label)}</a>', str(f.k), n, _e(model_name(f)),
               fmt_ci(rep["estimate"], rep["ci_lb"], rep["ci_ub"], f.measure),
               DASH if f.k == 1 else f"{_num(f.I2):.0f}%", test]
        if any_sens:
            s = _sens(a)
            sf = None if s is None else (s.fit(f.method) or (s.fits[0] if s.fits else None))
            row.append(DASH if sf is None else
                       fmt_ci(*(sf.reporting()[k] for k in ("estimate", "ci_lb", "ci_ub")), sf.measure)
                       + f" <span class='note'>({_e(model_name(sf))}, k = {sf.k})</span>")
        rows.append(row)
    header = ["Outcome", "k", "N", "Model", "Estimate (95% CI)", "I²", "Test of no effect"]
    classes = [None, "num", "num", None, "num", "num", "num"]
    if any_sens:
        header.append("Including inferred numbers")
        classes.append("num")
    return _table(header, rows, classes)


def _total_n(f) -> str:
    if f.ni is None:
        return DASH
    vals = [float(x) for x in f.ni if math.isfinite(float(x))]
    return f"{sum(vals):.0f}" if vals else DASH


def _null(a, f):
    refs = {t.method: t for t in a.reference_tests}
    if f.method in refs:
        t = refs[f.method]
        return t.null, t.stat, t.pval
    return null_test(f)


def _null_text(null, measure) -> str:
    if _family(measure) == "proportion":
        return fmt_value(null, measure)
    return f"{measure} = {_num(null):g}"


def _sens(a):
    s = a.inferred_sensitivity
    return None if s is None or isinstance(s, NotRun) else s


def _data_text(a, row: Mapping) -> str:
    """The study's raw numbers in words: ``9/29``, ``16/29 vs 9/30``, ``18.7 (14.1) -> 78.6 (44.7), n = 26``."""
    def g(c):
        v = _num(row.get(c))
        return None if not math.isfinite(v) else f"{v:g}"
    if g("events") and g("total"):
        return f"{g('events')}/{g('total')}"
    if all(g(c) for c in ("events_treat", "total_treat", "events_ctrl", "total_ctrl")):
        return f"{g('events_treat')}/{g('total_treat')} vs {g('events_ctrl')}/{g('total_ctrl')}"
    if all(g(c) for c in ("mean_pre", "sd_pre", "mean_post", "sd_post", "n")):
        return (f"{_num(row['mean_pre']):.3g} ({_num(row['sd_pre']):.3g}) \u2192 {_num(row['mean_post']):.3g} "
                f"({_num(row['sd_post']):.3g}), n = {g('n')}")
    if all(g(c) for c in ("mean_treat", "sd_treat", "n_treat", "mean_ctrl", "sd_ctrl", "n_ctrl")):
        return (f"{_num(row['mean_treat']):.3g} ({_num(row['sd_treat']):.3g}), n = {g('n_treat')} vs "
                f"{_num(row['mean_ctrl']):.3g} ({_num(row['sd_ctrl']):.3g}), n = {g('n_ctrl')}")
    if g("yi"):
        return f"yi = {g('yi')}"
    return ""


def _lead(a) -> str:
    """The outcome's opening sentence, generated from its data (never a hand-written note)."""
    es, f = a.effects, a.primary
    parts = [f"{a.label_of(s)} {_data_text(a, r)}".strip() for s, r in zip(es.study, es.data)]
    rep = f.reporting()
    scale = MEASURES[es.measure].analysis_label if es.measure in MEASURES else es.measure
    who = "; ".join(parts)
    if es.k == 1:
        return (f"One study: {who}. Estimate {fmt_ci(rep['estimate'], rep['ci_lb'], rep['ci_ub'], f.measure)} "
                f"({html.escape(f.method)}, {html.escape(scale)} scale, back-transformed). No pooling, "
                f"heterogeneity or further analyses with k = 1.")
    n = _total_n(f)
    return (f"{es.k} studies{'' if n == DASH else f', {n} patients'}: {html.escape(who)}. Primary model "
            f"{html.escape(METHODS[f.method].description)}: "
            f"{fmt_ci(rep['estimate'], rep['ci_lb'], rep['ci_ub'], f.measure)}"
            + ("" if not f.is_random else f", I\u00b2 = {_num(f.I2):.0f}%") + ".")


def _models_table(a, fits=None) -> str:
    fits = a.fits if fits is None else fits
    rows = []
    for f in fits:
        rep = f.reporting()
        null, stat, pval = _null(a, f)
        pi = (DASH if not (f.is_random and f.k > 1 and math.isfinite(rep["pi_lb"])) else
              f'<span class="ci">{html.escape(fmt_value(rep["pi_lb"], f.measure))} to '
              f'{html.escape(fmt_value(rep["pi_ub"], f.measure))}</span>')
        one = f.k == 1
        rows.append([html.escape(f"{f.method}: {METHODS[f.method].description}"
                                 + (", " + TESTS[f.test] if f.test != "z" else "")),
                     str(f.k), fmt_ci(rep["estimate"], rep["ci_lb"], rep["ci_ub"], f.measure), pi,
                     DASH if not math.isfinite(_num(pval)) else
                     f"{fmt_p(pval)} <span class='note'>(vs {_e(_null_text(null, f.measure))})</span>",
                     DASH if one or not f.is_random else _e(_tau2(f.tau2)),
                     DASH if one or not math.isfinite(_num(f.I2)) else f"{_num(f.I2):.1f}%",
                     DASH if one or not math.isfinite(_num(f.Q)) else
                     f"{_num(f.Q):.2f} ({int(f.Q_df)}, {fmt_p(f.Q_pval)})"])
    return _table(["Model", "k", "Estimate (95% CI)", "95% prediction interval", "p (test of no effect)", "τ²",
                   "I²", "Q (df, p)"], rows, [None, "num", "num", "num", "num", "num", "num", "num"])


def _figure(a, figdir: Path | None, kind: str) -> str:
    if figdir is None or kind not in a.figures:
        return ""
    return _img(figdir / f"{kind}.png", f"{FIGURE_TITLES[kind]}: {a.label}")


def _further(a, figdir) -> str:
    """The further analyses that ran, each in a collapsed block, and one line for those that did not."""
    from .plots import _ok  # noqa: PLC0415 - the same test the figures use

    parts, skipped = [], []
    for name in ("subgroups", *ANALYSES):
        if name == "inferred_sensitivity":
            continue
        res = getattr(a, name, None)
        title = "Subgroups" if name == "subgroups" else ANALYSES[name].title
        if res is None:
            continue
        if not _ok(res):
            skipped.append(f"{title} ({res.reason})")
            continue
        body = _ANALYSIS_HTML[name](a, res, figdir)
        parts.append(f"<details><summary>{_e(title)}</summary>{body}</details>")
    if skipped:
        parts.append(f"<p class='note'>Not run: {_e('; '.join(skipped))}.</p>")
    return "".join(parts)


def _fit_table_rows(a, res, labels):
    rows = []
    for i, lab in enumerate(labels):
        rep = _back(a, res, i)
        rows.append([_e(lab), str(int(res.k[i])), fmt_ci(*rep, a.effects.measure),
                     DASH if int(res.k[i]) < 2 else f"{_num(res.I2[i]):.1f}%",
                     DASH if int(res.k[i]) < 2 else _e(_tau2(res.tau2[i]))])
    return rows


def _back(a, res, i):
    from .transforms import back_transform

    vals = [_num(res.estimate[i]), _num(res.ci_lb[i]), _num(res.ci_ub[i])]
    import numpy as np

    back = back_transform(a.effects.measure, np.array(vals), ni=a.effects.ni)
    return [float(x) for x in back]


def _loo_html(a, res, figdir):
    rows = _fit_table_rows(a, res, [f"omitting {a.label_of(s)}" for s in res.study])
    return (_table(["Refit", "k", "Estimate (95% CI)", "I²", "τ²"], rows, [None, "num", "num", "num", "num"])
            + _figure(a, figdir, "loo"))


def _cumulative_html(a, res, figdir):
    rows = _fit_table_rows(a, res, [f"+ {a.label_of(s)}" for s in res.study])
    note = f"<p class='note'>Studies added in order of {_e(res.order_by)}{' (decreasing)' if res.decreasing else ''}. " \
           + _e(" ".join(res.notes)) + "</p>"
    return note + _table(["Step", "k", "Estimate (95% CI)", "I²", "τ²"], rows,
                         [None, "num", "num", "num", "num"]) + _figure(a, figdir, "cumulative")


def _influence_html(a, res, figdir):
    rows = [[_e(a.label_of(s)), f"{_num(res.rstudent[i]):.2f}", f"{_num(res.dffits[i]):.2f}",
             f"{_num(res.cook_d[i]):.2f}", f"{_num(res.hat[i]):.2f}", "yes" if res.inf[i] else ""]
            for i, s in enumerate(res.study)]
    flagged = ", ".join(a.label_of(s) for s in res.influential) or "none"
    return (f"<p>Influential by metafor's cut-offs: {_e(flagged)}.</p>"
            + _table(["Study", "rstudent", "DFFITS", "Cook's D", "hat", "influential"], rows,
                     [None, "num", "num", "num", "num", None])
            + _figure(a, figdir, "influence") + _figure(a, figdir, "baujat"))


def _gosh_html(a, res, figdir):
    q = res.quantiles()
    import numpy as np

    from .transforms import back_transform

    est = back_transform(a.effects.measure, np.array(q["estimate"]), ni=a.effects.ni)
    kind = "all" if res.exact else f"a random sample (seed {res.seed}) of"
    return (f"<p>{_e(res.method)} fitted to {kind} {res.n_subsets:,} subsets of {len(res.study)} studies: "
            f"median estimate {fmt_value(est[3], a.effects.measure)}, central 95% of subsets "
            f"{fmt_value(est[1], a.effects.measure)} to {fmt_value(est[5], a.effects.measure)}; median I² "
            f"{_num(q['I2'][3]):.0f}%.</p>" + _figure(a, figdir, "gosh"))


def _small_study_html(a, res, figdir):
    items = []
    for name, title in (("egger", "Egger's regression test"), ("peters", "Peters' test"),
                        ("begg", "Begg's rank correlation"), ("trim_and_fill", "Trim-and-fill")):
        t = getattr(res, name)
        if t is None:
            continue
        if isinstance(t, NotRun):
            items.append(f"{title}: not run ({t.reason})")
        elif name == "begg":
            items.append(f"{title}: Kendall's tau = {_num(t.tau):.2f}, {p_text(t.pval)}")
        elif name == "trim_and_fill":
            rep = t.fit.reporting()
            items.append(f"{title} ({t.estimator}): {t.k0} studies imputed on the {t.side}; adjusted estimate "
                         f"{fmt_ci(rep['estimate'], rep['ci_lb'], rep['ci_ub'], t.fit.measure, html_span=False)}")
        else:
            items.append(f"{title}: slope {_num(t.slope):.2f}, {p_text(t.pval)}")
    note = f"<p class='note'>{_e(res.power_note)}.</p>" if res.power_note else ""
    return (note + "<ul class='compact'>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"
            + _figure(a, figdir, "funnel"))


def _metareg_html(a, res, figdir):
    reg = res.regression
    rows = [[_e(c["coef"]), f"{c['estimate']:.3f}".replace("-", MINUS),
             fmt_ci(c["estimate"], c["ci_lb"], c["ci_ub"], "GEN", digits=3), fmt_p(c["pval"])]
            for c in reg.coefficients()]
    test = "F" if reg.test == "knha" else "QM"
    return (f"<p>{_e(res.fit_method)} meta-regression on {_e(', '.join(res.moderators))} (k = {reg.k}): "
            f"{test} = {_num(reg.QM):.2f}, {p_text(reg.QM_pval)}; residual τ² = {_e(_tau2(reg.tau2))}; "
            f"R² = {_num(reg.R2):.0f}%.</p>"
            + (f"<p class='note'>Left out (moderator missing): {_e(', '.join(map(a.label_of, res.dropped)))}.</p>"
               if res.dropped else "")
            + _table(["Coefficient (analysis scale)", "Estimate", "95% CI", "p"], rows,
                     [None, "num", "num", "num"]) + _figure(a, figdir, "bubble"))


def _subgroups_html(a, res, figdir):
    rows = []
    for g in res.groups:
        rep = g.fit.reporting()
        rows.append([_e(g.name), str(g.fit.k), _e(", ".join(a.label_of(s) for s in g.study)),
                     fmt_ci(rep["estimate"], rep["ci_lb"], rep["ci_ub"], g.fit.measure),
                     DASH if g.fit.k < 2 else _e(_tau2(g.fit.tau2))])
    t = res.test
    stat = "F" if t.dist == "F" else "Q"
    out = (f"<p>Test for subgroup differences by {_e(res.by)} ({_e(res.method)}, separate τ²): {stat} = "
           f"{_num(t.Q_between):.2f}, df = {int(t.df)}, {p_text(t.pval)}.</p>")
    ct = res.common_tau2
    if ct is not None and not isinstance(ct, NotRun):
        out += (f"<p class='note'>With a common τ²: {stat} = {_num(ct.test.Q_between):.2f}, "
                f"{p_text(ct.test.pval)}.</p>")
    return out + _table(["Subgroup", "k", "Studies", "Estimate (95% CI)", "τ²"], rows,
                        [None, "num", None, "num", "num"])


_ANALYSIS_HTML = {"subgroups": _subgroups_html, "leave_one_out": _loo_html, "cumulative": _cumulative_html,
                  "influence": _influence_html, "gosh": _gosh_html, "small_study": _small_study_html,
                  "metareg": _metareg_html}


def _sensitivity_html(a) -> str:
    s = a.inferred_sensitivity
    if s is None or isinstance(s, NotRun):
        return ""
    added = "; ".join(f"{a.label_of(p['study'])} ({p.get('status')})" for p in s.added)
    sf = s.fit(a.primary.method) or (s.fits[0] if s.fits else None)
    line = ""
    if sf is not None:
        rep, prim = sf.reporting(), a.primary.reporting()
        line = (f"{_e(model_name(sf))}: {fmt_ci(rep['estimate'], rep['ci_lb'], rep['ci_ub'], sf.measure)} with them "
                f"(k = {sf.k}) vs {fmt_ci(prim['estimate'], prim['ci_lb'], prim['ci_ub'], a.primary.measure)} "
                f"without (k = {a.primary.k}).")
    return (f"<p><b>Including inferred numbers</b> ({_e(added)}): {line} Inferred numbers rest on an assumption "
            f"(see the data sources below); they are shown in the forest plot with open markers and a "
            f"second diamond.</p><details><summary>All models including inferred numbers</summary>"
            + _models_table(a, s.fits) + "</details>")


def _targets_html(a, checks) -> str:
    mine = [c for c in checks if c.outcome == a.outcome]
    if not mine:
        return ""
    items = []
    for c in mine:
        pub = fmt_ci(c.published_estimate, c.published_ci_lb, c.published_ci_ub, c.measure,
                     digits=_pub_digits(c, c.measure)) if math.isfinite(c.published_estimate) else "no number"
        items.append(f"<li><b>{_e(c.target_id)}</b> printed {pub}: {_badge(c.status, c.single_study)} "
                     f"{_e(c.reason)}</li>")
    return "<h4>Published estimates of this outcome</h4><ul class='compact'>" + "".join(items) + "</ul>"


def _sources_html(a) -> str:
    rows = []
    for p in a.provenance:
        data = next((r for r in a.effects.data if str(r.get("study")) == p["study"]), None)
        if data is None:
            s = _sens(a)
            data = next((r for r in (s.rows if s else ()) if str(r.get("study")) == p["study"]), {})
        status = _e(p.get("status", "")) + ("" if p.get("pooled", True) else " <span class='note'>(not in the primary pool)</span>")
        note = _linked(p.get("note", ""))
        if p.get("conversion"):
            note = f"<i>{_e(p['conversion'])}</i>. {note}"
        rows.append([_e(a.label_of(p["study"])), _e(_data_text(a, data)), status,
                     _linked(p.get("source", "")), _linked(p.get("quote", "")), note])
    return ("<details><summary>Data rows and sources</summary>"
            + _table(["Study", "Data", "Status", "Source", "Quote", "Note"], rows,
                     [None, None, None, "src", "wide", "wide"]) + "</details>")


def _notes_html(a) -> str:
    notes = list(a.notes) + [n for n in a.effects.notes]
    if not notes:
        return ""
    return ("<details><summary>Notes on this analysis</summary><ul class='compact note'>"
            + "".join(f"<li>{_e(n)}</li>" for n in dict.fromkeys(notes)) + "</ul></details>")


def _outcome_section(a, figdir: Path | None, checks) -> str:
    up = '<a class="up" href="#top" title="back to the top">\u2191 top</a>'
    head = f'<section class="outcome{" single" if a.k == 1 else ""}" id="o-{_slug(a.outcome)}">' \
           f'<h3>{_e(a.label)}{up}</h3>'
    parts = [head, f"<p class='lead'>{_lead(a)}</p>"]
    if a.k > 1:
        parts.append(_models_table(a))
    parts.append(_sensitivity_html(a))
    if a.k > 1 or _sens(a) is not None:
        parts.append(_figure(a, figdir, "forest"))
    elif figdir is not None:
        parts.append(f"<p class='note'>Forest plot: results/figures/{_e(a.outcome)}/forest.png.</p>")
    if a.k > 1:
        if "funnel" in a.figures and a.small_study is None:
            parts.append(_figure(a, figdir, "funnel"))
        parts.append(_further(a, figdir))
    parts.append(_targets_html(a, checks))
    parts.append(_notes_html(a))
    parts.append(_sources_html(a))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def methods_text(analyses, versions: Mapping) -> str:
    """Methods paragraphs (HTML) generated from the settings actually used."""
    specs = [a.spec for a in analyses]
    methods = sorted({f.method for a in analyses for f in a.fits}, key=list(METHODS).index)
    measures = sorted({a.effects.measure for a in analyses})
    tests = sorted({s.test for s in specs})
    pis = sorted({s.pi_method for s in specs})
    rs = sorted({s.r for s in specs if MEASURES[s.measure].kinds == ("prepost",)})
    r_given = any(s.r_given for s in specs)
    cc = specs[0].continuity if specs else {}
    conv = specs[0].conversion if specs else {}
    conv_text = {"luo2018": "Luo et al. (2018)", "wan2014": "Wan et al. (2014)"}.get(conv.get("mean"), "")
    sd_text = {"shi2020": "Shi et al. (2020) when both range and IQR are given, otherwise Wan et al. (2014)",
               "wan2014": "Wan et al. (2014)"}.get(conv.get("sd"), "")
    vers = ", ".join(f"{k} {v}" for k, v in versions.items())
    mlist = "; ".join(f"{m} = {METHODS[m].description}" for m in methods)
    return f"""
<p>Effect sizes were computed as in metafor's <code>escalc()</code> (measures: {_e(', '.join(
        f'{m} ({MEASURES[m].description})' for m in measures))}). Proportions were analysed on the scale named by
the measure and back-transformed for reporting. Zero cells received a continuity correction of
{_e(cc.get('add', 0.5))} (metafor's <code>to = "{_e(cc.get('to', 'only0'))}"</code>; double-zero studies
{'dropped' if cc.get('drop00') else 'kept'}). Pre/post standardised mean changes need the correlation between
the two measurements, which no study reports: r = {_e(', '.join(f'{r:g}' for r in rs) or '0.5')} was assumed
({'set in config.yaml' if r_given else "metapool's default"}). Means and SDs of studies that print a median with
a range and/or an interquartile range were estimated as R's meta package (version 6.5) does by default: the mean
by {conv_text}, the SD by {sd_text}.</p>
<p>Models: {_e(mlist)}. Confidence intervals: {_e(', '.join(TESTS[t] for t in tests))}. Prediction intervals:
{_e(', '.join(pis))} convention. Heterogeneity: Cochran's Q, I² and H² as in metafor (I² = τ²/(τ² + typical
within-study variance)), with Q-profile confidence intervals; none is reported for a single study. Tests of no
effect are against 0 for differences and 1 for ratios; single-arm proportions are not tested unless a reference
proportion is configured. Every statistic is checked against R metafor 3.8-1 reference values in the test suite.</p>
<p>Further analyses, run where the outcome has enough studies: leave-one-out and cumulative meta-analysis,
case-deletion influence diagnostics and the Baujat plot, GOSH, mixed-effects meta-regression, subgroup analyses
(separate and common τ²) and small-study effects (Egger, Peters, Begg, trim-and-fill; with fewer than 10 studies
these tests have little power: Sterne et al. 2011; Cochrane Handbook, chapter 13).</p>
<p>Evidence statuses: the primary pools use numbers that are reported, derived (back-calculated exactly from a
printed percentage) or secondary (printed by another source). Numbers that rest on an assumption (inferred) enter
a sensitivity analysis only. Each published estimate was audited: every model the data allow (measures, τ²
estimators, z and Knapp-Hartung inference, continuity corrections, Mantel-Haenszel, Peto, GLMM) over every subset
of the public studies was searched for one that reproduces the printed numbers at their rounding.</p>
<p>Software: {_e(vers)}.</p>"""


REFERENCES = [
    "Viechtbauer W. Conducting meta-analyses in R with the metafor package. J Stat Softw 2010;36(3):1-48.",
    "DerSimonian R, Laird N. Meta-analysis in clinical trials. Control Clin Trials 1986;7:177-188.",
    "Viechtbauer W. Bias and efficiency of meta-analytic variance estimators in the random-effects model. "
    "J Educ Behav Stat 2005;30:261-293.",
    "Viechtbauer W. Confidence intervals for the amount of heterogeneity in meta-analysis. Stat Med 2007;26:37-52.",
    "Higgins JPT, Thompson SG. Quantifying heterogeneity in a meta-analysis. Stat Med 2002;21:1539-1558.",
    "Hartung J, Knapp G. A refined method for the meta-analysis of controlled clinical trials with binary "
    "outcome. Stat Med 2001;20:3875-3889.",
    "Freeman MF, Tukey JW. Transformations related to the angular and the square root. Ann Math Stat "
    "1950;21:607-611; Miller JJ. The inverse of the Freeman-Tukey double arcsine transformation. Am Stat 1978;32:138.",
    "Mantel N, Haenszel W. J Natl Cancer Inst 1959;22:719-748; Yusuf S, Peto R, et al. Prog Cardiovasc Dis "
    "1985;27:335-371.",
    "Wan X, Wang W, Liu J, Tong T. Estimating the sample mean and standard deviation from the sample size, median, "
    "range and/or interquartile range. BMC Med Res Methodol 2014;14:135.",
    "Luo D, Wan X, Liu J, Tong T. Optimally estimating the sample mean from the sample size, median, mid-range, "
    "and/or mid-quartile range. Stat Methods Med Res 2018;27:1785-1805.",
    "Shi J, Luo D, Weng H, et al. Optimally estimating the sample standard deviation from the five-number "
    "summary. Res Synth Methods 2020;11:641-654.",
    "Balduzzi S, Rücker G, Schwarzer G. How to perform a meta-analysis with R: a practical tutorial. Evid Based "
    "Ment Health 2019;22:153-160 (R package meta).",
    "Egger M, Davey Smith G, Schneider M, Minder C. Bias in meta-analysis detected by a simple, graphical test. "
    "BMJ 1997;315:629-634.",
    "Peters JL, Sutton AJ, Jones DR, Abrams KR, Rushton L. Comparison of two methods to detect publication bias "
    "in meta-analysis. JAMA 2006;295:676-680.",
    "Begg CB, Mazumdar M. Operating characteristics of a rank correlation test for publication bias. Biometrics "
    "1994;50:1088-1101.",
    "Duval S, Tweedie R. Trim and fill. Biometrics 2000;56:455-463.",
    "Baujat B, Mahe C, Pignon JP, Hill C. A graphical method for exploring heterogeneity in meta-analyses. "
    "Stat Med 2002;21:2641-2652.",
    "Olkin I, Dahabreh IJ, Trikalinos TA. GOSH - a graphical display of study heterogeneity. Res Synth Methods "
    "2012;3:214-223.",
    "Viechtbauer W, Cheung MWL. Outlier and influence diagnostics for meta-analysis. Res Synth Methods "
    "2010;1:112-125.",
    "Stijnen T, Hamza TH, Ozdemir P. Random effects meta-analysis of event outcome in the framework of the "
    "generalized linear mixed model. Stat Med 2010;29:3046-3067.",
    "Higgins JPT, Thomas J, et al. (eds). Cochrane Handbook for Systematic Reviews of Interventions, version 6.4, "
    "2023: chapter 10 and 13.",
    "Sterne JAC, Sutton AJ, Ioannidis JPA, et al. Recommendations for examining and interpreting funnel plot "
    "asymmetry in meta-analyses of randomised controlled trials. BMJ 2011;343:d4002.",
]


def _studies_html(studies, used: set) -> str:
    rows = []
    from .analysis import study_labels

    labels = study_labels(studies, [s["study"] for s in studies])
    for s in studies:
        rows.append([_e(labels.get(s["study"], s["study"])) + f"<br><span class='note'>{_e(s['study'])}</span>",
                     "yes" if s["study"] in used else "", _e(s.get("design")), _e(s.get("disease")),
                     _e(s.get("dose_regimen")),
                     DASH if s.get("n") is None else f"{_num(s['n']):.0f}", _e(s.get("registration")),
                     _linked(s.get("source")), _linked(s.get("note"))])
    return _table(["Study", "Has data", "Design", "Disease", "Dose regimen", "n", "Registration", "Source", "Note"],
                  rows, [None, None, None, None, None, "num", None, "src", "wide"])


# --------------------------------------------------------------------------- the report
def render_html(analyses: Sequence, checks: Sequence, figures: Mapping, *, studies=(), title: str = "Meta-analysis report",
                skipped: Sequence = (), versions: Mapping | None = None) -> str:
    """The self-contained HTML report.

    Parameters
    ----------
    analyses : sequence of OutcomeAnalysis
    checks : sequence of TargetCheck
        Every published target, in the targets table's order.
    figures : mapping outcome -> folder of its figures (``results/figures/{outcome}``)
    studies : study-table records (provenance section)
    skipped : rows of outcomes listed in ``ignore_outcomes``
    """
    versions = versions or software_versions()
    by_key = {a.outcome: a for a in analyses}
    used = {s for a in analyses for s in a.effects.study}
    outcome_links = "".join(f'<a href="#o-{_slug(a.outcome)}">{_e(a.label)} <span class="note">(k = {a.k})</span></a>'
                            for a in analyses)
    nav = ('<nav class="top" aria-label="sections"><div class="bar"><a href="#top"><b>metapool report</b></a>'
           '<a href="#published">Published estimates</a><a href="#main">Main results</a>'
           f'<details><summary>Outcomes</summary><div class="menu">{outcome_links}</div></details>'
           '<a href="#methods">Methods</a><a href="#data">Data</a><a href="#references">References</a></div></nav>')
    up = '<a class="up" href="#top">\u2191 top</a>'
    n_studies = len(used)
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
           f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_e(title)}</title>"
           f"<style>{_CSS}</style></head><body>", nav, "<main id='top'>", f"<h1>{_e(title)}</h1>",
           f"<p class='lead'>{len(analyses)} outcomes from {n_studies} studies with public data. "
           f"{_e(_headline_text(checks))}</p>",
           "<p class='note'>Estimates on the reporting scale (proportions in %, ratios back-transformed), 95% "
           "confidence intervals. Every table and figure is drawn from the stored results "
           "(results/pooled/&lt;outcome&gt;.json); the same numbers are in summary.csv and reproduction.csv.</p>",
           f"<h2 id='published'>Published estimates: what the public data give{up}</h2>",
           "<p class='note'>Each published pooled number against what the bundled public data give. "
           "<i>Reproduced</i>: every printed number matched at its rounding with reported, derived or secondary "
           "numbers only; <i>reproduced only with inferred numbers</i>: matched only when an assumed number is "
           "included (a consistency check, not an independent reproduction); <i>close</i>: within 2 units of the "
           "last printed digit (proportions: 1 percentage point); <i>(k = 1)</i>: the comparison rests on one "
           "study. A number printed by two papers is shown once.</p>",
           _published_section(checks, by_key),
           f"<h2 id='main'>Main results{up}</h2>",
           "<p class='note'>The primary model of each outcome (the first random-effects model configured; the "
           "fixed-effect fit of the single study when k = 1). Heterogeneity (I²) is not defined for one study "
           "(–). Tests of no effect name their null value; single-arm proportions are not tested.</p>",
           _main_results(analyses),
           f"<h2 id='outcomes'>Results by outcome{up}</h2>"]
    out += [_outcome_section(a, Path(figures[a.outcome]) if a.outcome in figures else None, checks)
            for a in analyses]
    out += [f"<h2 id='methods'>Methods{up}</h2>", methods_text(analyses, versions),
            f"<h2 id='data'>Data provenance{up}</h2>",
            "<p class='note'>Every number in the bundled tables carries its source, the printed words it comes "
            "from and an evidence status; how the tables were built, overlapping cohorts and every inferred "
            "number: data/README.md and data/evidence/EVIDENCE.md in the repository.</p>",
            _studies_html(list(studies), used)]
    if skipped:
        items = "".join(f"<li>{_e(r.get('outcome'))}: {_e(r.get('study'))} ({_e(r.get('status'))}; "
                        f"{_e(r.get('table'))}, line {_e(r.get('line'))})</li>" for r in skipped)
        out.append(f"<details><summary>Rows not analysed ({len(skipped)}, outcomes listed under "
                   f"ignore_outcomes in config.yaml)</summary><ul class='compact note'>{items}</ul></details>")
    papers = list(dict.fromkeys(c.paper for c in checks if c.paper))
    out += [f"<h2 id='references'>References{up}</h2><h4>Published meta-analyses</h4><ol>"
            + "".join(f"<li>{_linked(p)}</li>" for p in papers) + "</ol><h4>Methods</h4><ol>"
            + "".join(f"<li>{_e(r)}</li>" for r in REFERENCES) + "</ol>", "</main></body></html>"]
    return "\n".join(out)
