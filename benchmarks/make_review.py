"""Write a synthetic review folder: N single-arm proportion outcomes, k studies each, every analysis on.

    python benchmarks/make_review.py DIR [--outcomes 12] [--kmin 5] [--kmax 20] [--seed 1]

DIR gets ``config.yaml``, ``data/raw/studies.csv`` and ``data/raw/proportions.csv``; run it with
``snakemake -s /path/to/Snakefile --directory DIR --cores 2``.  The data are simulated (seeded):
true logit proportions from a normal distribution (mean -0.5, tau 0.4) per outcome, totals 20-120,
events binomial.  Every outcome has FE, REML and the binomial-normal GLMM, and leave-one-out,
cumulative (by year), influence, GOSH, small-study tests with trim-and-fill and a meta-regression on
year; k is drawn uniformly from [kmin, kmax] per outcome.  This is the review of issue 8's cost target
(at most 5 CPU-s per outcome, figures included).
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import yaml

STUDY_COLUMNS = ("study", "label", "author", "year", "design", "disease", "dose_regimen", "regimen", "n",
                 "n_control", "country", "registration", "source", "note")
DATA_COLUMNS = ("study", "outcome", "events", "total", "timepoint", "status", "source", "quote", "note")
SURNAMES = ("Abe", "Berg", "Costa", "Diaz", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen", "Kim",
            "Lopez", "Meyer", "Nagy", "Olsen", "Park", "Quinn", "Rossi", "Sato", "Tanaka")


def make_review(folder, outcomes: int = 12, kmin: int = 5, kmax: int = 20, seed: int = 1) -> Path:
    """Write the review into ``folder``; returns it.  Same arguments, same bytes."""
    if not 1 <= kmin <= kmax <= len(SURNAMES):
        raise ValueError(f"need 1 <= kmin <= kmax <= {len(SURNAMES)}")
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    raw = folder / "data" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    studies = []
    for i, name in enumerate(SURNAMES):
        year = 2000 + i
        studies.append({"study": f"{name}{year}", "label": f"{name} {year}", "author": f"{name} A", "year": year,
                        "design": "single-arm", "disease": "SLE",
                        "dose_regimen": ("0.5 MIU/day", "1 MIU qod")[i % 2], "regimen": "synthetic",
                        "n": int(rng.integers(20, 121)), "n_control": "", "country": "", "registration": "",
                        "source": "synthetic (benchmarks/make_review.py)", "note": ""})
    rows, config_outcomes = [], {}
    for j in range(outcomes):
        key = f"outcome_{j + 1:02d}"
        k = int(rng.integers(kmin, kmax + 1))
        mu = rng.normal(-0.5, 0.4)
        for s in studies[:k]:
            p = 1 / (1 + np.exp(-(mu + rng.normal(0, 0.4))))
            rows.append({"study": s["study"], "outcome": key, "events": int(rng.binomial(s["n"], p)),
                         "total": s["n"], "timepoint": "week 12", "status": "reported",
                         "source": "synthetic", "quote": "", "note": ""})
        config_outcomes[key] = {"label": f"Synthetic outcome {j + 1} (proportion, k = {k})", "measure": "PLO",
                                "methods": ["FE", "REML", "GLMM"]}
    _write_csv(raw / "studies.csv", STUDY_COLUMNS, studies)
    _write_csv(raw / "proportions.csv", DATA_COLUMNS, rows)
    config = {
        "title": f"Synthetic review: {outcomes} proportion outcomes, k = {kmin}-{kmax}",
        "studies": "data/raw/studies.csv",
        "tables": ["data/raw/proportions.csv"],
        "defaults": {
            "methods": ["FE", "REML"], "status": ["reported", "derived", "secondary"],
            "analyses": {"leave_one_out": True, "cumulative": {"order": "year"}, "influence": True,
                         "gosh": True, "small_study": True, "metareg": {"moderators": ["year"]}},
        },
        "outcomes": config_outcomes,
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, width=120))
    return folder


def _write_csv(path: Path, columns, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--outcomes", type=int, default=12)
    ap.add_argument("--kmin", type=int, default=5)
    ap.add_argument("--kmax", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    print(make_review(a.folder, a.outcomes, a.kmin, a.kmax, a.seed))


if __name__ == "__main__":
    main()
