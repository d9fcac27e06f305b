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
from .tables import md_escape

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


def _prov_map(analysis: OutcomeAnalysis) -> dict:
    """study -> provenance record: the primary rows and the rows added by the inferred
    sensitivity analysis (those carry ``sensitivity_only = True``)."""
    out = {p.get("study"): p for p in analysis.extras.get("provenance", [])}
    sens = analysis.extras.get("inferred_sensitivity") or {}
    for p in sens.get("added", []) if sens.get("status") == "ok" else []:
        out.setdefault(p.get("study"), {**p, "sensitivity_only": True})
    return out


def _status_counts(analysis: OutcomeAnalysis, studies) -> str:
    prov = _prov_map(analysis)
    counts: dict[str, int] = {}
    for s in studies:
        st = (prov.get(s) or {}).get("status") or "unknown"
        counts[st] = counts.get(st, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def _facts(analysis: OutcomeAnalysis, fit: MetaResult) -> list[str]:
    studies = list(fit.study)
    facts = [f"{fit.method} pool of k = {fit.k}: {', '.join(studies)} ({_status_counts(analysis, studies)})"]
    prov = _prov_map(analysis)
    inferred = [s for s in studies if (prov.get(s) or {}).get("status") == "inferred"]
    if inferred:
        facts.append("includes inferred numbers: " + ", ".join(inferred))
    conv = [s for s in studies if (prov.get(s) or {}).get("conversion")]
    if conv:
        facts.append("includes means/SDs converted from medians: " + ", ".join(conv))
    return facts


def _counts_text(row: Mapping) -> str:
    """``10/18`` (single arm) or ``34/50 vs 29/50`` (two arms) for a data row; "" otherwise."""
    def n(c):
        v = _num(row.get(c))
        return f"{v:g}" if math.isfinite(v) else None
    if n("events") and n("total"):
        return f"{n('events')}/{n('total')}"
    cells = [n(c) for c in ("events_treat", "total_treat", "events_ctrl", "total_ctrl")]
    if all(cells):
        return f"{cells[0]}/{cells[1]} vs {cells[2]}/{cells[3]}"
    return ""


def _target_statuses(target: Mapping) -> list[str] | None:
    """The target row's ``statuses`` (``reported;derived;...``), or None for the outcome's own."""
    text = _text(target.get("statuses"))
    return [s.strip().lower() for s in text.replace(",", ";").split(";") if s.strip()] or None


def _added_rows(a: OutcomeAnalysis, fit: MetaResult) -> list[str]:
    """The rows of ``fit`` that the primary analysis left out, as "STATUS study counts"."""
    sens = a.extras.get("inferred_sensitivity") or {}
    used = set(map(str, fit.study))
    return [f"{str(r.get('status', '')).upper()} {r.get('study')} {_counts_text(r)}".strip()
            for r in sens.get("rows", []) if str(r.get("study")) in used]


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
    statuses = _target_statuses(target)
    try:
        fit = fit_variant(a, measure=measure, method=method, studies=studies, statuses=statuses)
    except ValueError as exc:   # AnalysisError, DataError: say why in words
        return None, [], str(exc)
    facts = _facts(a, fit)
    added = _added_rows(a, fit) if statuses else []
    if added:
        primary_statuses = ", ".join((a.extras.get("spec") or {}).get("status", []))
        try:
            base = fit_variant(a, measure=measure, method=method, studies=studies)
        except ValueError as exc:
            base, base_text = None, f"no primary-evidence pool ({exc})"
        if base is not None:
            rep = base.reporting()
            base_text = (f"the primary evidence alone ({primary_statuses}: {', '.join(map(str, base.study))})"
                         f" gives {_fmt_ci(rep['estimate'], rep['ci_lb'], rep['ci_ub'], base.measure)}")
        facts.insert(0, {"added": added, "statuses": statuses, "base": base, "base_text": base_text})
    if method and fit.method != method:
        facts.append(f"{method} asked for, but with k = {fit.k} every model returns the single "
                     f"study's estimate (shown as {fit.method})")
    return fit, facts, ""


def _sensitivity_reason(sens: Mapping, status: str, pub: Mapping, target: Mapping, measure: str) -> str:
    """Reason text of a target computed with rows the primary analysis leaves out (e.g. INFERRED):
    "reproduced only when the INFERRED X 10/18 row is included (sensitivity analysis)", plus
    what the primary evidence alone gives and its status."""
    what = " and ".join(f"the {r} row" for r in sens["added"])
    base = sens["base"]
    base_status = (classify(pub, base.reporting(), target.get("decimals"), measure)[0]
                   if base is not None else "not reproducible")
    head = {"reproduced": "reproduced", "close": "close"}.get(status)
    if head and base_status != status:
        lead = f"{head} only when {what} is included (sensitivity analysis)"
    elif head:
        lead = f"{head} with and without {what} (sensitivity analysis)"
    else:
        lead = f"computed with {what} included (sensitivity analysis)"
    return f"{lead}; target statuses {', '.join(sens['statuses'])}; {sens['base_text']} ({base_status})"


def reproduction_table(analyses: Mapping[str, OutcomeAnalysis], targets: pd.DataFrame) -> pd.DataFrame:
    """One row per target: published vs computed (reporting scale), difference, status, reason."""
    rows = []
    for t in targets.to_dict(orient="records"):
        fit, facts, why = _target_value(t, analyses)
        comp = fit.reporting() if fit is not None else {}
        pub = {k: _num(t.get(k)) for k in BOUNDS}
        measure = _text(t.get("measure")).upper() or (fit.measure if fit else "")
        status, worst = classify(pub, comp, t.get("decimals"), measure)
        sens = facts.pop(0) if facts and isinstance(facts[0], dict) else None
        reason = ([why] if why else []) + ([_sensitivity_reason(sens, status, pub, t, measure)]
                                           if sens else []) + facts
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
    lines = ["| " + " | ".join(md_escape(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(md_escape(_text(v)) for v in row) + " |" for row in df.itertuples(index=False)]
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


def _fits_frame(a: OutcomeAnalysis | None, fits=None) -> pd.DataFrame:
    rows = []
    for f in (a.fits if fits is None else fits):
        rep = f.reporting()
        m = f.measure
        pi = ""
        if f.is_random and math.isfinite(rep["pi_lb"]):
            pi = f"{_fmt_value(rep['pi_lb'], m)} to {_fmt_value(rep['pi_ub'], m)}"
        rows.append({"model": f.method, "k": f.k,
                     "estimate (95% CI)": _fmt_ci(rep["estimate"], rep["ci_lb"], rep["ci_ub"], m),
                     "prediction interval": pi, "p": _fmt_p(f.pval),
                     "tau²": _fmt_tau2(f.tau2),
                     "I²": "" if not math.isfinite(f.I2) else f"{f.I2:.1f}%",
                     "Q (df, p)": "" if not math.isfinite(f.Q) else
                     f"{f.Q:.2f} ({int(f.Q_df)}, {_fmt_p(f.Q_pval)})"})
    return pd.DataFrame(rows)


def _fmt_tau2(x) -> str:
    """tau² as in the figures (four significant digits, numerically zero shown as 0); '' if NA."""
    from .plots.style import fmt_tau2

    return "" if x is None or not math.isfinite(x) else fmt_tau2(x)


def _overview_frame(analyses: Mapping[str, OutcomeAnalysis]) -> pd.DataFrame:
    rows = []
    for o, a in analyses.items():
        f = a.primary
        rep = f.reporting()
        n = np.nansum(f.ni) if f.ni is not None else math.nan
        rows.append({"outcome": a.label, "k": f.k, "n": "" if not n else int(n), "model": f.method,
                     "estimate (95% CI)": _fmt_ci(rep["estimate"], rep["ci_lb"], rep["ci_ub"], f.measure),
                     "I²": "" if not math.isfinite(f.I2) else f"{f.I2:.0f}%",
                     "inferred data": "in the primary pool" if any(
                         p.get("status") == "inferred" for p in a.extras.get("provenance", [])) else "",
                     "with inferred rows (sensitivity)": _sensitivity_cell(a)})
    df = pd.DataFrame(rows)
    if "inferred data" in df and not df["inferred data"].astype(bool).any():
        df = df.drop(columns="inferred data")  # shown only when a config admits inferred numbers
    return df


def _sensitivity_cell(a: OutcomeAnalysis) -> str:
    """The primary model refitted with the inferred rows (overview table), "" when not run."""
    from .analysis import sensitivity_fits

    fits = sensitivity_fits(a)
    f = next((x for x in fits if x.method == a.primary.method), None)
    if f is None:
        return ""
    r = f.reporting()
    return f"{_fmt_ci(r['estimate'], r['ci_lb'], r['ci_ub'], f.measure)} (k = {f.k})"


def _sensitivity_html(a: OutcomeAnalysis) -> str:
    """"Sensitivity analysis including inferred numbers: ..." beside the primary result."""
    from .analysis import sensitivity_fits

    res = a.extras.get("inferred_sensitivity")
    if not isinstance(res, Mapping):
        return ""
    if res.get("status") != "ok":
        return (f"<p class='note'><b>Sensitivity analysis including inferred numbers:</b> "
                f"{_e(res.get('status', 'not run'))}.</p>")
    fits = sensitivity_fits(a)
    added = "; ".join(f"{p.get('study')} ({p.get('status')}): {p.get('note') or p.get('source') or ''}"
                      for p in res.get("added", []))
    prim = a.primary.reporting()
    same = next((f for f in fits if f.method == a.primary.method), None)
    compare = ""
    if same is not None:
        r = same.reporting()
        with_ = _fmt_ci(r["estimate"], r["ci_lb"], r["ci_ub"], same.measure)
        without = _fmt_ci(prim["estimate"], prim["ci_lb"], prim["ci_ub"], a.primary.measure)
        compare = (f"{a.primary.method}: {with_} with them (k = {same.k}) vs {without} without "
                   f"(primary analysis, k = {a.primary.k}).")
    notes = "".join(f"<li>{_e(n)}</li>" for n in res.get("notes", []))
    return (f"<p><b>Sensitivity analysis including inferred numbers:</b> {_e(compare)} Every model "
            f"refitted with the rows the primary analysis leaves out (statuses pooled: "
            f"{_e(', '.join(res.get('statuses', [])))}). "
            f"Added: {_e(added)}. Inferred numbers rest on an assumption; they are not part of the primary "
            f"result or its forest plot.</p>" + _html_table(_fits_frame(None, fits))
            + (f"<ul class='note'>{notes}</ul>" if notes else ""))


def _sg_rows(sg: Mapping) -> pd.DataFrame:
    from .results import result_from_dict

    rows = []
    for g in sg.get("groups", []):
        f = result_from_dict(g["fit"])
        rep = f.reporting()
        rows.append({"subgroup": g["name"], "k": f.k, "studies": ", ".join(g["study"]),
                     f"{f.method} estimate (95% CI)": _fmt_ci(rep["estimate"], rep["ci_lb"],
                                                              rep["ci_ub"], f.measure),
                     "tau²": _fmt_tau2(f.tau2)})
    return pd.DataFrame(rows)


def _sg_test(t: Mapping | None, what: str) -> str:
    if not t:
        return '<p class="note">No test for subgroup differences computed.</p>'
    dist = "F" if t.get("dist") == "F" else "Q<sub>between</sub>"
    df = f"{_e(t.get('df'))}" + (f", {_e(t.get('df2'))}" if t.get("df2") is not None else "")
    return (f"<p>Test for subgroup differences ({_e(what)}): {dist} = {_num(t.get('Q_between')):.2f}, "
            f"df = {df}, p = {_fmt_p(_num(t.get('pval')))}.</p>")


def _regimen_gap(a: OutcomeAnalysis, sg: Mapping, studies: pd.DataFrame | None) -> str:
    """Which values of the subgroup column have data, and which studies of the study table with
    another value have none for this outcome (why a comparison is impossible)."""
    by = sg.get("by")
    have = sg.get("levels") or {}
    if studies is None or by not in getattr(studies, "columns", []):
        return ""
    others = studies[~studies[by].astype(str).isin(list(have)) & studies[by].notna()
                     & ~studies[by].astype(str).isin(["not reported", "NR", ""])]
    if others.empty:
        return ""
    by_value = others.groupby(others[by].astype(str))["study"].apply(lambda x: ", ".join(map(str, x)))
    items = "".join(f"<li>{_e(v)}: {_e(s)}</li>" for v, s in by_value.items())
    return (f"<p>Studies in the study table with another {_e(by)} have no data for this outcome in the "
            f"bundled tables (their numbers are not public, or they measured something else):</p>"
            f"<ul>{items}</ul>")


def _subgroup_overview(analyses: Mapping[str, OutcomeAnalysis]) -> pd.DataFrame:
    rows = []
    for a in analyses.values():
        sg = a.extras.get("subgroups")
        if not sg:
            continue
        groups = ", ".join(f"{v} (k = {n})" for v, n in (sg.get("levels") or {}).items())
        if sg.get("status", "ok") != "ok":
            verdict = "impossible: every study with data is in the same group"
        else:
            t = sg.get("test") or {}
            verdict = (f"tested: p = {_fmt_p(_num(t.get('pval')))} (separate tau²)"
                       + ("; a group has one study" if any(len(g.get("study", [])) < 2
                                                           for g in sg.get("groups", [])) else ""))
        rows.append({"outcome": a.label, "by": sg.get("by"), "groups with data": groups,
                     "comparison": verdict})
    return pd.DataFrame(rows)


def _subgroup_html(sg: Mapping, a: OutcomeAnalysis | None = None, studies: pd.DataFrame | None = None) -> str:
    by = sg.get("by")
    out = f"<h4>Subgroups by {_e(by)}</h4>"
    if sg.get("status", "ok") != "ok":
        have = sg.get("levels") or {}
        only = ", ".join(f"{v} (k = {n})" for v, n in have.items())
        out += (f"<p><b>Comparison impossible with these data.</b> Every study with data on this outcome "
                f"has the same {_e(by)}: {_e(only)}. A subgroup analysis needs studies from at least two "
                f"groups, so the data can show the pooled change under this {_e(by)} only, not whether "
                f"another {_e(by)} does better or worse; any such claim rests on studies whose numbers "
                f"are not in the data ({_e(sg['status'])}).</p>")
        return out + (_regimen_gap(a, sg, studies) if a is not None else "")
    out += "<p class='note'>Separate &tau;&sup2; per subgroup (drawn in the forest plot):</p>"
    out += _html_table(_sg_rows(sg)) + _sg_test(sg.get("test"), "separate \u03c4\u00b2")
    common = sg.get("common_tau2")
    if common and common.get("groups"):
        out += "<p class='note'>One &tau;&sup2; shared by all subgroups (meta-regression on the subgroup):</p>"
        out += _html_table(_sg_rows(common)) + _sg_test(common.get("test"), "common \u03c4\u00b2")
    elif common:
        out += f"<p class='note'>Common-&tau;&sup2; model: {_e(common.get('status'))}</p>"
    if any(g.get("study") and len(g["study"]) < 2 for g in sg.get("groups", [])):
        out += ("<p class='note'>A subgroup with one study gives that study's own estimate; the test then "
                "compares single studies, not regimens or populations.</p>")
    return out


def _notes(a: OutcomeAnalysis) -> list[str]:
    notes = list(a.extras.get("notes", [])) + list(a.effects.notes)
    for f in a.fits:
        notes += [n if n.startswith(f.method) else f"{f.method}: {n}" for n in f.notes]
    return list(dict.fromkeys(n for n in notes if n))


#: Extras the report shows in their own sections (anything else is listed as JSON).
_KNOWN_EXTRAS = ("spec", "notes", "provenance", "subgroups", "figures", "glmm", "leave_one_out",
                 "cumulative", "influence", "gosh", "small_study", "metareg", "inferred_sensitivity",
                 "study_labels")
_ANALYSIS_NAMES = {"leave_one_out": "Leave-one-out", "cumulative": "Cumulative meta-analysis",
                   "influence": "Influence diagnostics and Baujat plot", "gosh": "GOSH plot",
                   "small_study": "Small-study effects", "metareg": "Meta-regression"}


def _ci_cells(frame: pd.DataFrame, measure: str, ni=None) -> list[str]:
    from .transforms import back_transform

    vals = [np.asarray(back_transform(measure, frame[c].to_numpy(float), ni=ni), float)
            for c in ("estimate", "ci_lb", "ci_ub")]
    return [_fmt_ci(e, lo, hi, measure) for e, lo, hi in zip(*vals)]


def _fig(figs: Mapping, kind: str, alt: str) -> str:
    return _img(figs[kind], alt) if figs.get(kind) else ""


def _loo_html(res: Mapping, a: OutcomeAnalysis, figs: Mapping) -> str:
    t = pd.DataFrame(res["table"])
    m = a.effects.measure
    show = pd.DataFrame({"study left out": t["study"], "k": t["k"],
                         "estimate (95% CI)": _ci_cells(t, m, a.effects.ni), "p": t["pval"].map(_fmt_p),
                         "tau²": t["tau2"].map(_fmt_tau2), "I²": t["I2"].map(lambda x: f"{x:.1f}%")})
    return (f"<p class='note'>The {_e(res['method'])} model refitted without each study in turn.</p>"
            + _html_table(show) + _fig(figs, "loo", f"Leave-one-out: {a.label}"))


def _cumulative_html(res: Mapping, a: OutcomeAnalysis, figs: Mapping) -> str:
    t = pd.DataFrame(res["table"])
    show = pd.DataFrame({"study added": t["study"], _e(res.get("order_by", "order")): t["order"].fillna(""),
                         "k": t["k"], "estimate (95% CI)": _ci_cells(t, a.effects.measure, a.effects.ni),
                         "I²": t["I2"].map(lambda x: f"{x:.1f}%")})
    notes = "".join(f"<p class='note'>{_e(n)}</p>" for n in res.get("notes", []))
    return (f"<p class='note'>Studies added one at a time by {_e(res.get('order_by'))} "
            f"({_e(res['method'])}).</p>" + notes + _html_table(show)
            + _fig(figs, "cumulative", f"Cumulative meta-analysis: {a.label}"))


def _influence_html(res: Mapping, a: OutcomeAnalysis, figs: Mapping) -> str:
    t = pd.DataFrame(res["table"])
    show = pd.DataFrame({"study": t["study"], "rstudent": t["rstudent"].map(lambda x: f"{x:.2f}"),
                         "dffits": t["dffits"].map(lambda x: f"{x:.2f}"),
                         "Cook's D": t["cook_d"].map(lambda x: f"{x:.2f}"),
                         "hat": t["hat"].map(lambda x: f"{x:.2f}"),
                         "tau² without": t["tau2_del"].map(_fmt_tau2),
                         "influential": t["inf"].map(lambda x: "yes" if x else "")})
    flagged = ", ".join(res.get("influential", [])) or "none"
    return (f"<p>Influential studies (metafor's criteria: |dffits|, Cook's distance, hat value or "
            f"|dfbetas| beyond their cut-offs): <b>{_e(flagged)}</b>. With few studies a single study "
            f"is easily flagged; it says where the pooled result is fragile, not that the study is "
            f"wrong.</p>" + _html_table(show) + _fig(figs, "influence", f"Influence diagnostics: {a.label}")
            + _fig(figs, "baujat", f"Baujat plot: {a.label}"))


def _gosh_html(res: Mapping, a: OutcomeAnalysis, figs: Mapping) -> str:
    from .transforms import back_transform

    q = res.get("estimate_quantiles") or []
    rng = ""
    if len(q) == 7:
        lo, hi = np.asarray(back_transform(a.effects.measure, np.array([q[1], q[5]], float),
                                           ni=a.effects.ni), float)
        rng = (f" The middle 95% of the subset estimates lie between {_fmt_value(lo, a.effects.measure)} "
               f"and {_fmt_value(hi, a.effects.measure)}.")
    kind = "all" if res.get("exact") else f"a random sample (seed {_e(res.get('seed'))}) of"
    return (f"<p>The {_e(res.get('method'))} model fitted to {kind} {_e(res.get('n_subsets'))} subsets of the "
            f"{_e(res.get('k'))} studies.{_e(rng)} Separate clusters would point at studies that change "
            f"the result or the heterogeneity.</p>" + _fig(figs, "gosh", f"GOSH plot: {a.label}"))


def _p_test(name: str, r: Mapping | None) -> dict | None:
    if not r:
        return None
    if r.get("status", "ok") != "ok":
        return {"test": name, "statistic": "", "p": "", "detail": r.get("status")}
    if name.startswith("Begg"):
        return {"test": name, "statistic": f"Kendall's tau = {r['tau']:.3f}", "p": _fmt_p(_num(r["pval"])),
                "detail": "exact" if r.get("exact") else "normal approximation"}
    kind = "t" if r.get("model") == "lm" or math.isfinite(_num(r.get("df"))) else "z"
    return {"test": name, "statistic": f"{kind} = {_num(r['stat']):.2f}", "p": _fmt_p(_num(r["pval"])),
            "detail": f"slope {_num(r['slope']):.3f} (SE {_num(r['slope_se']):.3f}); limit estimate "
                      f"{_num(r['estimate']):.3f} (analysis scale)"}


def _small_study_html(res: Mapping, a: OutcomeAnalysis, figs: Mapping) -> str:
    rows = [_p_test("Egger (weighted regression on SE)", res.get("egger")),
            _p_test("Peters (regression on 1/n)", res.get("peters")),
            _p_test("Begg (rank correlation)", res.get("begg"))]
    out = ""
    if res.get("power_note"):
        out += (f"<p><b>Little power:</b> only k = {_e(res.get('k'))} studies; {_e(res['power_note'])}. "
                f"A non-significant test does not show that there is no small-study effect, and a "
                f"significant one may be chance; read the tests below as description, not as a verdict."
                f"</p>")
    out += _html_table(pd.DataFrame([r for r in rows if r]))
    tf = res.get("trim_and_fill") or {}
    if tf.get("status") == "ok":
        from .results import result_from_dict

        f = result_from_dict(tf["fit"])
        rep = f.reporting()
        out += (f"<p>Trim-and-fill ({_e(tf.get('estimator'))}, missing side chosen: {_e(tf.get('side'))}): "
                f"{_e(tf.get('k0'))} stud{'y' if tf.get('k0') == 1 else 'ies'} imputed; adjusted "
                f"{_e(f.method)} estimate {_e(_fmt_ci(rep['estimate'], rep['ci_lb'], rep['ci_ub'], f.measure))}"
                f" (imputed studies drawn as open circles in the funnel plot).</p>")
    elif tf:
        out += f"<p class='note'>Trim-and-fill {_e(tf.get('status'))}.</p>"
    if figs.get("funnel"):
        out += _img(figs["funnel"], f"Contour-enhanced funnel plot: {a.label}")
    return out


def _metareg_html(res: Mapping, a: OutcomeAnalysis, figs: Mapping) -> str:
    coef = pd.DataFrame(res["coefficients"])
    show = pd.DataFrame({"coefficient": coef["coef"], "estimate": coef["estimate"].map(lambda x: f"{x:.4f}"),
                         "SE": coef["se"].map(lambda x: f"{x:.4f}"), "p": coef["pval"].map(_fmt_p),
                         "95% CI": [f"{lo:.4f} to {hi:.4f}" for lo, hi in zip(coef["ci_lb"], coef["ci_ub"])]})
    qm = "F" if res.get("test") == "knha" else "QM"
    r2 = _num(res.get("R2"))
    out = (f"<p>{_e(res.get('method'))} meta-regression on {_e(', '.join(res.get('moderators', [])))} "
           f"(k = {_e(res.get('k'))}; coefficients on the analysis scale). Test of the moderators: "
           f"{qm} = {_num(res.get('QM')):.2f} (df = {_e(res.get('QM_df'))}), p = {_fmt_p(_num(res.get('QM_pval')))};"
           f" residual &tau;&sup2; = {_num(res.get('tau2')):.4g}; R&sup2; = "
           f"{'' if not math.isfinite(r2) else f'{r2:.1f}%'}; residual heterogeneity QE = "
           f"{_num(res.get('QE')):.2f} (p = {_fmt_p(_num(res.get('QE_pval')))}).</p>")
    if res.get("dropped"):
        out += f"<p class='note'>Left out (moderator missing): {_e(', '.join(res['dropped']))}.</p>"
    return out + _html_table(show) + _fig(figs, "bubble", f"Bubble plot: {a.label}")


_SECTION_HTML = {"leave_one_out": _loo_html, "cumulative": _cumulative_html, "influence": _influence_html,
                 "gosh": _gosh_html, "small_study": _small_study_html, "metareg": _metareg_html}


def _analyses_html(a: OutcomeAnalysis, figs: Mapping) -> str:
    """One section per further analysis that ran, and one line listing those not run and why."""
    parts, skipped = [], []
    for name, render in _SECTION_HTML.items():
        res = a.extras.get(name)
        if not isinstance(res, Mapping):
            continue
        if res.get("status") != "ok":
            skipped.append(f"{_ANALYSIS_NAMES[name]} ({res.get('status', 'not run')})")
            continue
        parts.append(f"<h4>{_e(_ANALYSIS_NAMES[name])}</h4>" + render(res, a, figs))
    if skipped:
        parts.append("<p class='note'>Not run (too few studies for the analysis): "
                     + _e("; ".join(skipped)) + ".</p>")
    return "\n".join(parts)


def _outcome_section(a: OutcomeAnalysis, figures: Mapping, studies: pd.DataFrame | None = None) -> str:
    from .transforms import scale_label

    spec = a.extras.get("spec", {})
    parts = [f'<h3 id="o-{_e(a.outcome)}">{_e(a.label)}</h3>',
             f'<p class="note">Outcome key <code>{_e(a.outcome)}</code>; measure {_e(a.effects.measure)} '
             f'(reported as {_e(scale_label(a.effects.measure))}); evidence statuses pooled: '
             f'{_e(", ".join(spec.get("status", [])))}. {_e(spec.get("note", ""))}</p>',
             _html_table(_fits_frame(a))]
    glmm = a.extras.get("glmm")
    if glmm and glmm.get("status") != "ok":
        parts.append(f"<p class='note'>GLMM (binomial-normal model) {_e(glmm['status'])}; the "
                     f"inverse-variance models above are unaffected.</p>")
    parts.append(_sensitivity_html(a))
    if a.extras.get("subgroups"):
        parts.append(_subgroup_html(a.extras["subgroups"], a, studies))
    figs = figures.get(a.outcome, {})
    if figs.get("forest"):
        parts.append(_img(figs["forest"], f"Forest plot: {a.label}"))
    bias = a.extras.get("small_study")
    if figs.get("funnel") and a.effects.k >= FUNNEL_MIN_K and not (bias and bias.get("status") == "ok"):
        parts.append(_img(figs["funnel"], f"Funnel plot: {a.label}"))
    elif figs.get("funnel") and a.effects.k < FUNNEL_MIN_K:
        parts.append(f'<p class="note">Funnel plot not shown: k = {a.effects.k} studies say nothing about '
                     f'small-study effects (file: {_e(Path(figs["funnel"]).stem)}.svg).</p>')
    parts.append(_analyses_html(a, figs))
    notes = _notes(a)
    if notes:
        parts.append("<h4>Notes</h4><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    others = {k: v for k, v in a.extras.items() if k not in _KNOWN_EXTRAS}
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
<p>Further analyses, each run only where the outcome has enough studies (otherwise the report and
the JSON say "not run: k = &hellip;"): leave-one-out and cumulative meta-analysis (studies added by
year), case-deletion influence diagnostics with metafor's cut-offs and the Baujat plot, GOSH (the
model fitted to all subsets, or a seeded random sample of them), mixed-effects meta-regression
(QM test, residual &tau;&sup2;, pseudo-R&sup2;), subgroup analyses with separate and with common
&tau;&sup2;, and small-study effects: Egger's regression test, Peters' test for two-arm counts,
Begg's rank correlation test and Duval and Tweedie's trim-and-fill, with a contour-enhanced funnel
plot. With fewer than 10 studies the small-study tests have little power and are not read as a
verdict (Cochrane Handbook). Single-arm proportions are pooled on the logit scale, with the
binomial-normal GLMM (exact binomial likelihood, no continuity correction) beside the
inverse-variance models.</p>
<p>Evidence statuses: the primary pools use numbers that are reported, derived (a count
back-calculated exactly from a printed percentage) or secondary (printed by another source). Numbers
that rest on an assumption (INFERRED: a denominator not printed, a statement turned into a count)
enter a sensitivity analysis only, in which every model is refitted with them added; a published
estimate reproduced only with them is marked so in the reproduction table.</p>
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
    "Egger M, Davey Smith G, Schneider M, Minder C. Bias in meta-analysis detected by a simple, "
    "graphical test. BMJ 1997;315:629-634.",
    "Peters JL, Sutton AJ, Jones DR, Abrams KR, Rushton L. Comparison of two methods to detect "
    "publication bias in meta-analysis. JAMA 2006;295:676-680.",
    "Begg CB, Mazumdar M. Operating characteristics of a rank correlation test for publication bias. "
    "Biometrics 1994;50:1088-1101.",
    "Duval S, Tweedie R. Trim and fill. Biometrics 2000;56:455-463.",
    "Baujat B, Mahe C, Pignon JP, Hill C. A graphical method for exploring heterogeneity in "
    "meta-analyses. Stat Med 2002;21:2641-2652.",
    "Olkin I, Dahabreh IJ, Trikalinos TA. GOSH - a graphical display of study heterogeneity. "
    "Res Synth Methods 2012;3:214-223.",
    "Viechtbauer W, Cheung MWL. Outlier and influence diagnostics for meta-analysis. "
    "Res Synth Methods 2010;1:112-125.",
    "Stijnen T, Hamza TH, Ozdemir P. Random effects meta-analysis of event outcome in the framework "
    "of the generalized linear mixed model. Stat Med 2010;29:3046-3067.",
    "Higgins JPT, Thomas J, et al. (eds). Cochrane Handbook for Systematic Reviews of Interventions, "
    "version 6.4, 2023: chapter 13 (missing evidence; tests for funnel plot asymmetry need >= 10 studies).",
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
    figures : mapping outcome -> {"forest": path, "funnel": path, kind: path, ...}
        SVG (embedded as SVG) or PNG files; further kinds (loo, cumulative, influence, baujat,
        gosh, bubble) are shown in the outcome's analysis sections.
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
    sg_overview = _subgroup_overview(analyses)
    if len(sg_overview):
        out += ["<h3>Subgroup comparisons</h3><p class='note'>What the data can say about differences "
                "between subgroups (e.g. dose regimens). A comparison needs studies in at least two "
                "groups; details in each outcome's section.</p>", _html_table(sg_overview)]
    out.append(f"<nav><b>Outcomes</b>{nav}</nav>")
    if reproduction is not None and len(reproduction):
        out += ["<h2 id='reproduction'>Reproduction of published estimates</h2>",
                "<p class='note'>reproduced: every printed number matches at the published rounding; "
                "close: every printed number within 2 units of the last printed digit (proportions: within "
                "1 percentage point); differs: further away; not reproducible: nothing to compare.</p>",
                _html_table(_display_frame(reproduction), classes={"status": "st-"})]
    out.append("<h2>Results by outcome</h2>")
    out += [_outcome_section(a, figures, studies) for a in analyses.values()]
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
