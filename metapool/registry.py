"""The one place that names what metapool can do: data kinds, measures, methods, analyses, figures.

Everything else reads this module: the config schema (``workflow/schemas/config.schema.yaml`` is
generated from :func:`config_schema`; ``tests/test_workflow_config.py`` checks the file is current), the
config checks made before any job (:mod:`metapool.config`, :mod:`metapool.workflow`), the
analysis dispatcher (:mod:`metapool.analysis`), the command line (:mod:`metapool.cli`) and the
report (labels).  Which measure and method go together is decided by :func:`method_problem`
alone, so the pipeline and the command line cannot disagree.

This module imports only the standard library (it runs while Snakemake parses the workflow).

Regenerate the schema after a change here::

    python -m metapool.registry > workflow/schemas/config.schema.yaml
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping

__all__ = ["KINDS", "STATUSES", "PRIMARY_STATUSES", "SENSITIVITY_STATUSES", "Measure", "MEASURES",
           "Method", "METHODS", "TESTS", "PI_METHODS", "CONTINUITY_TO", "Option", "Analysis",
           "ANALYSES", "FIGURE_KINDS", "DIAGNOSTIC_FIGURES", "MEAN_METHODS", "SD_METHODS",
           "measures_for", "methods_for", "method_problem", "fit_order", "is_fixed",
           "config_schema", "DEFAULT_SPEC", "KIND_LABELS"]

# --------------------------------------------------------------------------------------- data
KINDS = ("proportion", "binary", "continuous", "prepost", "generic")
"""Kinds of outcome data, read from a table's columns (see :mod:`metapool.data`)."""

KIND_LABELS = {"proportion": "single-arm counts", "binary": "two-arm counts",
               "continuous": "two-group means", "prepost": "pre/post means",
               "generic": "precomputed effect sizes"}

STATUSES = ("reported", "derived", "secondary", "inferred")
"""Evidence status of a number (data/README.md): printed; back-calculated exactly from printed
numbers; printed by another source; dependent on an assumption."""
PRIMARY_STATUSES = ("reported", "derived", "secondary")
SENSITIVITY_STATUSES = ("inferred",)
"""INFERRED numbers stay out of primary pools and are refitted in a sensitivity analysis
(data/evidence/EVIDENCE.md, conventions: "Use for sensitivity analyses only")."""


@dataclass(frozen=True)
class Measure:
    """An effect-size measure (metafor ``escalc`` name).

    ``family`` decides the reporting scale and the null value: ``proportion`` (single arm, no
    null), ``ratio`` (analysed on the log scale, null 1), ``difference`` (null 0).
    """

    name: str
    kinds: tuple
    family: str
    label: str                # reporting scale, for tables and axes
    analysis_label: str       # analysis scale
    description: str

    @property
    def null(self) -> float | None:
        """Value of 'no effect' on the reporting scale (None for a single-arm proportion)."""
        return {"ratio": 1.0, "difference": 0.0}.get(self.family)


MEASURES: dict[str, Measure] = {m.name: m for m in (
    Measure("PR", ("proportion",), "proportion", "proportion", "raw proportion", "raw proportion"),
    Measure("PLO", ("proportion",), "proportion", "proportion", "log odds (logit)", "logit-transformed proportion"),
    Measure("PAS", ("proportion",), "proportion", "proportion", "arcsine square root",
            "arcsine-transformed proportion"),
    Measure("PFT", ("proportion",), "proportion", "proportion", "Freeman-Tukey double arcsine",
            "Freeman-Tukey double-arcsine-transformed proportion"),
    Measure("RR", ("binary",), "ratio", "risk ratio", "log risk ratio", "risk ratio"),
    Measure("OR", ("binary",), "ratio", "odds ratio", "log odds ratio", "odds ratio"),
    Measure("RD", ("binary",), "difference", "risk difference", "risk difference", "risk difference"),
    Measure("PETO", ("binary",), "ratio", "odds ratio (Peto)", "log odds ratio (Peto)",
            "Peto's one-step odds ratio"),
    Measure("MD", ("continuous",), "difference", "mean difference", "mean difference", "raw mean difference"),
    Measure("SMD", ("continuous",), "difference", "SMD (Hedges' g)", "SMD (Hedges' g)",
            "standardised mean difference (Hedges' g)"),
    Measure("SMCR", ("prepost",), "difference", "SMC (raw-score standardised)",
            "SMC (raw-score standardised)",
            "standardised mean change, change divided by the baseline SD (Becker 1988)"),
    Measure("SMCC", ("prepost",), "difference", "SMC (change-score standardised)",
            "SMC (change-score standardised)", "standardised mean change, change divided by the SD of the change"),
    Measure("MC", ("prepost",), "difference", "mean change", "mean change", "raw mean change"),
    Measure("GEN", ("generic",), "difference", "effect size", "effect size", "precomputed effect size"),
)}


def measures_for(kind: str) -> tuple:
    """Measures that can be computed from ``kind`` data (generic rows may name any measure)."""
    if kind == "generic":
        return tuple(MEASURES)
    return tuple(m.name for m in MEASURES.values() if kind in m.kinds)


@dataclass(frozen=True)
class Method:
    """A pooling method.

    ``model``: ``fixed`` or ``random``; ``pools``: ``effects`` (inverse-variance on yi/vi),
    ``counts`` (2x2 tables directly) or ``binomial`` (the GLMM on events/totals); ``kinds`` and
    ``measures``: what it accepts (empty: any).
    """

    name: str
    model: str
    pools: str
    description: str
    kinds: tuple = ()
    measures: tuple = ()


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("FE", "fixed", "effects", "inverse-variance fixed (common) effect"),
    Method("EE", "fixed", "effects", "equal-effects model (metafor's name for FE)"),
    Method("DL", "random", "effects", "random effects, DerSimonian-Laird tau\u00b2"),
    Method("REML", "random", "effects", "random effects, restricted maximum-likelihood tau\u00b2"),
    Method("ML", "random", "effects", "random effects, maximum-likelihood tau\u00b2"),
    Method("PM", "random", "effects", "random effects, Paule-Mandel tau\u00b2"),
    Method("HE", "random", "effects", "random effects, Hedges' tau\u00b2"),
    Method("SJ", "random", "effects", "random effects, Sidik-Jonkman tau\u00b2"),
    Method("EB", "random", "effects", "random effects, empirical Bayes tau\u00b2"),
    Method("HS", "random", "effects", "random effects, Hunter-Schmidt tau\u00b2"),
    Method("MH", "fixed", "counts", "Mantel-Haenszel (2x2 tables)", ("binary",), ("OR", "RR", "RD")),
    Method("PETO", "fixed", "counts", "Peto's one-step odds ratio (2x2 tables)", ("binary",), ("OR", "PETO")),
    Method("GLMM", "random", "binomial", "binomial-normal GLMM (exact binomial likelihood, logit link)",
           ("proportion",), ("PLO",)),
)}

TAU2_METHODS = tuple(m.name for m in METHODS.values() if m.model == "random" and m.pools == "effects")
TESTS = {"z": "normal quantile (Wald)", "knha": "Hartung-Knapp-Sidik-Jonkman t(k-1)"}
PI_METHODS = {"metafor": "normal quantile under z, t(k-1) under knha (metafor)",
              "higgins": "t(k-2) (Higgins et al. 2009)"}
CONTINUITY_TO = ("only0", "all", "if0all", "none")
MEAN_METHODS = ("luo2018", "wan2014")
SD_METHODS = ("wan2014", "shi2020")


def is_fixed(method: str) -> bool:
    return METHODS[method].model == "fixed"


def methods_for(kind: str, measure: str) -> tuple:
    """Methods that can pool ``kind`` data analysed as ``measure``."""
    return tuple(m for m in METHODS if method_problem(kind, measure, m) is None)


def method_problem(kind: str, measure: str, method: str) -> str | None:
    """Why ``method`` cannot pool ``kind`` data with ``measure`` (None when it can).

    The single rule shared by the config checks, the analysis and the command line.
    """
    m = METHODS.get(method)
    if m is None:
        return f"unknown method {method!r} (methods: {', '.join(METHODS)})"
    if m.kinds and kind not in m.kinds:
        need = " or ".join(KIND_LABELS[k] for k in m.kinds)
        return f"{method} pools {need}; these rows are {KIND_LABELS.get(kind, kind)}"
    if m.measures and measure not in m.measures:
        return f"{method} pools measure {' or '.join(m.measures)}, not {measure}"
    if measure == "PETO" and m.pools == "effects":
        return None
    return None


def fit_order(methods) -> list:
    """Methods in the order they are fitted and shown: fixed effect first, then random effects."""
    methods = list(dict.fromkeys(methods))
    return [m for m in methods if is_fixed(m)] + [m for m in methods if not is_fixed(m)]


# --------------------------------------------------------------------------------------- analyses
@dataclass(frozen=True)
class Option:
    """One option of an analysis: ``type`` is int, number, bool, choice, column, columns or
    statuses; ``minimum``/``choices`` restrict it."""

    type: str
    description: str
    default: object = None
    minimum: float | None = None
    choices: tuple = ()
    required: bool = False


@dataclass(frozen=True)
class Analysis:
    """A further analysis switched on per outcome (``analyses: {name: true | {options}}``)."""

    name: str
    title: str
    min_k: int
    description: str
    options: Mapping = field(default_factory=dict)
    figures: tuple = ()


_MIN_K = Option("int", "fewest studies for the analysis to run (raising the built-in minimum only)", minimum=1)

ANALYSES: dict[str, Analysis] = {a.name: a for a in (
    Analysis("leave_one_out", "Leave-one-out", 3, "the primary model refitted without each study "
             "(metafor leave1out)", {"min_k": _MIN_K}, ("loo",)),
    Analysis("cumulative", "Cumulative meta-analysis", 3, "studies added one at a time in order of a "
             "column (metafor cumul)",
             {"min_k": _MIN_K, "order": Option("column", "column to order by (study table or rows)", "year"),
              "decreasing": Option("bool", "order from the largest value", False)}, ("cumulative",)),
    Analysis("influence", "Influence diagnostics", 3, "case-deletion diagnostics with metafor's cut-offs "
             "and the Baujat plot", {"min_k": _MIN_K}, ("influence", "baujat")),
    Analysis("gosh", "GOSH", 3, "the model fitted to all subsets (k <= 16) or a seeded sample of them",
             {"min_k": _MIN_K, "subsets": Option("int", "number of random subsets when k > 16", 65_535, minimum=2),
              "seed": Option("int", "seed of the random sample", 1, minimum=0)}, ("gosh",)),
    Analysis("small_study", "Small-study effects", 3, "Egger, Peters (two-arm counts), Begg and "
             "trim-and-fill, with a contour-enhanced funnel plot",
             {"min_k": _MIN_K, "model": Option("choice", "Egger/Peters regression model", "lm", choices=("lm", "rma")),
              "estimator": Option("choice", "trim-and-fill estimator of missing studies", "L0",
                                  choices=("L0", "R0"))}),
    Analysis("metareg", "Meta-regression", 4, "mixed-effects meta-regression on study-level moderators",
             {"min_k": _MIN_K, "moderators": Option("columns", "columns to regress on", required=True)},
             ("bubble",)),
    Analysis("inferred_sensitivity", "Sensitivity analysis including inferred numbers", 1,
             "every model refitted with the outcome's rows left out by the status filter",
             {"statuses": Option("statuses", "statuses added in the sensitivity analysis",
                                 list(SENSITIVITY_STATUSES))}),
)}

DIAGNOSTIC_FIGURES = tuple(f for a in ANALYSES.values() for f in a.figures)
"""Figure kinds drawn from a further analysis (``results/figures/{outcome}/{kind}.{png,svg}``)."""
FIGURE_KINDS = ("forest", "funnel") + DIAGNOSTIC_FIGURES
FIGURE_SOURCE = {f: a.name for a in ANALYSES.values() for f in a.figures}
FIGURE_TITLES = {"forest": "Forest plot", "funnel": "Funnel plot", "loo": "Leave-one-out",
                 "cumulative": "Cumulative meta-analysis", "influence": "Influence diagnostics",
                 "baujat": "Baujat plot", "gosh": "GOSH plot", "bubble": "Bubble plot"}

DEFAULT_SPEC = {"methods": ["FE", "REML"], "test": "z", "level": 0.95, "pi_method": "metafor",
                "r": 0.5, "continuity": {"to": "only0", "drop00": False},   # add: metafor's (0.5; 0 for PAS, PFT)
                "conversion": {"mean": "luo2018", "sd": "shi2020"},
                "status": list(PRIMARY_STATUSES), "analyses": {"inferred_sensitivity": True}}
"""Built-in settings; ``config.yaml``'s ``defaults`` block and each outcome override them."""


# --------------------------------------------------------------------------------------- schema
def _option_schema(opt: Option) -> dict:
    base = {"description": opt.description}
    if opt.type == "int":
        base.update(type="integer")
    elif opt.type == "number":
        base.update(type="number")
    elif opt.type == "bool":
        base.update(type="boolean")
    elif opt.type == "choice":
        base.update(enum=list(opt.choices))
    elif opt.type == "column":
        base.update(type="string", minLength=1)
    elif opt.type == "columns":
        base.update(type="array", items={"type": "string", "minLength": 1}, minItems=1, uniqueItems=True)
    elif opt.type == "statuses":
        base.update(type="array", items={"enum": list(STATUSES)}, minItems=1, uniqueItems=True)
    if opt.minimum is not None:
        base["minimum"] = opt.minimum
    return base


def config_schema() -> dict:
    """The JSON schema of ``config.yaml`` (Draft 2020-12), built from this registry."""
    analyses = {}
    for a in ANALYSES.values():
        opts = {"type": "object", "additionalProperties": False,
                "properties": {k: _option_schema(o) for k, o in a.options.items()}}
        req = [k for k, o in a.options.items() if o.required]
        if req:
            opts["required"] = req
        analyses[a.name] = {"description": f"{a.title}: {a.description} (k >= {a.min_k})",
                            "oneOf": [{"type": "boolean"}, opts]}
    settings = {
        "methods": {"$ref": "#/$defs/methods"},
        "test": {"description": "; ".join(f"{k}: {v}" for k, v in TESTS.items()), "enum": list(TESTS)},
        "level": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "pi_method": {"description": "; ".join(f"{k}: {v}" for k, v in PI_METHODS.items()),
                      "enum": list(PI_METHODS)},
        "r": {"description": "assumed pre/post correlation where a row gives none",
              "type": "number", "minimum": -1, "maximum": 1},
        "continuity": {"type": "object", "additionalProperties": False, "properties": {
            "add": {"type": "number", "minimum": 0, "maximum": 10},
            "to": {"description": "metafor's `to`: only0 (studies with a zero cell), all, if0all, none",
                   "enum": list(CONTINUITY_TO)},
            "drop00": {"type": "boolean"}}},
        "conversion": {"description": "median/IQR/range -> mean/SD (R meta's estimators)",
                       "type": "object", "additionalProperties": False, "properties": {
                           "mean": {"enum": list(MEAN_METHODS)}, "sd": {"enum": list(SD_METHODS)}}},
        "status": {"$ref": "#/$defs/statuses"},
        "analyses": {"type": "object", "additionalProperties": False, "properties": analyses},
    }
    outcome = {"type": "object", "additionalProperties": False, "required": ["label", "measure"],
               "properties": {
                   "label": {"type": "string", "minLength": 1, "maxLength": 300},
                   "measure": {"description": "effect-size measure (metafor escalc names)",
                               "enum": list(MEASURES)},
                   "subgroup": {"description": "a column of the study table (or of the outcome rows) "
                                               "to pool by", "type": "string", "minLength": 1},
                   "favours": {"description": "labels under a two-arm forest plot's axis: "
                                              "[left of the null, right of the null]",
                               "type": "array", "items": {"type": "string", "minLength": 1,
                                                          "maxLength": 60},
                               "minItems": 2, "maxItems": 2},
                   "reference_proportion": {"description": "single-arm proportions: test the pooled "
                                                          "proportion against this value (no p-value "
                                                          "without it)",
                                            "type": "number", "exclusiveMinimum": 0,
                                            "exclusiveMaximum": 1},
                   "note": {"type": "string", "maxLength": 2000},
                   **settings}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "metapool workflow configuration (config.yaml)",
        "description": "Generated from metapool/registry.py by `python -m metapool.registry`; do not edit.",
        "type": "object", "additionalProperties": False,
        "required": ["studies", "tables", "outcomes"],
        "$defs": {
            "methods": {"description": "; ".join(f"{m.name}: {m.description}" for m in METHODS.values()),
                        "type": "array", "items": {"enum": list(METHODS)}, "minItems": 1,
                        "uniqueItems": True},
            "statuses": {"description": "evidence statuses that enter the primary pools",
                         "type": "array", "items": {"enum": list(STATUSES)}, "minItems": 1,
                         "uniqueItems": True},
        },
        "properties": {
            "title": {"description": "title of the report", "type": "string", "minLength": 1,
                      "maxLength": 300},
            "studies": {"description": "path of the study table", "type": "string"},
            "tables": {"description": "outcome data tables (CSV)", "type": "array",
                       "items": {"type": "string"}, "minItems": 1, "uniqueItems": True},
            "targets": {"description": "published pooled estimates to reproduce (CSV)", "type": "string"},
            "extra_studies": {"description": "inline outcome rows, same columns as the tables",
                              "type": "array", "items": {
                                  "type": "object", "required": ["study", "outcome", "source", "status"],
                                  "properties": {"study": {"type": "string", "minLength": 1},
                                                 "outcome": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,64}\\Z"},
                                                 "source": {"type": "string", "minLength": 1},
                                                 "status": {"enum": list(STATUSES)}},
                                  "additionalProperties": {"type": ["number", "string", "null"]}}},
            "ignore_outcomes": {"description": "outcome keys in the data tables that are not analysed "
                                               "(their rows are listed in the report as skipped)",
                                "type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "defaults": {"type": "object", "additionalProperties": False, "properties": settings},
            "outcomes": {"description": "one entry per outcome; the key is the {outcome} wildcard",
                         "type": "object", "minProperties": 1,
                         "propertyNames": {"pattern": "^[A-Za-z0-9_]{1,64}\\Z"},
                         "additionalProperties": outcome},
        },
    }


def _yaml(schema: dict) -> str:
    """The schema as YAML (JSON is YAML; one key per line keeps diffs readable)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # pragma: no cover - regenerates workflow/schemas/config.schema.yaml
    import sys

    sys.stdout.write("# Generated from metapool/registry.py by `python -m metapool.registry`; do not edit.\n")
    sys.stdout.write(_yaml(config_schema()))
