# Read and check config.yaml and every table it names; make the plan the rules run.
# Runs while Snakemake parses the workflow: nothing is written here, and a problem stops the run
# before any job with one located message (no traceback).
#
# The package next to this workflow is used (at parse time and by every job), so the code that
# checks the input is the code that analyses it; no install of the package is needed for the jobs.
import sys
from pathlib import Path

_ROOT = Path(str(workflow.current_basedir)).resolve().parents[1]   # this workflow's folder (also as a module)
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from snakemake.utils import update_config  # noqa: E402

from metapool.config import ConfigError, read_config, schema_problems  # noqa: E402
from metapool.data import DataError  # noqa: E402
from metapool.workflow import RESULTS, code_fingerprint, make_plan  # noqa: E402

# Used as a module (`module review: snakefile: ... prefix: "review"`), the review folder is the
# prefix: its config.yaml (when the module gets `config: {}`) and data paths are read from there.
PREFIX = getattr(workflow.modifier.path_modifier, "prefix", None) or ""
REVIEW = Path(PREFIX) if PREFIX else Path(".")


def stop(message):
    """End the run before any job with a message and no traceback."""
    sys.stderr.write(f"\nmetapool: cannot run the workflow.\n{message}\n\n")
    sys.exit(1)


# config.yaml is read here, with a safe and strict YAML reader, instead of by a `configfile:`
# directive: Snakemake's own loader resolves !!python tags, runs YTE templates, keeps the last of two
# equal keys and reports errors without a line number.  Precedence is Snakemake's: config.yaml, then
# --configfile files, then --config values.
CONFIG_FILES = list(dict.fromkeys(str(f) for f in (workflow.overwrite_configfiles or [])))
for _extra in CONFIG_FILES:
    # --configfile files were already loaded by Snakemake's own loader; the same strict, located
    # checks as config.yaml (duplicate keys, YAML errors, tags, sizes) apply to them here
    try:
        read_config(_extra)
    except ConfigError as exc:
        stop(f"ConfigError: {exc}")
if not workflow.modifier.skip_configfile:
    if Path("config.yaml").exists() or not workflow.overwrite_configfiles:
        try:
            update_config(config, read_config("config.yaml"))
        except ConfigError as exc:
            stop(f"ConfigError: {exc}")
        update_config(config, workflow.config_settings.overwrite_config or {})
        CONFIG_FILES = ["config.yaml", *CONFIG_FILES]
elif not config:
    # used as a module with `config: {}`: the review folder's own config.yaml
    try:
        config.update(read_config(str(REVIEW / "config.yaml")))
    except ConfigError as exc:
        stop(f"ConfigError: {exc}")
    CONFIG_FILES = [str(REVIEW / "config.yaml")]
CONFIG_FILES = CONFIG_FILES or ["config.yaml"]


def _plan():
    """Validate against the schema (generated from metapool/registry.py), then plan; any problem
    stops here with the located message."""
    import json

    schema = json.loads("".join(l for l in (_ROOT / "workflow/schemas/config.schema.yaml").read_text()
                                .splitlines(keepends=True) if not l.startswith("#")))
    problems = schema_problems(config, schema, CONFIG_FILES)
    if problems:
        listed = "\n".join(f"ConfigError: {p}" for p in problems)
        stop(f"config.yaml is invalid:\n{listed}\n(allowed keys and values: "
             "workflow/schemas/config.schema.yaml, generated from metapool/registry.py; see docs/workflow.md)")
    try:
        return make_plan(config, CONFIG_FILES, REVIEW)
    except (ConfigError, DataError) as exc:
        stop(f"{type(exc).__name__}: {exc}")


PLAN = _plan()
OUTCOMES = PLAN.outcomes
# Each job reruns when the package modules it imports change (Snakemake's params trigger).
CODE = {rule: code_fingerprint(_ROOT / "metapool", f"jobs.{rule}") for rule in ("analyse_outcome", "report")}


wildcard_constraints:
    outcome="|".join(OUTCOMES) or "[A-Za-z0-9_]+",


def all_outputs():
    """Every file the workflow makes."""
    files = []
    for o in OUTCOMES:
        files += [f"{RESULTS}/effects/{o}.csv", f"{RESULTS}/pooled/{o}.json", f"{RESULTS}/figures/{o}"]
    return files + list(REPORT_OUTPUTS.values()) + AUDIT_OUTPUTS


REPORT_OUTPUTS = {
    "summary_csv": f"{RESULTS}/summary.csv",
    "summary_md": f"{RESULTS}/summary.md",
    "reproduction_csv": f"{RESULTS}/reproduction.csv",
    "reproduction_md": f"{RESULTS}/reproduction.md",
    "html": f"{RESULTS}/report.html",
}
AUDIT_OUTPUTS = [f"{RESULTS}/audit/{t}.json" for t in PLAN.target_ids()]
