# metapool: meta-analysis of the bundled low-dose IL-2 evidence (or your own review).
#
#   snakemake --cores 4                                         # this repository
#   snakemake -s /path/to/Snakefile --directory myreview --cores 4   # myreview/config.yaml -> myreview/results
#
# The config is validated against workflow/schemas/config.schema.yaml and every data table is
# validated before any job runs; one branch of jobs per outcome ({outcome} wildcard), one report job.
# Documentation: docs/workflow.md.
import importlib.util
import os
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

# Snakemake's own config loader reports a YAML error without its line and is not a safe loader
# (it resolves !!python tags and runs YTE templates), so config.yaml is first read safely by
# metapool/config.py, loaded as a file to keep a run with nothing to do fast (the package
# imports numpy).  A problem stops the run here with file, line and column.
_checks_file = Path(workflow.basedir, "metapool", "config.py")
if not _checks_file.exists():
    _checks_file = Path(importlib.util.find_spec("metapool").submodule_search_locations[0], "config.py")
_checks_spec = importlib.util.spec_from_file_location("_metapool_config", _checks_file)
CONFIG_CHECKS = importlib.util.module_from_spec(_checks_spec)
_checks_spec.loader.exec_module(CONFIG_CHECKS)
if os.path.exists("config.yaml") or not workflow.overwrite_configfiles:
    try:
        CONFIG_CHECKS.read_config("config.yaml")
    except CONFIG_CHECKS.ConfigError as exc:
        sys.stderr.write(f"\nmetapool: cannot run the workflow.\nConfigError: {exc}\n\n")
        sys.exit(1)


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/pool.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
