# metapool: meta-analysis of the bundled low-dose IL-2 evidence (or your own review).
#
#   snakemake --cores 4                                              # this repository
#   snakemake -s /path/to/Snakefile --directory myreview --cores 4   # myreview/config.yaml -> myreview/results
#   snakemake --profile workflow/profiles/slurm                      # the same on a SLURM cluster
#
# While Snakemake parses this file, config.yaml and every table it names are read and checked
# (metapool.workflow.make_plan); a problem stops the run before any job, with file, line, column
# and value, and nothing is written.  Then one `analyse_outcome` job per outcome and one `report`
# job run.  Documentation: docs/workflow.md; architecture: docs/architecture.md.
from snakemake.utils import min_version

min_version("9.0")


include: "workflow/rules/common.smk"
include: "workflow/rules/outcome.smk"
include: "workflow/rules/report.smk"


localrules:
    all,


rule all:
    default_target: True
    input:
        all_outputs(),
