"""metapool: meta-analysis statistics validated against R metafor, and the workflow's job logic.

Layers (no module imports one above it):

* parse time, standard library only: ``registry`` (what exists), ``spec`` (settings), ``config``
  (reading config.yaml), ``data`` (reading the tables), ``workflow`` (the plan Snakemake runs);
* statistics: ``rows``, ``results``, ``transforms``, ``convert``, ``effects``, ``tau2`` at the
  bottom; ``models`` above them; analyses (``counts``, ``glmm``, ``sensitivity``, ``bias``,
  ``subgroups``, ``metareg``, ``audit``, ``analysis``) above models;
* presentation (``plots``, ``tables``, ``report``) and entry points (``jobs`` for the workflow rules, ``cli``) on top.

Names are imported lazily, so ``import metapool.config`` does not load numpy.
"""
from importlib import import_module

__version__ = "0.2.0"
__all__ = ["EffectSizes", "MetaResult", "OutcomeAnalysis", "escalc", "fit", "fit_batch", "__version__"]

_LAZY = {"EffectSizes": "results", "MetaResult": "results", "OutcomeAnalysis": "analysis",
         "escalc": "effects", "fit": "models", "fit_batch": "models"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'metapool' has no attribute {name!r}")
