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
import posixpath
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

RESULTS = "results"
SNAPSHOTS = f"{RESULTS}/data"
FINGERPRINT = f"{SNAPSHOTS}/.fingerprint"

# Parse-time code uses the package next to this Snakefile when there is one (jobs use the
# installed package: `pip install -e .`).
if Path(workflow.basedir, "metapool", "__init__.py").exists():
    sys.path.insert(0, workflow.basedir)


def stop(message):
    """End the run before any job with a message and no traceback."""
    sys.stderr.write(f"\nmetapool: cannot run the workflow.\n{message}\n\n")
    sys.exit(1)


def _config_errors():
    """Readable schema errors: one line per problem, naming the config path and the value."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(workflow.basedir, "workflow/schemas/config.schema.yaml").read_text())
    errs = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path))
    lines = []
    for e in errs[:10]:
        where = posixpath.join(*map(str, e.absolute_path)) if e.absolute_path else "(top level)"
        lines.append(f"  config.yaml {where}: {e.message}")
    return "\n".join(lines)


def _validate_config():
    try:
        validate(config, "../schemas/config.schema.yaml")
    except WorkflowError as exc:
        stop("config.yaml is invalid:\n" + (_config_errors() or f"  {exc}") +
             "\n(allowed keys and values: workflow/schemas/config.schema.yaml; see docs/workflow.md)")


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
    for module in ("data.py", "analysis.py", "io.py"):
        p = _package_file(module)
        h.update(p.read_bytes() if p is not None and p.exists() else b"")
    return h.hexdigest()


def _write_snapshots():
    """Load and validate all data, then write one snapshot per outcome (only if changed)."""
    from metapool.analysis import EXTRA_ANALYSES, resolve_spec
    from metapool.data import DataError, load_studies, load_tables
    from metapool.io import dumps_json, write_if_changed

    missing = [f for f in data_files() if not Path(f).exists()]
    if missing:
        stop("data file(s) named in config.yaml not found (relative to "
             f"{os.getcwd()}): {', '.join(missing)}")
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
            stop(f"config.yaml outcomes/{outcome}/analyses: unknown analysis {', '.join(unknown)} "
                 f"(known: {', '.join(sorted(EXTRA_ANALYSES)) or 'none'})")
        # `line` is left out so that inserting a row above another outcome's rows in the same
        # CSV does not change (and re-run) that outcome.
        mine = rows[rows["outcome"].astype(str) == outcome].drop(columns=["line"], errors="ignore")
        mine = mine.dropna(axis=1, how="all")
        status = mine["status"].astype(str).str.lower() if "status" in mine else None
        if mine.empty:
            stop(f"config.yaml outcomes/{outcome}: no data rows with outcome = {outcome!r} in "
                 f"{', '.join(config['tables'])} or extra_studies")
        if status is not None and not status.isin(spec["status"]).any():
            stop(f"config.yaml outcomes/{outcome}: none of its {len(mine)} rows has a status in "
                 f"{spec['status']} (found: {', '.join(sorted(set(status)))}); add the status to "
                 f"outcomes/{outcome}/status to pool them")
        used = studies[studies["study"].astype(str).isin(mine["study"].astype(str))]
        snap = {"outcome": outcome, "spec": spec,
                "rows": mine.astype(object).where(mine.notna(), None).to_dict(orient="records"),
                "studies": used.astype(object).where(used.notna(), None).to_dict(orient="records")}
        write_if_changed(f"{SNAPSHOTS}/{outcome}.json", dumps_json(snap))


def prepare():
    """Write the snapshots unless config and data are unchanged since the last parse."""
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
