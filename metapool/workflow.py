"""What the Snakemake workflow runs, decided while Snakemake parses it: :func:`make_plan`.

Every check of the config and of every table the workflow reads happens here, before any job, so
a mistake stops the run with one located message (file, line, column or key, value, what is
allowed) and leaves ``results/`` untouched.  Nothing is written: the per-outcome input of each
job (its settings, data rows, study rows and published targets) is handed to the job as a
Snakemake ``param`` (:attr:`Plan.snapshots`), so Snakemake's own change detection (the ``params``
rerun trigger) reruns exactly the outcomes whose input changed; :func:`code_fingerprint` hashes
the package modules a job imports, so an edit to any of them reruns the jobs it affects.

Standard library only (a run with nothing to do must stay fast).
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from . import registry
from .config import (_NO_VALUE, ConfigError, check_numbers, check_outcome_keys, check_paths, config_error,
                     setting_keys)
from .data import DataError, load_studies, load_tables, load_targets
from .spec import OutcomeSpec, resolve_spec

__all__ = ["Plan", "make_plan", "load_project", "code_fingerprint", "outcome_figures", "RESULTS"]

RESULTS = "results"
#: Columns of an outcome's rows that its job does not need (where a row is; not its content).
_LOCATION = ("table", "line")


@dataclass
class Plan:
    """The checked input of one run.

    Attributes
    ----------
    outcomes : list of str
        Configured outcomes, in config order.
    specs : dict
        Outcome -> :class:`~metapool.spec.OutcomeSpec`.
    snapshots : dict
        Outcome -> deterministic JSON text: everything its job needs (settings, rows, study rows,
        published targets).  A Snakemake param, so a change reruns that outcome only.
    figures : dict
        Outcome -> figure kinds the job draws (forest; funnel from k = 3; diagnostics whose
        analysis runs).
    targets : list of dict
        The published targets (validated), each with ``outcome`` None or a configured outcome.
    skipped : list of dict
        Rows of outcomes listed in ``ignore_outcomes``: not analysed, listed in the report.
    """

    outcomes: list
    specs: dict
    snapshots: dict
    figures: dict
    targets: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    title: str = "Meta-analysis report"

    def target_ids(self) -> list:
        return [t["target_id"] for t in self.targets]

    def report_snapshot(self) -> str:
        """The report job's param: title, targets, skipped rows (deterministic JSON)."""
        return _dumps({"title": self.title, "targets": self.targets, "skipped": self.skipped,
                       "outcomes": self.outcomes})


def _dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _stop(files, keys, value, allowed, key_name=None):
    raise config_error(files, keys, _NO_VALUE if value is None else value, allowed, key_name=key_name)


def _close(value: str, options, cutoff=0.6) -> str:
    hit = difflib.get_close_matches(str(value), [str(o) for o in options], n=1, cutoff=cutoff)
    return f"; did you mean {hit[0]!r}?" if hit else ""


# --------------------------------------------------------------------------- the plan
def make_plan(config: Mapping, files: Sequence = ("config.yaml",), root: str | os.PathLike = ".") -> Plan:
    """Check the config and every table it names; return what the workflow runs.

    Parameters
    ----------
    config : mapping
        The config, already read safely (:func:`metapool.config.read_config`) and validated
        against the schema (:func:`metapool.registry.config_schema`).
    files : sequence of str
        The config files, to locate keys in messages.
    root : path
        The review folder: data paths in the config are relative to it (the working directory,
        or the ``prefix`` of a Snakemake module).

    Raises
    ------
    ConfigError, DataError
        The first problem found, located.
    """
    with _chdir(Path(root)):
        return _make_plan(config, files)


def _make_plan(config: Mapping, files: Sequence) -> Plan:
    check_outcome_keys(config, files)
    check_numbers(config, files)
    check_paths(config, files)
    _check_results_dir(files)
    studies = load_studies(config["studies"])
    rows = load_tables(config["tables"], config.get("extra_studies") or [], studies=studies)
    outcomes = list(config["outcomes"])
    targets = load_targets(config["targets"], outcomes=outcomes,
                           ignored=config.get("ignore_outcomes") or ()) if config.get("targets") else []
    by_outcome: dict = {}
    for r in rows:
        by_outcome.setdefault(r["outcome"], []).append(r)
    for outcome in outcomes:                 # a typo in config.yaml is reported at config.yaml
        if outcome not in by_outcome:
            near = difflib.get_close_matches(outcome, sorted(by_outcome), n=1, cutoff=0.75)
            _stop(files, ["outcomes", outcome], None,
                  f"no data rows have outcome = {outcome!r} in {', '.join(config['tables'])} or "
                  f"extra_studies" + (f"; rows with the similar key {near[0]!r} exist (a typo?)" if near else ""))
    skipped = _check_unconfigured(config, files, rows)
    study_index = {s["study"]: s for s in studies}
    specs, snapshots, figures = {}, {}, {}
    for outcome in outcomes:
        mine = by_outcome.get(outcome, [])
        spec = _check_outcome(config, files, outcome, mine, studies)
        specs[outcome] = spec
        used = [study_index[s] for s in dict.fromkeys(r["study"] for r in mine)]
        mine_targets = [t for t in targets if t.get("outcome") == outcome]
        _check_target_subgroups(config, files, outcome, spec, mine, used, mine_targets)
        figures[outcome] = outcome_figures(spec, mine, used)
        snapshots[outcome] = _dumps({
            "outcome": outcome, "spec": spec.to_dict(), "figures": figures[outcome],
            "rows": [{k: v for k, v in r.items() if k not in _LOCATION} for r in mine],
            "studies": used,
            "targets": [{k: v for k, v in t.items() if k != "line"} for t in mine_targets]})
    return Plan(outcomes=outcomes, specs=specs, snapshots=snapshots, figures=figures,
                targets=[{k: v for k, v in t.items() if k != "line"} for t in targets],
                skipped=[{k: r.get(k) for k in ("study", "outcome", "status", "table", "line")} for r in skipped],
                title=str(config.get("title") or "Meta-analysis report"))


class _chdir:
    """Read paths relative to the review folder (a no-op for the working directory itself)."""

    def __init__(self, root: Path):
        self.root, self.old = root, None

    def __enter__(self):
        if str(self.root) not in ("", "."):
            self.old = os.getcwd()
            os.chdir(self.root)

    def __exit__(self, *exc):
        if self.old is not None:
            os.chdir(self.old)


def _check_results_dir(files):
    """``results/`` is written by the workflow: it must be a real folder inside the review folder
    (a symbolic link would send every output elsewhere without a word)."""
    p = Path(RESULTS)
    if p.is_symlink():
        raise ConfigError(files[-1] if files else "config.yaml", allowed=(
            f"'{RESULTS}' in {Path.cwd()} is a symbolic link to {os.readlink(p)!r}; the workflow writes "
            f"only inside the working directory, so make '{RESULTS}' a plain folder (or remove the link)"))
    if p.exists() and not p.is_dir():
        raise ConfigError(files[-1] if files else "config.yaml",
                          allowed=f"'{RESULTS}' in {Path.cwd()} is a file; the workflow needs a folder there")


def _check_unconfigured(config, files, rows) -> list:
    """Rows whose outcome is not configured are an error, unless ``ignore_outcomes`` names it."""
    configured = set(config["outcomes"])
    ignore = list(config.get("ignore_outcomes") or [])
    present = {r["outcome"] for r in rows}
    for i, key in enumerate(ignore):
        if key in configured:
            _stop(files, ["ignore_outcomes", i], key, f"{key!r} is configured under outcomes:; an outcome "
                                                      "is either analysed or ignored")
        if key not in present:
            _stop(files, ["ignore_outcomes", i], key, "an outcome key that some data rows have"
                  + _close(key, sorted(present - configured)))
    skipped = []
    for r in rows:
        if r["outcome"] in configured:
            continue
        if r["outcome"] in ignore:
            skipped.append(r)
            continue
        near = _close(r["outcome"], sorted(configured), 0.75)
        raise DataError(r["table"], r["line"], "outcome", r["outcome"],
                        "an outcome configured under outcomes: in config.yaml" + near
                        + " (to keep rows of an outcome you do not analyse, list it under "
                          "ignore_outcomes:; it is then named in the report as skipped)")
    return skipped


def _where(r) -> str:
    line = r["line"]
    return f"{r['table']}, {line if isinstance(line, str) else f'line {line}'}"


def _check_outcome(config, files, outcome, mine, studies) -> OutcomeSpec:
    """The outcome's settings fit its data: measure, methods, statuses, subgroup, analyses."""
    entry = config["outcomes"][outcome]
    spec = resolve_spec(entry, config.get("defaults") or {})
    kind = mine[0]["kind"]
    where = _where(mine[0])
    if spec.measure not in registry.measures_for(kind):
        _stop(files, ["outcomes", outcome, "measure"], entry.get("measure"),
              f"outcome {outcome!r} has {registry.KIND_LABELS[kind]} ({where}); measures for these data: "
              f"{', '.join(registry.measures_for(kind))}")
    mkeys = setting_keys(config, outcome, "methods")
    for m in spec.methods:
        why = registry.method_problem(kind, spec.measure, m)
        if why:
            _stop(files, mkeys, m, f"{why} (outcome {outcome!r}: {where})")
    statuses = {str(r.get("status")) for r in mine}
    if not statuses & set(spec.status):
        _stop(files, setting_keys(config, outcome, "status"), list(spec.status),
              f"none of the {len(mine)} rows of outcome {outcome!r} has one of these statuses (found: "
              f"{', '.join(sorted(statuses))}; rows from {where}). Inferred numbers are for sensitivity "
              f"analyses only (data/evidence/EVIDENCE.md, conventions), so this outcome has no primary "
              f"pool: remove it (or list it under ignore_outcomes), or, if you accept the assumption, add "
              f"the status to outcomes/{outcome}/status (the report then marks the outcome as pooling "
              f"those numbers)")
    columns = list(dict.fromkeys([*(c for s in studies for c in s), *(c for r in mine for c in r)]))
    columns = [c for c in columns if c not in _LOCATION + ("kind",)]

    def need_column(keys, value):
        if value not in columns:
            _stop(files, keys, value, "a column of the study table or of the outcome's rows"
                  + _close(value, columns) + f" (columns: {', '.join(columns)})")

    if spec.subgroup:
        need_column(["outcomes", outcome, "subgroup"], spec.subgroup)
    akeys = setting_keys(config, outcome, "analyses")
    for name, opts in spec.analyses.items():
        for key, opt in registry.ANALYSES[name].options.items():
            if opt.required and not opts.get(key):          # e.g. `metareg: true` without moderators
                where = akeys + [name] if name in _analyses_of(config, outcome) else ["defaults", "analyses", name]
                _stop(files, where, opts.get(key), f"analyses/{name} needs {key}: "
                      f"{opt.description} (e.g. {name}: {{{key}: [year]}})")
            if opt.type == "column" and key in opts:
                need_column(akeys + [name, key], opts[key])
            if opt.type == "columns":
                for j, col in enumerate(opts.get(key) or []):
                    need_column(akeys + [name, key, j], col)
    family = registry.MEASURES[spec.measure].family
    if spec.favours and family == "proportion":
        _stop(files, ["outcomes", outcome, "favours"], list(spec.favours),
              f"favours labels go under a comparison (two-arm or pre/post data); outcome {outcome!r} "
              f"pools single-arm proportions")
    if spec.reference_proportion is not None and family != "proportion":
        _stop(files, ["outcomes", outcome, "reference_proportion"], spec.reference_proportion,
              f"a reference proportion applies to single-arm proportions; outcome {outcome!r} uses "
              f"{spec.measure}, whose null value is {registry.MEASURES[spec.measure].null:g}")
    return spec


def _analyses_of(config, outcome) -> dict:
    """The outcome's own ``analyses:`` entry (empty when it only inherits ``defaults``)."""
    entry = (config.get("outcomes") or {}).get(outcome) or {}
    return entry.get("analyses") or {} if isinstance(entry, Mapping) else {}


def _check_target_subgroups(config, files, outcome, spec, mine, used, targets):
    """A target with a printed number and a subgroup names a value of the outcome's subgroup column
    (targets without a number are statements: nothing is computed for them)."""
    for t in targets:
        sub = (t.get("subgroup") or "").strip()
        if not sub or t.get("estimate") is None:
            continue
        if not spec.subgroup:
            raise DataError(config["targets"], t["line"], "subgroup", sub,
                            f"outcome {outcome!r} has no subgroup column in config.yaml (set "
                            f"outcomes/{outcome}/subgroup), so no subgroup can be compared")
        values = {str(r.get(spec.subgroup)) for r in [*mine, *used] if r.get(spec.subgroup) is not None}
        if sub.lower() not in {v.lower() for v in values}:
            raise DataError(config["targets"], t["line"], "subgroup", sub,
                            f"a value of {spec.subgroup!r} among the studies of outcome {outcome!r} ("
                            f"{', '.join(sorted(values)) or 'none'})" + _close(sub, sorted(values)))


# --------------------------------------------------------------------------- figures
def _number(v):
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(str(v))
    except ValueError:
        return None


def outcome_figures(spec: OutcomeSpec, rows: Sequence[Mapping], studies: Sequence[Mapping]) -> list:
    """The figure kinds an outcome's job draws, from its settings and its primary rows.

    forest always; funnel when k >= 3 (fewer studies say nothing about small-study effects);
    each diagnostic figure whose analysis is switched on and has enough studies; the bubble plot
    for a meta-regression on one numeric moderator.  Decided here, before the job, because each
    figure is a declared output of the job; a figure whose analysis cannot run after all (a study
    not estimable) is drawn as a panel that says why.
    """
    primary = [r for r in rows if str(r.get("status")) in spec.status]
    k = len(primary)
    out = ["forest"]
    if k >= FUNNEL_MIN_K:
        out.append("funnel")
    for name, opts in spec.analyses.items():
        a = registry.ANALYSES[name]
        if not a.figures or k < int(opts.get("min_k", a.min_k)):
            continue
        if name == "metareg":
            if not _bubble_applies(opts, primary, studies):
                continue
        out += list(a.figures)
    order = {f: i for i, f in enumerate(registry.FIGURE_KINDS)}
    return sorted(dict.fromkeys(out), key=order.get)


def _bubble_applies(opts, rows, studies) -> bool:
    mods = list(opts.get("moderators") or [])
    if len(mods) != 1:
        return False
    col = mods[0]
    src = rows if any(col in r for r in rows) else studies
    values = {}
    for r in src:
        values.setdefault(r.get("study"), r.get(col))
    nums = [_number(values.get(r.get("study"))) for r in rows]
    given = [x for x in nums if x is not None]
    if any(values.get(r.get("study")) is not None and x is None for r, x in zip(rows, nums)):
        return False                  # text moderator: a regression, but no bubble plot
    return len(given) >= max(int(opts.get("min_k", 4)), 3) and len(set(given)) >= 2


FUNNEL_MIN_K = 3


# --------------------------------------------------------------------------- code fingerprints
_IMPORT = re.compile(r"^\s*(?:from\s+(\.+)([\w.]*)\s+import\s+([\w, ()]+)|import\s+metapool\.([\w.]+))", re.M)


def _module_imports(package: Path, name: str) -> set:
    """Package modules imported by module ``name`` (``analysis``, ``plots.forest``), from its text."""
    path = package / (name.replace(".", "/") + ".py")
    if not path.exists():
        path = package / name.replace(".", "/") / "__init__.py"
    if not path.exists():
        return set()
    here = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    found = set()
    for dots, mod, names, absolute in _IMPORT.findall(path.read_text(encoding="utf-8")):
        if absolute:
            found.add(absolute)
            continue
        base = here[: len(here) - (len(dots) - 1)] if len(dots) > 1 else here
        target = ".".join([*base, mod] if mod else base)
        if mod:
            found.add(target)
        for n in re.split(r"[,\s()]+", names):
            if n and n != "*":
                found.add(f"{target}.{n}" if target else n)
    return {m for m in found if (package / (m.replace(".", "/") + ".py")).exists()
            or (package / m.replace(".", "/") / "__init__.py").exists()}


def code_fingerprint(package: str | os.PathLike, entry: str) -> str:
    """SHA-256 of the package modules reachable by imports from module ``entry``.

    Any import, including one inside a function, counts.  The workflow passes the fingerprint of
    each job's entry module as a param, so editing a module reruns exactly the jobs that import it
    (directly or not), without a hand-kept list of files.
    """
    package = Path(package)
    seen, todo = set(), [entry, "__init__"]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parents = {".".join(m.split(".")[:i]) for i in range(1, m.count(".") + 1)}   # their __init__ runs too
        todo += sorted((_module_imports(package, m) | parents) - seen)
    h = hashlib.sha256()
    for m in sorted(seen):
        p = package / (m.replace(".", "/") + ".py")
        if not p.exists():
            p = package / m.replace(".", "/") / "__init__.py"
        if p.exists():
            h.update(m.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- a whole project
def load_project(root: str | os.PathLike = ".", config_file: str = "config.yaml") -> Plan:
    """Read, validate and plan a review folder exactly as the workflow does while parsing.

    The command-line and in-process twin of ``workflow/rules/common.smk``: the safe config
    reader, the schema generated from :mod:`metapool.registry`, then :func:`make_plan`.

    Raises
    ------
    ConfigError, DataError
        The first problem, located.
    """
    from .config import read_config, schema_problems

    with _chdir(Path(root)):
        config = read_config(config_file)
        problems = schema_problems(config, registry.config_schema(), [config_file])
        if problems:
            raise problems[0]
    return make_plan(config, [config_file], root)
