# metapool: meta-analysis of the bundled low-dose IL-2 evidence (or your own review).
#
#   snakemake --cores 4                                         # this repository
#   snakemake -s /path/to/Snakefile --directory myreview --cores 4   # myreview/config.yaml -> myreview/results
#
# The config is validated against workflow/schemas/config.schema.yaml and every data table is
# validated before any job runs; one branch of jobs per outcome ({outcome} wildcard), one report job.
# Documentation: docs/workflow.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/pool.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
