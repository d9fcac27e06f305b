"""Reproduction check of published pooled estimates, and the self-contained HTML report.

Reproduction statuses
---------------------
Each row of the targets table (``data/raw/published_targets.csv``) is compared with the value
the pipeline computes from the bundled data, with the measure, model and subgroup named in
the row, on the reporting scale.  Let *u* be one unit of the last printed digit
(``10**-decimals``).  For every printed number (estimate and each printed CI bound):

``reproduced``
    every printed number equals the computed one rounded to the printed digits
    (``|computed - published| <= u/2``);
``close``
    not reproduced, but every printed number is within ``2u``, or, for proportions, within
    one percentage point (``|diff| <= max(2u, 0.01)``);
``differs``
    a computed value exists but at least one printed number is further away;
``not reproducible``
    nothing to compare: the paper prints no number, the outcome or subgroup is not in the
    bundled data, or no study's numbers are public.

The reason column says why in words: the studies and evidence statuses that entered, whether
any number is inferred or converted, and the target row's own ``assumption`` / ``missing``.

Validated against
-----------------
The status logic is unit-tested with synthetic numbers in ``tests/test_report.py``; the
statistics it calls are validated against R metafor (see :mod:`metapool.models`).
"""
from __future__ import annotations

import base64
import html
import math
import platform
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from .results import MetaResult, OutcomeAnalysis

__all__ = ["STATUSES", "classify", "unit_of", "reproduction_table", "reproduction_markdown",
           "render_html", "software_versions", "PROPORTION_MEASURES"]

STATUSES = ("reproduced", "close", "differs", "not reproducible")
PROPORTION_MEASURES = frozenset({"PR", "PLO", "PAS", "PFT", "PLN"})
KNOWN_MEASURES = frozenset({"PR", "PLO", "PAS", "PFT", "RR", "OR", "RD", "MD", "SMD", "SMCR",
                            "SMCC", "GEN", "PETO"})
KNOWN_METHODS = frozenset({"FE", "EE", "DL", "REML", "ML", "PM", "HE", "SJ", "EB", "HS", "MH",
                           "PETO", "GLMM"})
BOUNDS = ("estimate", "ci_lb", "ci_ub")


def _num(x) -> float:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return math.nan
    return f


def _text(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return str(x).strip()


def unit_of(value, decimals=None) -> float:
    """One unit of the last printed digit: ``10**-decimals``, or read off ``value``'s digits."""
    d = _num(decimals)
    if math.isfinite(d):
        return 10.0 ** -int(d)
    s = repr(float(value)).split("e")[0]
    return 10.0 ** -(len(s.split(".")[1]) if "." in s else 0)


def classify(published: Mapping, computed: Mapping, decimals=None, measure: str = "") -> tuple:
    """Reproduction status of one target (see the module docstring for the rules).

    Parameters
    ----------
    published, computed : mapping
        ``estimate``, ``ci_lb``, ``ci_ub`` on the reporting scale; NaN/None where not printed
        (published) or not available (computed).
    decimals : int, optional
        Printed decimals of the published numbers (proportions as fractions: 54.8% is 0.548,
        3 decimals).  Read off the published estimate when missing.
    measure : str
        Effect measure; proportions (PR, PLO, PAS, PFT) get the 1-percentage-point tolerance.

    Returns
    -------
    (status, worst) : (str, float)
        ``status`` in :data:`STATUSES`; ``worst`` the largest ``|diff|`` in units of the last
        printed digit (NaN when not comparable).
    """
    pub = {k: _num(published.get(k)) for k in BOUNDS}
    com = {k: _num(computed.get(k)) for k in BOUNDS}
    printed = [k for k in BOUNDS if math.isfinite(pub[k])]
    if "estimate" not in printed or not math.isfinite(com["estimate"]):
        return "not reproducible", math.nan
    if any(not math.isfinite(com[k]) for k in printed):
        return "differs", math.inf
    u = unit_of(pub["estimate"], decimals)
    diffs = np.array([abs(com[k] - pub[k]) for k in printed])
    worst = float(diffs.max() / u)
    eps = 1e-9 * max(1.0, max(abs(pub[k]) for k in printed))
    if np.all(diffs <= u / 2 + eps):
        return "reproduced", worst
    tol = max(2 * u, 0.01 if str(measure).upper() in PROPORTION_MEASURES else 0.0)
    if np.all(diffs <= tol + eps):
        return "close", worst
    return "differs", worst


# --------------------------------------------------------------------------- targets
def _subgroup_studies(analysis: OutcomeAnalysis, name: str):
    sg = analysis.extras.get("subgroups") or {}
    for g in sg.get("groups", []):
        if str(g.get("name", "")).strip().lower() == name.strip().lower():
            return list(g.get("study", []))
    return None


def _status_counts(analysis: OutcomeAnalysis, studies) -> str:
    prov = [p for p in analysis.extras.get("provenance", []) if p.get("study") in set(studies)]
    counts: dict[str, int] = {}
    for p in prov:
        counts[p.get("status") or "unknown"] = counts.get(p.get("status") or "unknown", 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def _facts(analysis: OutcomeAnalysis, fit: MetaResult) -> list[str]:
    studies = list(fit.study)
    facts = [f"{fit.method} pool of k = {fit.k}: {', '.join(studies)} ({_status_counts(analysis, studies)})"]
    prov = {p.get("study"): p for p in analysis.extras.get("provenance", [])}
    inferred = [s for s in studies if (prov.get(s) or {}).get("status") == "inferred"]
    if inferred:
        facts.append("includes inferred numbers: " + ", ".join(inferred))
    conv = [s for s in studies if (prov.get(s) or {}).get("conversion")]
    if conv:
        facts.append("includes means/SDs converted from medians: " + ", ".join(conv))
    return facts


def _target_value(target: Mapping, analyses: Mapping[str, OutcomeAnalysis]):
    """(MetaResult or None, facts, reason-if-none) for one target row."""
    from .analysis import fit_variant

    outcome = _text(target.get("outcome"))
    if not math.isfinite(_num(target.get("estimate"))):
        return None, [], "the paper prints no pooled estimate"
    if not outcome:
        return None, [], "no outcome in the bundled data matches this target"
    if outcome not in analyses:
        return None, [], f"outcome {outcome!r} has no analysable data in the bundled dataset"
    a = analyses[outcome]
    measure = _text(target.get("measure")).upper()
    method = _text(target.get("model")).upper()
    measure = measure if measure in KNOWN_MEASURES else None
    method = method if method in KNOWN_METHODS else None
    sub = _text(target.get("subgroup"))
    studies = None
    if sub:
        studies = _subgroup_studies(a, sub)
        if studies is None:
            return None, [], f"subgroup {sub!r} has no studies in the bundled data"
    try:
        fit = fit_variant(a, measure=measure, method=method, studies=studies)
    except ValueError as exc:   # AnalysisError, DataError: say why in words
        return None, [], str(exc)
    facts = _facts(a, fit)
    if method and fit.method != method:
        facts.append(f"{method} asked for, but with k = {fit.k} every model returns the single "
                     f"study's estimate (shown as {fit.method})")
    return fit, facts, ""


def reproduction_table(analyses: Mapping[str, OutcomeAnalysis], targets: pd.DataFrame) -> pd.DataFrame:
    """One row per target: published vs computed (reporting scale), difference, status, reason."""
    rows = []
    for t in targets.to_dict(orient="records"):
        fit, facts, why = _target_value(t, analyses)
        comp = fit.reporting() if fit is not None else {}
        pub = {k: _num(t.get(k)) for k in BOUNDS}
        status, worst = classify(pub, comp, t.get("decimals"), _text(t.get("measure")).upper()
                                 or (fit.measure if fit else ""))
        reason = ([why] if why else []) + facts
        if status in ("close", "differs") and math.isfinite(worst):
            reason.append(f"largest difference {worst:.1f} units of the last printed digit")
        reason += [_text(t.get("assumption")), _text(t.get("missing"))]
        row = {"target_id": t.get("target_id"), "paper": _text(t.get("paper")),
               "outcome": _text(t.get("outcome")), "subgroup": _text(t.get("subgroup")),
               "measure": fit.measure if fit else _text(t.get("measure")),
               "model": fit.method if fit else _text(t.get("model")),
               "decimals": t.get("decimals"), "k": fit.k if fit else 0}
        for k in BOUNDS:
            row[f"published_{k}"] = pub[k]
        for k in BOUNDS:
            row[f"computed_{k}"] = comp.get(k, math.nan)
        for k in BOUNDS:
            row[f"diff_{k}"] = comp.get(k, math.nan) - pub[k]
        row["status"] = status
        row["reason"] = "; ".join(r for r in reason if r)
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt_value(x, measure="", decimals=None) -> str:
    x = _num(x)
    if not math.isfinite(x):
        return ""
    d = _num(decimals)
    d = int(d) if math.isfinite(d) else 3
    if str(measure).upper() in PROPORTION_MEASURES:
        return f"{100 * x:.{max(d - 2, 1)}f}%"
    return f"{x:.{d}f}".replace("-", "\u2212")


def _fmt_ci(est, lb, ub, measure="", decimals=None) -> str:
    s = _fmt_value(est, measure, decimals)
    if s and math.isfinite(_num(lb)) and math.isfinite(_num(ub)):
        s += f" ({_fmt_value(lb, measure, decimals)} to {_fmt_value(ub, measure, decimals)})"
    return s


def _display_frame(rep: pd.DataFrame) -> pd.DataFrame:
    out = []
    for r in rep.to_dict(orient="records"):
        d = r.get("decimals")
        m = r.get("measure", "")
        out.append({"target": r["target_id"], "outcome": r["outcome"] + (f" [{r['subgroup']}]"
                                                                         if r["subgroup"] else ""),
                    "model": f"{r['model']} {m}".strip(),
                    "published": _fmt_ci(r["published_estimate"], r["published_ci_lb"],
                                         r["published_ci_ub"], m, d) or "not printed",
                    "computed": _fmt_ci(r["computed_estimate"], r["computed_ci_lb"], r["computed_ci_ub"],
                                        m, (_num(d) + 1) if math.isfinite(_num(d)) else None) or "-",
                    "status": r["status"], "reason": r["reason"]})
    return pd.DataFrame(out, columns=["target", "outcome", "model", "published", "computed",
                                      "status", "reason"])


def _md_table(df: pd.DataFrame) -> str:
    def cell(v):
        return _text(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def reproduction_markdown(rep: pd.DataFrame) -> str:
    """Markdown version of :func:`reproduction_table` (formatted numbers, status, reason)."""
    counts = rep["status"].value_counts() if len(rep) else pd.Series(dtype=int)
    head = ("# Reproduction of published pooled estimates\n\n"
            + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES) + ".\n\n"
            "Statuses: *reproduced* = every printed number matches at the published rounding; "
            "*close* = every printed number within 2 units of the last printed digit (proportions: "
            "within 1 percentage point); *differs* = further away; *not reproducible* = nothing to "
            "compare (no printed number, or no public data).\n\n")
    return head + _md_table(_display_frame(rep))


# --------------------------------------------------------------------------- HTML
def software_versions() -> dict:
    """Versions of Python and the packages that produce the numbers and figures."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("metapool", "numpy", "scipy", "pandas", "matplotlib", "snakemake"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .5em;vertical-align:top;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.st-reproduced{background:#d9f2d9}.st-close{background:#fff2c6}.st-differs{background:#f9d6d5}
.st-not-reproducible{background:#e8e8e8}
figure{margin:1em 0}figure img{width:100%;border:1px solid #eee}
.note{color:#555;font-size:.9em}nav li{font-size:.92em}
"""


def _e(x) -> str:
    return html.escape(_text(x))


def _html_table(df: pd.DataFrame, classes: Mapping[str, str] | None = None) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for c, v in zip(df.columns, row):
            cls = ""
            if classes and c in classes:
                cls = f' class="{classes[c]}{_e(v).replace(" ", "-")}"'
            elif isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
                cls = ' class="num"'
            cells.append(f"<td{cls}>{_e(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(path, alt: str) -> str:
    """The figure embedded as a data URI (SVG preferred: sharp and small; PNG otherwise)."""
    p = Path(path)
    if not p.exists():
        return f'<p class="note">Figure not available: {_e(p.name)}</p>'
    mime = "image/svg+xml" if p.suffix == ".svg" else "image/png"
    b64 = base64.b64encode(p.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" src="data:{mime};base64,{b64}">'
            f'<figcaption class="note">{html.escape(alt)} (files: {_e(p.stem)}.png, .svg)'
            f'</figcaption></figure>')


#: Fewest studies for which the report shows the funnel plot (the files are always written).
FUNNEL_MIN_K = 3


def _fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return ""
    return f"{p:.3g}" if p >= 1e-4 else "<0.0001"


def _fits_frame(a: OutcomeAnalysis) -> pd.DataFrame:
    rows = []
    for f in a.fits:
        rep = f.reporting()
        m = f.measure
        pi = ""
        if f.is_random and math.isfinite(rep["pi_lb"]):
            pi = f"{_fmt_value(rep['pi_lb'], m)} to {_fmt_value(rep['pi_ub'], m)}"
        rows.append({"model": f.method, "k": f.k,
                     "estimate (95% CI)": _fmt_ci(rep["estimate"], rep["ci_lb"], rep["ci_ub"], m),
                     "prediction interval": pi, "p": _fmt_p(f.pval),
                     "tau²": "" if not math.isfinite(f.tau2) else f"{f.tau2:.4g}",
                     "I²": "" if not math.isfinite(f.I2) else f"{f.I2:.1f}%",
                     "Q (df, p)": "" if not math.isfinite(f.Q) else
                     f"{f.Q:.2f} ({int(f.Q_df)}, {_fmt_p(f.Q_pval)})"})
    return pd.DataFrame(rows)


def _overview_frame(analyses: Mapping[str, OutcomeAnalysis]) -> pd.DataFrame:
    rows = []
    for o, a in analyses.items():
        f = a.primary
        rep = f.reporting()
        n = np.nansum(f.ni) if f.ni is not None else math.nan
        rows.append({"outcome": a.label, "k": f.k, "n": "" if not n else int(n), "model": f.method,
                     "estimate (95% CI)": _fmt_ci(rep["estimate"], rep["ci_lb"], rep["ci_ub"], f.measure),
                     "I²": "" if not math.isfinite(f.I2) else f"{f.I2:.0f}%",
                     "inferred data": "yes" if any(p.get("status") == "inferred"
                                                   for p in a.extras.get("provenance", [])) else ""})
    return pd.DataFrame(rows)


def _subgroup_html(sg: Mapping) -> str:
    rows = []
    for g in sg.get("groups", []):
        from .results import result_from_dict

        f = result_from_dict(g["fit"])
        rep = f.reporting()
        rows.append({"subgroup": g["name"], "k": f.k, "studies": ", ".join(g["study"]),
                     f"{f.method} estimate (95% CI)": _fmt_ci(rep["estimate"], rep["ci_lb"],
                                                              rep["ci_ub"], f.measure)})
    out = f"<h4>Subgroups by {_e(sg.get('by'))}</h4>" + _html_table(pd.DataFrame(rows))
    t = sg.get("test")
    if t:
        out += (f"<p>Test for subgroup differences: Q<sub>between</sub> = {_num(t.get('Q_between')):.2f}, "
                f"df = {_e(t.get('df'))}, p = {_num(t.get('pval')):.3g} (tau² {_e(t.get('tau2'))}).</p>")
    else:
        out += '<p class="note">No test for subgroup differences computed.</p>'
    return out


def _notes(a: OutcomeAnalysis) -> list[str]:
    notes = list(a.extras.get("notes", [])) + list(a.effects.notes)
    for f in a.fits:
        notes += [n if n.startswith(f.method) else f"{f.method}: {n}" for n in f.notes]
    return list(dict.fromkeys(n for n in notes if n))


def _outcome_section(a: OutcomeAnalysis, figures: Mapping) -> str:
    from .transforms import scale_label

    spec = a.extras.get("spec", {})
    parts = [f'<h3 id="o-{_e(a.outcome)}">{_e(a.label)}</h3>',
             f'<p class="note">Outcome key <code>{_e(a.outcome)}</code>; measure {_e(a.effects.measure)} '
             f'(reported as {_e(scale_label(a.effects.measure))}); evidence statuses pooled: '
             f'{_e(", ".join(spec.get("status", [])))}. {_e(spec.get("note", ""))}</p>',
             _html_table(_fits_frame(a))]
    if a.extras.get("subgroups"):
        parts.append(_subgroup_html(a.extras["subgroups"]))
    figs = figures.get(a.outcome, {})
    if figs.get("forest"):
        parts.append(_img(figs["forest"], f"Forest plot: {a.label}"))
    if figs.get("funnel") and a.effects.k >= FUNNEL_MIN_K:
        parts.append(_img(figs["funnel"], f"Funnel plot: {a.label}"))
    elif figs.get("funnel"):
        parts.append(f'<p class="note">Funnel plot not shown: k = {a.effects.k} studies say nothing about '
                     f'small-study effects (file: {_e(Path(figs["funnel"]).stem)}.svg).</p>')
    notes = _notes(a)
    if notes:
        parts.append("<h4>Notes</h4><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    others = {k: v for k, v in a.extras.items() if k not in ("spec", "notes", "provenance", "subgroups")}
    for name, val in others.items():
        import json

        parts.append(f"<details><summary>{_e(name)}</summary><pre>"
                     f"{html.escape(json.dumps(val, indent=1, default=str)[:20000])}</pre></details>")
    prov = pd.DataFrame(a.extras.get("provenance", []))
    if len(prov):
        prov = prov[[c for c in ("study", "status", "source", "conversion", "note") if c in prov.columns]]
        parts.append("<h4>Data rows and sources</h4>" + _html_table(prov.fillna("")))
    return "\n".join(parts)


def methods_text(analyses: Mapping[str, OutcomeAnalysis], versions: Mapping) -> str:
    """Methods paragraph (HTML) generated from the settings actually used."""
    specs = [a.extras.get("spec", {}) for a in analyses.values()]
    methods = sorted({f.method for a in analyses.values() for f in a.fits})
    measures = sorted({a.effects.measure for a in analyses.values()})
    tests = sorted({s.get("test", "z") for s in specs})
    pis = sorted({s.get("pi_method", "metafor") for s in specs})
    rs = sorted({s.get("r") for s in specs if s.get("r") is not None})
    cc = specs[0].get("continuity", {}) if specs else {}
    vers = ", ".join(f"{k} {v}" for k, v in versions.items())
    return f"""
<p>Per-study effect sizes were computed as in metafor's <code>escalc()</code> (measures used:
{_e(', '.join(measures))}). Proportions were analysed on the scale named by the measure (PR raw,
PLO logit, PAS arcsine, PFT Freeman&ndash;Tukey double arcsine) and back-transformed for reporting
(PFT with Miller's 1978 inversion at the harmonic mean of the study sizes). Studies with a zero cell
received a continuity correction of {_e(cc.get('add', 0.5))} (<code>to = {_e(cc.get('to', 'only0'))}</code>,
double-zero studies {'dropped' if cc.get('drop00') else 'kept'}). Pre/post standardised mean changes
need the pre/post correlation, which no study reports; r = {_e(', '.join(map(str, rs)) or '0.5')} was
assumed unless a row gives its own. Means and SDs converted from medians with IQR or range are marked
as converted with the method named (Wan et al. 2014; Luo et al. 2018).</p>
<p>Models fitted: {_e(', '.join(methods))}. FE/EE is the inverse-variance common-effect model; random-effects
models estimate the between-study variance &tau;&sup2; by the named estimator (DL DerSimonian&ndash;Laird,
REML restricted maximum likelihood, PM Paule&ndash;Mandel, ...); MH and PETO pool 2&times;2 tables by
Mantel&ndash;Haenszel and Peto. Confidence intervals: {_e(', '.join(tests))} (z = normal quantile;
knha = Hartung&ndash;Knapp&ndash;Sidik&ndash;Jonkman t(k&minus;1)). Prediction intervals follow the
{_e(', '.join(pis))} convention (metafor: normal quantile under z, t(k&minus;1) under knha; higgins:
t(k&minus;2)). Heterogeneity: Cochran's Q, I&sup2; and H&sup2; as in metafor
(I&sup2; = &tau;&sup2;/(&tau;&sup2; + typical within-study variance)), with Q-profile confidence
intervals for &tau;&sup2; and I&sup2;. All numbers are checked against R metafor 3.8-1 reference
cases in the test suite.</p>
<p>Software: {_e(vers)}.</p>"""


REFERENCES = [
    "Viechtbauer W. Conducting meta-analyses in R with the metafor package. J Stat Softw 2010;36(3):1-48.",
    "DerSimonian R, Laird N. Meta-analysis in clinical trials. Control Clin Trials 1986;7:177-188.",
    "Viechtbauer W. Bias and efficiency of meta-analytic variance estimators in the random-effects "
    "model. J Educ Behav Stat 2005;30:261-293.",
    "Viechtbauer W. Confidence intervals for the amount of heterogeneity in meta-analysis. "
    "Stat Med 2007;26:37-52.",
    "Higgins JPT, Thompson SG. Quantifying heterogeneity in a meta-analysis. Stat Med 2002;21:1539-1558.",
    "Hartung J, Knapp G. A refined method for the meta-analysis of controlled clinical trials with "
    "binary outcome. Stat Med 2001;20:3875-3889.",
    "Freeman MF, Tukey JW. Transformations related to the angular and the square root. "
    "Ann Math Stat 1950;21:607-611; Miller JJ. The inverse of the Freeman-Tukey double arcsine "
    "transformation. Am Stat 1978;32:138.",
    "Mantel N, Haenszel W. J Natl Cancer Inst 1959;22:719-748; Yusuf S, Peto R, et al. "
    "Prog Cardiovasc Dis 1985;27:335-371.",
    "Wan X, Wang W, Liu J, Tong T. Estimating the sample mean and standard deviation from the sample "
    "size, median, range and/or interquartile range. BMC Med Res Methodol 2014;14:135.",
    "Luo D, Wan X, Liu J, Tong T. Optimally estimating the sample mean from the sample size, median, "
    "mid-range, and/or mid-quartile range. Stat Methods Med Res 2018;27:1785-1805.",
]


def render_html(analyses: Mapping[str, OutcomeAnalysis], summary: pd.DataFrame | None,
                reproduction: pd.DataFrame | None, figures: Mapping, studies: pd.DataFrame | None = None,
                title: str = "Meta-analysis report", failed: Mapping[str, str] | None = None,
                versions: Mapping | None = None) -> str:
    """The self-contained HTML report (figures embedded as base64 PNG; all data text escaped).

    Parameters
    ----------
    analyses : mapping outcome -> OutcomeAnalysis
    summary : DataFrame or None
        ``results/summary.csv`` (shown as a download-free appendix of all models).
    reproduction : DataFrame or None
        :func:`reproduction_table` output.
    figures : mapping outcome -> {"forest": path, "funnel": path}
        SVG (embedded as SVG) or PNG files.
    studies : DataFrame, optional
        The study table (provenance section).
    failed : mapping outcome -> message, optional
        Outcomes that could not be analysed, with the reason.
    """
    versions = versions or software_versions()
    nav = "<ol>" + "".join(f'<li><a href="#o-{_e(o)}">{_e(a.label)}</a> (k = {a.effects.k})</li>'
                           for o, a in analyses.items()) + "</ol>"
    counts = reproduction["status"].value_counts() if reproduction is not None and len(reproduction) else {}
    n_studies = len({s for a in analyses.values() for s in a.effects.study})
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
           f"<style>{_CSS}</style></head><body>", f"<h1>{_e(title)}</h1>",
           "<h2>Overview</h2>",
           f"<p>{len(analyses)} outcomes analysed from {n_studies} studies. Published pooled estimates: "
           + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES) + ".</p>",
           "<p class='note'>All estimates are on the reporting scale (proportions in %, ratios "
           "back-transformed). Each figure and table is generated from the same stored result "
           "(<code>results/pooled/&lt;outcome&gt;.json</code>).</p>"]
    if failed:
        out.append("<p><b>Not analysed:</b></p><ul>" + "".join(
            f"<li><code>{_e(o)}</code>: {_e(m)}</li>" for o, m in failed.items()) + "</ul>")
    out += ["<h3>Main results</h3><p class='note'>Primary model per outcome (the first random-effects "
            "model configured; fixed effect when k = 1). Details, all models and figures below.</p>",
            _html_table(_overview_frame(analyses))]
    out.append(f"<nav><b>Outcomes</b>{nav}</nav>")
    if reproduction is not None and len(reproduction):
        out += ["<h2 id='reproduction'>Reproduction of published estimates</h2>",
                "<p class='note'>reproduced: every printed number matches at the published rounding; "
                "close: every printed number within 2 units of the last printed digit (proportions: within "
                "1 percentage point); differs: further away; not reproducible: nothing to compare.</p>",
                _html_table(_display_frame(reproduction), classes={"status": "st-"})]
    out.append("<h2>Results by outcome</h2>")
    out += [_outcome_section(a, figures) for a in analyses.values()]
    out += ["<h2>Methods</h2>", methods_text(analyses, versions)]
    if summary is not None and len(summary):
        cols = [c for c in ("outcome", "model", "method", "k", "estimate", "ci_lb", "ci_ub", "pi_lb",
                            "pi_ub", "tau2", "I2", "Q", "Q_pval") if c in summary.columns]
        out += ["<h2>All models (summary.csv)</h2>",
                _html_table(summary[cols].round(4).astype(object).where(summary[cols].notna(), ""))]
    if studies is not None and len(studies):
        out += ["<h2>Data provenance: studies</h2>", _html_table(studies.fillna(""))]
    papers = []
    if reproduction is not None and "paper" in reproduction:
        papers = [p for p in dict.fromkeys(reproduction["paper"]) if p]
    out += ["<h2>References</h2><ol>" + "".join(f"<li>{_e(r)}</li>" for r in papers + REFERENCES)
            + "</ol>", "</body></html>"]
    return "\n".join(out)
