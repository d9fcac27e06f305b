"""The resolved settings of one outcome (:class:`OutcomeSpec`).

Built-in defaults (:data:`metapool.registry.DEFAULT_SPEC`) < the ``defaults`` block of
``config.yaml`` < the outcome's own entry.  The workflow resolves and checks the settings while
Snakemake parses it (:mod:`metapool.workflow`), so a job only ever sees a valid spec; the command
line and the tests build one with :func:`resolve_spec`.  Standard library only.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from typing import Mapping

from .registry import ANALYSES, DEFAULT_SPEC, fit_order

__all__ = ["OutcomeSpec", "resolve_spec", "merge"]


def merge(base: Mapping, override: Mapping | None) -> dict:
    """``base`` updated by ``override``, mappings merged recursively (copies, inputs untouched)."""
    out = copy.deepcopy(dict(base))
    for k, v in (override or {}).items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


@dataclass(frozen=True)
class OutcomeSpec:
    """Everything that decides how one outcome is analysed.

    Attributes
    ----------
    label, measure : str
    methods : tuple of str
        In fitting order (fixed effect first, :func:`metapool.registry.fit_order`).
    test, pi_method : str
    level : float
    r : float
        Pre/post correlation assumed where a row gives none.
    continuity : dict
        ``add``, ``to``, ``drop00`` (metafor's escalc arguments).
    conversion : dict
        ``mean`` and ``sd`` estimators for medians (:mod:`metapool.convert`).
    status : tuple of str
        Evidence statuses of the primary pool.
    analyses : dict
        Further analyses switched on: name -> options (with the registry's defaults filled in).
    subgroup : str or None
    favours : tuple of two str, or None
        Labels under a two-arm forest plot's axis (left, right of the null).
    reference_proportion : float or None
        Null value for a single-arm proportion's test (no test without it).
    r_given : bool
        Whether ``r`` was set in config.yaml (else the built-in 0.5 is an assumption of metapool).
    note : str or None
    """

    label: str
    measure: str
    methods: tuple = ("FE", "REML")
    test: str = "z"
    level: float = 0.95
    pi_method: str = "metafor"
    r: float = 0.5
    continuity: dict = field(default_factory=lambda: dict(DEFAULT_SPEC["continuity"]))
    conversion: dict = field(default_factory=lambda: dict(DEFAULT_SPEC["conversion"]))
    status: tuple = tuple(DEFAULT_SPEC["status"])
    analyses: dict = field(default_factory=dict)
    subgroup: str | None = None
    favours: tuple | None = None
    reference_proportion: float | None = None
    r_given: bool = False
    note: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "measure", str(self.measure).upper())
        object.__setattr__(self, "methods", tuple(fit_order(self.methods)))
        object.__setattr__(self, "status", tuple(str(s).lower() for s in self.status))
        if self.favours is not None:
            object.__setattr__(self, "favours", tuple(self.favours))

    def options(self, name: str) -> dict | None:
        """The options of analysis ``name`` (None when it is switched off)."""
        return self.analyses.get(name)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("methods", "status", "favours"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "OutcomeSpec":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _analysis_options(name: str, value) -> dict | None:
    """``true`` / options mapping / ``false`` -> options with the registry defaults, or None."""
    if value is False or value is None:
        return None
    given = value if isinstance(value, Mapping) else {}
    spec = ANALYSES[name]
    out = {k: copy.deepcopy(o.default) for k, o in spec.options.items() if o.default is not None}
    out["min_k"] = spec.min_k
    out.update(copy.deepcopy(dict(given)))
    out["min_k"] = max(int(out["min_k"]), spec.min_k)
    return out


def resolve_spec(entry: Mapping, defaults: Mapping | None = None) -> OutcomeSpec:
    """The :class:`OutcomeSpec` of an outcome entry of ``config.yaml`` (assumed valid: the
    workflow checks the config against the registry before it calls this)."""
    merged = merge(merge(DEFAULT_SPEC, defaults or {}), entry)
    r_given = "r" in (defaults or {}) or "r" in entry
    analyses = {}
    for name, value in (merged.get("analyses") or {}).items():
        if name not in ANALYSES:
            raise ValueError(f"unknown analysis {name!r} (known: {', '.join(ANALYSES)})")
        opts = _analysis_options(name, value)
        if opts is not None:
            analyses[name] = opts
    kw = {k: merged[k] for k in ("label", "measure", "methods", "test", "level", "pi_method", "r",
                                 "continuity", "conversion", "status", "subgroup", "favours",
                                 "reference_proportion", "note") if k in merged}
    return OutcomeSpec(**kw, analyses=analyses, r_given=r_given)
