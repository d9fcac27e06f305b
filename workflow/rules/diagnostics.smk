# Helpers of the diagnostic figures (pool.smk, report.smk): which figure kinds exist, and the
# report's input function that reads from each outcome's pooled result which figures apply.

DIAGNOSTIC_KINDS = ("loo", "cumulative", "influence", "baujat", "gosh", "bubble")


def diagnostic_figures(wildcards):
    """The diagnostic figures (SVG) of every outcome, read from its pooled result."""
    files = []
    for outcome in OUTCOMES:
        pooled = checkpoints.analyse_outcome.get(outcome=outcome).output.pooled
        with open(pooled) as fh:
            kinds = json.load(fh).get("extras", {}).get("figures", [])
        files += [f"{RESULTS}/figures/{outcome}_{kind}.svg" for kind in kinds]
    return files
