"""Reproduction check of published pooled estimates: one :class:`TargetCheck` per target.

Each row of the targets table (``data/raw/published_targets.csv``) is compared with what the
bundled data give.  For a target with data, the forensic audit (:func:`metapool.audit.audit`) first
searches every model the data allow, over every subset of the outcome's rows (inferred rows
included), for one that reproduces every printed number at the printed rounding; the best one is
reported.  Only when nothing reproduces does the check fall back to the model the target row names
(``measure``, ``model``: the hand-made assumption of the dossier) and say how far it is.

Statuses (*u*: one unit of the last printed digit)
--------------------------------------------------
``reproduced``
    every printed number is matched (``|computed - printed| <= u/2``) using only reported,
    derived and secondary numbers;
``reproduced_with_inferred``
    matched only when an inferred number is included (``reason`` says which);
``close``
    not matched, but every printed number is within ``2u`` (proportions: within one percentage
    point) under the target's model;
``differs``
    further away;
``no_public_data``
    the paper prints a number but no public study data exist for it;
``no_number_printed``
    the paper prints a statement, no number;
``not_analysed``
    the target's outcome is listed in ``ignore_outcomes``: this review does not analyse it.

A comparison that rests on one study says so (``single_study``): one study says little about a
pooled estimate.  A target that repeats another target's number (the same figure attributed to a
second paper) names it in ``duplicate_of``; the headline counts each distinct number once.

Validated against
-----------------
The audit is validated against R metafor (``tests/audit_cases.json``); the status rules are
checked on synthetic numbers in ``tests/test_report.py``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from .registry import MEASURES, METHODS, PRIMARY_STATUSES
from .results import MetaResult, Record

__all__ = ["STATUSES", "TargetCheck", "check_targets", "check_unlinked", "classify", "unit_of", "headline",
           "distance_text"]

STATUSES = ("reproduced", "reproduced_with_inferred", "close", "differs", "no_public_data",
            "no_number_printed", "not_analysed")
BOUNDS = ("estimate", "ci_lb", "ci_ub")
STATUS_WORDS = {"reproduced": "reproduced", "reproduced_with_inferred": "reproduced only with inferred numbers",
                "close": "close", "differs": "differs", "no_public_data": "no public data",
                "no_number_printed": "no number printed", "not_analysed": "not analysed in this review"}


@dataclass(frozen=True)
class TargetCheck(Record):
    """One published target against the bundled data (a row of ``results/reproduction.csv``).

    ``computed_*`` are on the reporting scale of ``measure`` fitted by ``model`` (``test``
    inference) to ``studies``; ``evidence_statuses`` are the statuses of those studies' rows;
    ``difference_units`` the largest distance from a printed number in units of its last digit;
    ``how``: ``audit`` (the best reproducing model the audit found), ``target model`` (the model the
    target row names, nothing reproduced) or empty; ``audit`` the audit as a dict
    (:meth:`metapool.audit.AuditResult.to_dict`)."""

    target_id: str
    paper: str
    outcome: str
    subgroup: str
    published_estimate: float
    published_ci_lb: float
    published_ci_ub: float
    decimals: float
    computed_estimate: float = math.nan
    computed_ci_lb: float = math.nan
    computed_ci_ub: float = math.nan
    measure: str = ""
    model: str = ""
    test: str = ""
    studies: tuple = ()
    study_labels: tuple = ()
    evidence_statuses: tuple = ()
    k: int = 0
    single_study: bool = False
    difference_units: float = math.nan
    status: str = "no_public_data"
    duplicate_of: str = ""
    reason: str = ""
    missing: str = ""
    how: str = ""
    inferred_rows: tuple = ()
    audit: dict | None = None

    @property
    def published(self) -> dict:
        return {"estimate": self.published_estimate, "ci_lb": self.published_ci_lb, "ci_ub": self.published_ci_ub}

    @property
    def computed(self) -> dict:
        return {"estimate": self.computed_estimate, "ci_lb": self.computed_ci_lb, "ci_ub": self.computed_ci_ub}

    def model_label(self) -> str:
        """``"FE, raw proportion (PR), z"``: what was fitted, in words."""
        if not self.measure:
            return ""
        m = MEASURES.get(self.measure)
        scale = m.analysis_label if m else self.measure
        test = {"z": "", "knha": ", Knapp-Hartung"}.get(self.test, f", {self.test}" if self.test else "")
        return f"{self.model}, {scale} ({self.measure}){test}"

    def row(self) -> dict:
        """The ``reproduction.csv`` columns."""
        return {"target_id": self.target_id, "paper": self.paper, "outcome": self.outcome,
                "subgroup": self.subgroup, "published_estimate": self.published_estimate,
                "published_ci_lb": self.published_ci_lb, "published_ci_ub": self.published_ci_ub,
                "computed_estimate": self.computed_estimate, "computed_ci_lb": self.computed_ci_lb,
                "computed_ci_ub": self.computed_ci_ub, "model": self.model_label(),
                "studies": "; ".join(self.study_labels), "k": self.k,
                "evidence_statuses": "; ".join(self.evidence_statuses),
                "difference_units": self.difference_units, "status": self.status,
                "single_study": self.single_study, "duplicate_of": self.duplicate_of,
                "reason": self.reason, "missing": self.missing}


# --------------------------------------------------------------------------- numbers
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
    """Status of a computed fit against the printed numbers: ``(status, worst)``.

    ``status`` is ``reproduced`` (every printed number within u/2), ``close`` (within 2u, or one
    percentage point for proportions) or ``differs``; ``worst`` the largest ``|diff|`` in units of
    the last printed digit (NaN when there is nothing to compare).
    """
    pub = {k: _num(published.get(k)) for k in BOUNDS}
    com = {k: _num(computed.get(k)) for k in BOUNDS}
    printed = [k for k in BOUNDS if math.isfinite(pub[k])]
    if "estimate" not in printed or not math.isfinite(com["estimate"]):
        return "no_public_data", math.nan
    if any(not math.isfinite(com[k]) for k in printed):
        return "differs", math.inf
    u = unit_of(pub["estimate"], decimals)
    diffs = [abs(com[k] - pub[k]) for k in printed]
    worst = max(diffs) / u
    eps = 1e-9 * max(1.0, max(abs(pub[k]) for k in printed))
    if all(d <= u / 2 + eps for d in diffs):
        return "reproduced", worst
    family = MEASURES[measure].family if measure in MEASURES else ""
    tol = max(2 * u, 0.01 if family == "proportion" else 0.0)
    if all(d <= tol + eps for d in diffs):
        return "close", worst
    return "differs", worst


# --------------------------------------------------------------------------- one target
def _base(target: Mapping) -> dict:
    return dict(target_id=_text(target.get("target_id")), paper=_text(target.get("paper")),
                outcome=_text(target.get("outcome")), subgroup=_text(target.get("subgroup")),
                published_estimate=_num(target.get("estimate")), published_ci_lb=_num(target.get("ci_lb")),
                published_ci_ub=_num(target.get("ci_ub")), decimals=_num(target.get("decimals")),
                duplicate_of=_text(target.get("duplicate_of")), missing=_text(target.get("missing")))


def check_unlinked(target: Mapping) -> TargetCheck:
    """A target without an analysed outcome: ``not_analysed`` (its outcome is ignored),
    ``no_number_printed`` or ``no_public_data``, with the audit's scale checks where a number is
    printed (they need no study data)."""
    base = _base(target)
    if target.get("ignored"):
        return TargetCheck(**base, status="not_analysed",
                           reason=f"Outcome {base['outcome']!r} is listed in ignore_outcomes in config.yaml.")
    if not math.isfinite(base["published_estimate"]):
        return TargetCheck(**base, status="no_number_printed",
                           reason="The paper states this without a number.")
    audit = _scale_audit(target)
    return TargetCheck(**base, status="no_public_data", audit=audit,
                       reason="No public study data for this estimate.")


def _scale_audit(target: Mapping) -> dict | None:
    """The audit's scale checks of the printed numbers alone (no table)."""
    from .audit import audit_printed

    est = _text(target.get("estimate"))
    if not est:
        return None
    ci = None
    if math.isfinite(_num(target.get("ci_lb"))):
        ci = (_num(target.get("ci_lb")), _num(target.get("ci_ub")))
    family = _family_of(target)
    try:
        res = audit_printed(_num(est), ci, decimals=_decimals(target), family=family,
                            p=_text(target.get("p")) or None)
    except ValueError:
        return None
    return res.to_dict()


def _family_of(target: Mapping) -> str | None:
    m = _text(target.get("published_measure")).lower() or _text(target.get("measure")).upper()
    if m in ("proportion",) or _text(target.get("measure")).upper() in ("PR", "PLO", "PAS", "PFT"):
        return "proportion"
    if _text(target.get("measure")).upper() in ("RR", "OR", "RD", "PETO"):
        return "two-arm"
    if m:
        return "continuous"
    return None


def _decimals(target: Mapping):
    d = _num(target.get("decimals"))
    return int(d) if math.isfinite(d) else None


def _subgroup_rows(ctx, target, rows):
    sub = _text(target.get("subgroup"))
    if not sub:
        return rows
    col = ctx.spec.subgroup
    values = {}
    for r in [*rows, *ctx.studies]:
        if r.get(col) is not None:
            values.setdefault(str(r.get("study")), str(r.get(col)))
    return [r for r in rows if values.get(str(r.get("study")), "").lower() == sub.lower()]


def _statuses_of(rows, studies) -> tuple:
    by = {str(r["study"]): str(r.get("status", "")) for r in rows}
    return tuple(dict.fromkeys(by.get(s, "") for s in studies))


def _counts_text(r: Mapping) -> str:
    def n(c):
        v = _num(r.get(c))
        return f"{v:g}" if math.isfinite(v) else None
    if n("events") and n("total"):
        return f"{n('events')}/{n('total')}"
    cells = [n(c) for c in ("events_treat", "total_treat", "events_ctrl", "total_ctrl")]
    if all(cells):
        return f"{cells[0]}/{cells[1]} vs {cells[2]}/{cells[3]}"
    return ""


def distance_text(units, published, decimals, measure: str = "") -> str:
    """How far computed numbers are from the printed ones (the largest difference over estimate and
    CI bounds), in words: percentage points for proportions, else the difference and its count of
    last-digit units (``units`` as :func:`classify` returns it)."""
    units = _num(units)
    if not math.isfinite(units):
        return "no comparable number"
    diff = units * unit_of(published, decimals)
    family = MEASURES[measure].family if measure in MEASURES else ""
    if family == "proportion":
        return f"off by up to {100 * diff:.1f} percentage points"
    d = _num(decimals)
    d = int(d) if math.isfinite(d) else 3
    return f"off by up to {diff:.{d}f} ({units:.0f} units of the last printed digit)"


def _fmt(x, measure, decimals) -> str:
    if not math.isfinite(_num(x)):
        return "-"
    d = int(decimals) if math.isfinite(_num(decimals)) else 3
    if MEASURES.get(measure) and MEASURES[measure].family == "proportion":
        return f"{100 * x:.{max(d - 1, 1)}f}%"
    return f"{x:.{d + 1}f}".replace("-", "\u2212")


def check_targets(analysis, ctx, targets: Sequence[Mapping]) -> list:
    """The :class:`TargetCheck` of every target naming ``analysis.outcome`` (in the outcome job)."""
    cache: dict = {}
    return [check_target(analysis, ctx, t, cache) for t in targets]


def check_target(analysis, ctx, target: Mapping, cache: dict | None = None) -> TargetCheck:
    """Audit one target against the outcome's rows and classify the best match (see module doc)."""
    base = _base(target)
    if not math.isfinite(base["published_estimate"]):
        return TargetCheck(**base, status="no_number_printed", reason="The paper states this without a number.")
    rows = _subgroup_rows(ctx, target, [*ctx.rows, *ctx.excluded])
    if not rows:
        return TargetCheck(**base, status="no_public_data",
                           reason=f"No bundled study is in subgroup {base['subgroup']!r}.")
    allowed = target.get("statuses")
    if isinstance(allowed, str):
        allowed = [x.strip().lower() for x in allowed.replace(",", ";").split(";") if x.strip()]
    target = dict(target, statuses=allowed or None)
    if allowed:              # the target names the evidence it may use; without it, every row is audited
        rows = [r for r in rows if str(r.get("status", "")).lower() in set(allowed)]
        if not rows:
            return TargetCheck(**base, status="no_public_data",
                               reason=f"No bundled row has an allowed status ({', '.join(allowed)}).")
    labels = analysis.study_labels
    audit = _audit(target, rows, ctx, {} if cache is None else cache)
    best = _best(audit, rows) if audit is not None else None
    if best is not None:
        return _from_audit(base, audit, best, rows, labels)
    return _from_target_model(base, analysis, ctx, target, rows, labels, audit)


#: Largest remainder total searched for "what the non-public studies must contain" in the pipeline
#: (the command line searches up to 1000; this keeps an outcome job under ~1.5 CPU-s per target).
MISSING_MAX_N = 200


def _audit(target, rows, ctx, cache: dict):
    """The audit of a target against these rows; targets that print the same numbers for the same
    rows share one audit (a duplicate target costs nothing)."""
    from .audit import audit

    ci = None
    if math.isfinite(_num(target.get("ci_lb"))):
        ci = (_num(target.get("ci_lb")), _num(target.get("ci_ub")))
    cols = [c for c in ("study", "events", "total", "events_treat", "total_treat", "events_ctrl",
                        "total_ctrl", "mean_treat", "sd_treat", "n_treat", "mean_ctrl", "sd_ctrl", "n_ctrl",
                        "mean_pre", "sd_pre", "mean_post", "sd_post", "n", "r", "yi", "vi")
            if any(r.get(c) is not None for r in rows)]
    effects_rows = _with_means(rows, ctx)
    data = {c: [r.get(c) for r in effects_rows] for c in cols}
    measures = None
    kind = ctx.effects.kind
    if kind == "prepost" and _text(target.get("published_measure")).upper() == "SMD":
        measures = ("SMCR", "SMCC")          # an SMD printed for pre/post data is a standardised change
    key = (tuple(map(str, (target.get("estimate"), ci, target.get("decimals"), target.get("p")))),
           tuple(str(r["study"]) for r in rows), measures)
    if key in cache:
        return cache[key]
    kw = dict(decimals=_decimals(target), p=_text(target.get("p")) or None, subsets=len(rows) <= 12,
              r=ctx.spec.r, measures=measures)
    try:
        res = audit(data, _num(target.get("estimate")), ci, **kw)
        if not res.reproducing and kind == "proportion":
            # nothing reproduces: what would the studies that are not public have to contain?
            res = audit(data, _num(target.get("estimate")), ci, missing=True, max_n=MISSING_MAX_N, **kw)
    except (ValueError, RuntimeError):
        res = None
    cache[key] = res
    return res


def _with_means(rows, ctx):
    """Pre/post rows with medians converted as the outcome's effect sizes are (same method)."""
    if not any(r.get("median_pre") is not None or r.get("median_post") is not None for r in rows):
        return rows
    from .effects import fill_from_medians

    return fill_from_medians(rows, ctx.spec.conversion)[0]


def _best(audit, rows) -> dict | None:
    """The audit's best reproducing model: only primary-status rows if any, else the first that
    needs inferred rows (the audit lists reproducing models best first)."""
    status = {str(r["study"]): str(r.get("status")) for r in rows}
    rep = list(audit.reproducing)
    primary = [e for e in rep if all(status.get(str(s)) in PRIMARY_STATUSES for s in e["studies"])]
    return primary[0] if primary else (rep[0] if rep else None)


def _printed_as(base) -> list:
    """How the printed estimate may appear in a data note ("54.8%", "0.548")."""
    est, d = base["published_estimate"], base["decimals"]
    d = int(d) if math.isfinite(d) else 3
    out = [f"{est:.{d}f}"]
    if 0 < est < 1:
        out.append(f"{100 * est:.{max(d - 2, 0)}f}%")
    return out


def _from_audit(base, audit, best, rows, labels) -> TargetCheck:
    studies = tuple(str(s) for s in best["studies"])
    statuses = _statuses_of(rows, studies)
    inferred = [r for r in rows if str(r["study"]) in studies and str(r.get("status")) == "inferred"]
    status = "reproduced_with_inferred" if inferred else "reproduced"
    measure, method, test = best["measure"], best["method"], best.get("test", "z")
    inf_text = [f"{labels.get(str(r['study']), r['study'])} {_counts_text(r)}".strip() for r in inferred]
    who = " + ".join(f"{labels.get(s, s)} {_counts_text(next(r for r in rows if str(r['study']) == s))}".strip()
                     for s in studies)
    if inferred:
        reason = f"{method} {measure} of {who} matches, but only with the inferred {', '.join(inf_text)}."
        shown = _printed_as(base)
        if any(p in str(r.get("note") or "") for r in inferred for p in shown):
            reason += (" That number was inferred from this very figure (see its note): consistent by "
                       "construction, not an independent reproduction.")
    else:
        reason = f"{method} {measure} of {who} matches."
    if len(studies) == 1:
        reason += " Single study: says little about a pooled estimate."
    if audit.n_reproducing > 1:
        reason += f" {audit.n_reproducing} model/study combinations match (results/audit/{base['target_id']}.json)."
    return TargetCheck(**base, computed_estimate=_num(best["estimate"]), computed_ci_lb=_num(best.get("ci_lb")),
                       computed_ci_ub=_num(best.get("ci_ub")), measure=measure, model=method, test=test,
                       studies=studies, study_labels=tuple(labels.get(s, s) for s in studies),
                       evidence_statuses=statuses, k=len(studies), single_study=len(studies) == 1,
                       difference_units=_units(base, best), status=status, reason=reason, how="audit",
                       inferred_rows=tuple(inf_text), audit=audit.to_dict())


def _units(base, comp) -> float:
    u = unit_of(base["published_estimate"], base["decimals"])
    diffs = [abs(_num(comp.get(k)) - base[f"published_{k}"]) for k in BOUNDS
             if math.isfinite(base[f"published_{k}"]) and math.isfinite(_num(comp.get(k)))]
    return max(diffs) / u if diffs else math.nan


def _from_target_model(base, analysis, ctx, target, rows, labels, audit) -> TargetCheck:
    """Nothing reproduces: the model the target row names, on the primary rows (plus the target's
    own statuses when it names them), and how far it is."""
    from .analysis import _escalc, fit_method

    measure = _text(target.get("measure")).upper() or analysis.effects.measure
    method = _text(target.get("model")).upper() or analysis.primary.method
    allowed = set(target.get("statuses") or ctx.spec.status)
    use = [r for r in rows if str(r.get("status")) in allowed] or [r for r in rows if r in ctx.rows]
    if not use:
        return TargetCheck(**base, status="no_public_data", reason="No bundled row with an allowed status.",
                           audit=None if audit is None else audit.to_dict())
    try:
        effects = _escalc(measure, use, ctx.spec)
        if effects.k < 2 and not METHODS[method].model == "fixed":
            method = "FE"          # one study: every model returns its own estimate
        fit: MetaResult = fit_method(method, effects, use, ctx.spec, measure=measure)
    except (ValueError, RuntimeError) as exc:
        return TargetCheck(**base, status="no_public_data", reason=f"Cannot be computed: {exc}",
                           audit=None if audit is None else audit.to_dict())
    rep = fit.reporting()
    status, worst = classify({"estimate": base["published_estimate"], "ci_lb": base["published_ci_lb"],
                              "ci_ub": base["published_ci_ub"]}, rep, base["decimals"], measure)
    studies = tuple(fit.study)
    inferred = [r for r in use if str(r["study"]) in studies and str(r.get("status")) == "inferred"]
    inf_text = [f"{labels.get(str(r['study']), r['study'])} {_counts_text(r)}".strip() for r in inferred]
    who = " + ".join(labels.get(s, s) for s in studies)
    if status == "reproduced":           # the audit could not decide; the target's own model matches
        if inferred:
            status = "reproduced_with_inferred"
        reason = f"{method} {measure} of {who} (the model the target row names) matches."
    else:
        reason = (f"No model or subset of the public studies matches; {method} {measure} of {who} gives "
                  f"{_fmt(rep['estimate'], measure, base['decimals'])}, "
                  f"{distance_text(worst, base['published_estimate'], base['decimals'], measure)}.")
    if inf_text:
        reason += f" Includes the inferred {', '.join(inf_text)}."
    if audit is not None and audit.nearest:
        nr = audit.nearest
        same = (nr.get("method") == method and nr.get("measure") == measure
                and tuple(map(str, nr.get("studies", []))) == studies)
        if not same:
            n_st = len(nr.get("studies", []))
            reason += (f" Nearest model: {nr.get('method')} {nr.get('measure')} of {n_st} "
                       f"{'study' if n_st == 1 else 'studies'}, "
                       f"{distance_text(nr.get('distance'), base['published_estimate'], base['decimals'], measure)}.")
    if len(studies) == 1:
        reason += " Single study: says little about a pooled estimate."
    return TargetCheck(**base, computed_estimate=rep["estimate"], computed_ci_lb=rep["ci_lb"],
                       computed_ci_ub=rep["ci_ub"], measure=measure, model=fit.method, test=fit.test,
                       studies=studies, study_labels=tuple(labels.get(s, s) for s in studies),
                       evidence_statuses=_statuses_of(use, studies), k=fit.k, single_study=fit.k == 1,
                       difference_units=worst, status=status, reason=reason, how="target model",
                       inferred_rows=tuple(inf_text), audit=None if audit is None else audit.to_dict())


# --------------------------------------------------------------------------- headline
def headline(checks: Sequence[TargetCheck]) -> dict:
    """Counts of distinct published numbers per status (a ``duplicate_of`` row counts once, under
    the target it repeats), and how many of each rest on a single study."""
    counts = {s: 0 for s in STATUSES}
    single = {s: 0 for s in STATUSES}
    for c in checks:
        if c.duplicate_of:
            continue
        counts[c.status] += 1
        single[c.status] += int(c.single_study)
    return {"counts": counts, "single_study": single,
            "distinct": sum(counts.values()), "duplicates": sum(1 for c in checks if c.duplicate_of)}
