# Shared by all rules: config validation, data validation, per-outcome data snapshots,
# target lists.  Everything here runs when Snakemake parses the workflow, i.e. before any job:
# an invalid config or data row stops the run with one clear message (no traceback).
#
# Per-outcome snapshots: results/data/{outcome}.json holds everything one outcome's job needs
# (resolved settings, its data rows, the study-table rows of its studies).  A snapshot is
# rewritten only when its content changes, so adding a study to one outcome touches only that
# outcome's snapshot and Snakemake re-runs only that outcome's job and the report.  To keep a
# run with nothing to do fast, the data are re-read only when the config or a data file changed
# (fingerprint in results/data/.fingerprint).
import hashlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

RESULTS = "results"
SNAPSHOTS = f"{RESULTS}/data"
FINGERPRINT = f"{SNAPSHOTS}/.fingerprint"
# Config files in the order Snakemake merged them (a key is located in the last one holding it).
CONFIG_FILES = [str(f) for f in [*workflow.configfiles, *(workflow.overwrite_configfiles or [])]]
CONFIG_FILES = list(dict.fromkeys(CONFIG_FILES)) or ["config.yaml"]

# Parse-time code uses the package next to this Snakefile when there is one (jobs use the
# installed package: `pip install -e .`).
if Path(workflow.basedir, "metapool", "__init__.py").exists():
    sys.path.insert(0, workflow.basedir)


def stop(message):
    """End the run before any job with a message and no traceback."""
    sys.stderr.write(f"\nmetapool: cannot run the workflow.\n{message}\n\n")
    sys.exit(1)


def _validate_config():
    """Schema (workflow/schemas/config.schema.yaml), outcome keys and data paths; else stop."""
    try:
        validate(config, "../schemas/config.schema.yaml")
    except WorkflowError as exc:
        import yaml

        schema = yaml.safe_load(Path(workflow.basedir, "workflow/schemas/config.schema.yaml").read_text())
        problems = CONFIG_CHECKS.schema_problems(config, schema, CONFIG_FILES)
        listed = "\n".join(f"ConfigError: {p}" for p in problems) or str(exc)
        stop(f"config.yaml is invalid:\n{listed}\n(allowed keys and values: "
             "workflow/schemas/config.schema.yaml; see docs/workflow.md)")
    try:
        CONFIG_CHECKS.check_outcome_keys(config, CONFIG_FILES)
        CONFIG_CHECKS.check_paths(config, CONFIG_FILES)
    except CONFIG_CHECKS.ConfigError as exc:
        stop(f"ConfigError: {exc}")


_validate_config()
OUTCOMES = list(config["outcomes"])


def data_files():
    """The data files named in config.yaml (study table, outcome tables, targets)."""
    files = [config["studies"], *config["tables"]]
    if config.get("targets"):
        files.append(config["targets"])
    return files


def _package_file(name):
    """Path of a metapool module's source without importing the package (keeps no-op runs fast)."""
    spec = importlib.util.find_spec("metapool")
    return Path(spec.submodule_search_locations[0], name) if spec else None


def _fingerprint():
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for f in data_files():
        h.update(f.encode())
        h.update(Path(f).read_bytes() if Path(f).exists() else b"<missing>")
    for module in ("data.py", "analysis.py", "io.py", "config.py", "effects.py"):
        p = _package_file(module)
        h.update(p.read_bytes() if p is not None and p.exists() else b"")
    return h.hexdigest()


def _write_snapshots():
    """Load and validate all data, then write one snapshot per outcome (only if changed)."""
    from metapool.analysis import EXTRA_ANALYSES, resolve_spec
    from metapool.data import DataError, load_studies, load_tables
    from metapool.io import dumps_json, write_if_changed

    try:
        studies = load_studies(config["studies"])
        rows = load_tables(config["tables"], extra=config.get("extra_studies") or [],
                           studies=studies)
    except DataError as exc:
        stop(f"DataError: {exc}")
    defaults = config.get("defaults") or {}
    for outcome in OUTCOMES:
        spec = resolve_spec(config["outcomes"][outcome], defaults)
        unknown = sorted(set(spec.get("analyses") or {}) - set(EXTRA_ANALYSES))
        if unknown:
            _config_stop(CONFIG_CHECKS.setting_keys(config, outcome, "analyses"), None,
                         f"unknown analysis {', '.join(unknown)} (known: "
                         f"{', '.join(sorted(EXTRA_ANALYSES)) or 'none'})", key_name=unknown[0])
        mine = rows[rows["outcome"].astype(str) == outcome]
        if mine.empty:
            typo = _close_keys(outcome, rows["outcome"].astype(str).unique())
            _config_stop(["outcomes", outcome], None,
                         f"no data rows have outcome = {outcome!r} in {', '.join(config['tables'])} "
                         f"or extra_studies{typo}")
        where = f"{mine['table'].iloc[0]}, {_line(mine['line'].iloc[0])}"
        # `line` is left out so that inserting a row above another outcome's rows in the same
        # CSV does not change (and re-run) that outcome.
        mine = mine.drop(columns=["line"], errors="ignore").dropna(axis=1, how="all")
        try:
            CONFIG_CHECKS.check_outcome(outcome, spec, mine["kind"].iloc[0],
                                        [*studies.columns, *mine.columns], where, CONFIG_FILES, config)
        except CONFIG_CHECKS.ConfigError as exc:
            stop(f"ConfigError: {exc}")
        status = mine["status"].astype(str).str.lower() if "status" in mine else None
        if status is not None and not status.isin(spec["status"]).any():
            _config_stop(CONFIG_CHECKS.setting_keys(config, outcome, "status"), spec["status"],
                         f"none of the {len(mine)} rows of outcome {outcome!r} has one of these "
                         f"statuses (found: {', '.join(sorted(set(status)))}; rows from {where}). Inferred "
                         f"numbers are for sensitivity analyses only (EVIDENCE conventions), so this "
                         f"outcome has no primary pool: remove it, or, if you accept the assumption, "
                         f"add the status to outcomes/{outcome}/status (the report then marks the "
                         f"outcome as pooling those numbers)")
        used = studies[studies["study"].astype(str).isin(mine["study"].astype(str))]
        snap = {"outcome": outcome, "spec": spec,
                "rows": mine.astype(object).where(mine.notna(), None).to_dict(orient="records"),
                "studies": used.astype(object).where(used.notna(), None).to_dict(orient="records")}
        write_if_changed(f"{SNAPSHOTS}/{outcome}.json", dumps_json(snap))


def _config_stop(keys, value, allowed, key_name=None):
    """Stop with a ConfigError located at ``keys`` in the config file (value None: not shown)."""
    value = CONFIG_CHECKS._NO_VALUE if value is None else value
    stop(f"ConfigError: {CONFIG_CHECKS.config_error(CONFIG_FILES, keys, value, allowed, key_name=key_name)}")


def _line(line):
    return line if isinstance(line, str) else f"line {line}"


def _close_keys(outcome, keys):
    import difflib

    close = difflib.get_close_matches(outcome, [str(k) for k in keys], n=1, cutoff=0.75)
    return f"; rows with the similar key {close[0]!r} exist (a typo?)" if close else ""


def _remove_stale_temp_files(max_age=600.0):
    """Delete temporary files (.name.XXXX.tmp) that a killed job left in results/.

    Only files older than ``max_age`` seconds: a younger one may belong to a job that is still
    writing (all writers rename their temporary file within a second).
    """
    now = time.time()
    for folder, _, names in os.walk(RESULTS):
        for name in names:
            if name.startswith(".") and name.endswith(".tmp"):
                p = os.path.join(folder, name)
                try:
                    if now - os.stat(p).st_mtime > max_age:
                        os.unlink(p)
                except FileNotFoundError:
                    pass


def prepare():
    """Write the snapshots unless config and data are unchanged since the last parse."""
    _remove_stale_temp_files()
    fp = _fingerprint()
    fresh = Path(FINGERPRINT).exists() and Path(FINGERPRINT).read_text() == fp
    if fresh and all(Path(f"{SNAPSHOTS}/{o}.json").exists() for o in OUTCOMES):
        return
    _write_snapshots()
    from metapool.io import write_text

    write_text(FINGERPRINT, fp)


prepare()


wildcard_constraints:
    outcome="[A-Za-z0-9_]+",


def outcome_outputs(outcome):
    """Files one outcome's job writes."""
    fig = f"{RESULTS}/figures/{outcome}"
    return {
        "effects": f"{RESULTS}/effects/{outcome}.csv",
        "pooled": f"{RESULTS}/pooled/{outcome}.json",
        "forest_png": f"{fig}_forest.png",
        "forest_svg": f"{fig}_forest.svg",
        "funnel_png": f"{fig}_funnel.png",
        "funnel_svg": f"{fig}_funnel.svg",
    }


REPORT_OUTPUTS = {
    "summary_csv": f"{RESULTS}/summary.csv",
    "summary_md": f"{RESULTS}/summary.md",
    "reproduction_csv": f"{RESULTS}/reproduction.csv",
    "reproduction_md": f"{RESULTS}/reproduction.md",
    "html": f"{RESULTS}/report.html",
}


def all_outputs():
    files = [f for o in OUTCOMES for f in outcome_outputs(o).values()]
    return files + list(REPORT_OUTPUTS.values())
