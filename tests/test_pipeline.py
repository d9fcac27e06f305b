"""The Snakemake workflow end to end, in temporary copies of the project (subprocess runs).

Most of the workflow's logic is tested in-process (tests/test_analysis.py, test_hostile_input.py,
test_report.py); these tests check what only a real run shows: every output exists and the outputs
agree with each other; no process is left behind; a run with nothing to do does nothing; a dry run
writes nothing; adding one inline study reruns only its outcome and the report; editing a package
module reruns exactly the jobs that import it; the workflow runs against another directory and as a
module (two reviews in one DAG); two runs give byte-identical results and a killed run restarts to
them.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import copy_project, keep_only_outcomes, run_snakemake

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def planned_jobs(output: str) -> dict:
    """``{rule: count}`` from the 'Job stats' table of a dry run."""
    m = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal", output, re.S)
    if not m:
        return {}
    return {line.split()[0]: int(line.split()[1]) for line in m.group(1).splitlines() if line.strip()}


def tree(folder: Path, skip=(".snakemake",)) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not set(skip) & set(p.relative_to(folder).parts) and "__pycache__" not in p.parts}


def results(folder: Path) -> dict:
    """Every result file's bytes, without logs and benchmarks (they hold times)."""
    return {k: v for k, v in tree(folder / "results").items() if not k.startswith(("logs", "benchmarks"))}


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def same(a, b) -> bool:
    missing = [x is None or x == "" or (isinstance(x, float) and math.isnan(x)) for x in (a, b)]
    if any(missing):
        return all(missing)
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def read_csv(path: Path) -> list:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


# --------------------------------------------------------------------------- one full run
def test_every_output_exists(bundled_run, config):
    from metapool.workflow import load_project

    plan = load_project(bundled_run)
    for o in config["outcomes"]:
        for rel in (f"effects/{o}.csv", f"pooled/{o}.json"):
            assert (bundled_run / "results" / rel).stat().st_size > 0, rel
        for kind in plan.figures[o]:
            for ext in ("png", "svg"):
                assert (bundled_run / "results/figures" / o / f"{kind}.{ext}").stat().st_size > 0
        drawn = {p.stem for p in (bundled_run / "results/figures" / o).glob("*.png")}
        assert drawn == set(plan.figures[o]), o                  # no figure beyond the plan
    for name in ("summary.csv", "summary.md", "reproduction.csv", "reproduction.md", "report.html"):
        assert (bundled_run / "results" / name).stat().st_size > 0
    for t in plan.target_ids():
        audit = json.loads((bundled_run / "results/audit" / f"{t}.json").read_text())
        assert audit["target"]["target_id"] == t
    assert not list((bundled_run / "results").rglob("*.tmp"))
    assert "funnel" not in plan.figures["fever"]                 # k = 1: no funnel plot


def test_summary_agrees_with_pooled_json(bundled_run, config):
    rows = read_csv(bundled_run / "results/summary.csv")
    for o in config["outcomes"]:
        pooled = json.loads((bundled_run / f"results/pooled/{o}.json").read_text())
        mine = [r for r in rows if r["outcome"] == o]
        assert [r["method"] for r in mine] == [f["method"] for f in pooled["fits"]]
        for r, f in zip(mine, pooled["fits"]):
            for key in ("estimate", "ci_lb", "ci_ub"):
                assert same(r[key], f["reporting"][key]), (o, key)
            assert same(r["se"], f["se"])
            if f["k"] == 1:                                        # no heterogeneity for one study
                assert r["I2"] == r["Q"] == r["tau2"] == ""


def test_effects_csv_agrees_with_pooled_json_and_uses_labels(bundled_run, config):
    for o in config["outcomes"]:
        pooled = json.loads((bundled_run / f"results/pooled/{o}.json").read_text())
        rows = [r for r in read_csv(bundled_run / f"results/effects/{o}.csv") if r["pooled"] == "True"]
        assert [r["study"] for r in rows] == pooled["effects"]["study"]
        for r, y in zip(rows, pooled["effects"]["yi"]):
            assert same(r["yi"], y)
        assert all(r["label"] == pooled["study_labels"][r["study"]] for r in rows)


def test_reproduction_table_has_the_issue_columns_and_every_target(bundled_run):
    from metapool.reproduce import STATUSES

    rows = read_csv(bundled_run / "results/reproduction.csv")
    for col in ("target_id", "paper", "outcome", "published_estimate", "published_ci_lb", "published_ci_ub",
                "computed_estimate", "computed_ci_lb", "computed_ci_ub", "model", "studies",
                "evidence_statuses", "difference_units", "status", "duplicate_of", "reason", "missing"):
        assert col in rows[0], col
    targets = read_csv(bundled_run / "data/raw/published_targets.csv")
    assert [r["target_id"] for r in rows] == [t["target_id"] for t in targets]
    assert {r["status"] for r in rows} <= set(STATUSES)
    by = {r["target_id"]: r for r in rows}
    # 54.8% matches only with the inferred JICR denominator: never called plainly "reproduced"
    assert by["IID_remission"]["status"] == "reproduced_with_inferred"
    assert by["RT_ln_remission"]["duplicate_of"] == "IID_remission"
    for r in rows:
        assert len(r["reason"]) < 400 and len(r["missing"]) < 300, r["target_id"]


def test_inferred_numbers_only_in_the_sensitivity_analysis(bundled_run, config):
    for o, spec in config["outcomes"].items():
        pooled = json.loads((bundled_run / f"results/pooled/{o}.json").read_text())
        statuses = {p["status"] for p in pooled["provenance"] if p["pooled"]}
        if "inferred" not in spec.get("status", config["defaults"]["status"]):
            assert "inferred" not in statuses, o


def test_report_covers_every_outcome_and_target(bundled_run, config):
    html = (bundled_run / "results/report.html").read_text()
    for o in config["outcomes"]:
        assert f'id="o-{o}"' in html
    for t in read_csv(bundled_run / "data/raw/published_targets.csv"):
        assert t["target_id"] in html
    assert len(html.encode()) < 2_000_000


def test_snakemake_native_report_works(bundled_run, tmp_path):
    """`snakemake --report` (Snakemake's own report: figures, tables, code, rule graph) from a run."""
    out = tmp_path / "snakemake_report.html"
    res = run_snakemake(bundled_run, "--report", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    html = out.read_text(encoding="utf-8", errors="replace")
    assert "summary.csv" in html and "reproduction.csv" in html and "analyse_outcome" in html


def test_no_process_is_left_behind(bundled_run):
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(bundled_run) not in out


# --------------------------------------------------------------------------- reruns
@pytest.fixture
def fresh(bundled_run, tmp_path) -> Path:
    """A copy of the finished bundled run (results and .snakemake metadata included)."""
    dest = tmp_path / "copy"
    shutil.copytree(bundled_run, dest, symlinks=True)
    return dest


def test_nothing_to_do_and_a_dry_run_writes_nothing(fresh):
    before = tree(fresh)
    res = run_snakemake(fresh, "-n")
    assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr
    assert tree(fresh) == before                      # a dry run writes nothing (outside .snakemake)
    res = run_snakemake(fresh, "-q")
    assert res.returncode == 0 and results(fresh) == {k[len("results/"):]: v for k, v in before.items()
                                                       if k.startswith("results/") and not
                                                       k.startswith(("results/logs", "results/benchmarks"))}


def test_inline_study_reruns_only_its_outcome_and_the_report(fresh):
    before = results(fresh)
    cfg = yaml.safe_load((fresh / "config.yaml").read_text())
    cfg["extra_studies"] = [{"study": "He2016_NatMed", "outcome": "ln_remission", "events": 9, "total": 20,
                             "status": "reported", "source": "Example A et al. Lupus 2025;34:1-9, Table 2"}]
    (fresh / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, width=200, allow_unicode=True))
    dry = run_snakemake(fresh, "-n")
    assert planned_jobs(dry.stdout) == {"all": 1, "analyse_outcome": 1, "report": 1}, dry.stdout[-2000:]
    assert "outcome=ln_remission" in dry.stdout
    assert run_snakemake(fresh, "-q").returncode == 0
    after = results(fresh)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed and all(k.startswith(("pooled/ln_remission", "effects/ln_remission", "figures/ln_remission",
                                         "summary", "reproduction", "report", "audit/")) for k in changed), changed


@pytest.mark.parametrize("module, expect", [
    ("report.py", {"all": 1, "report": 1}),
    ("plots/forest.py", {"all": 1, "report": 1, "analyse_outcome": "all"}),
    ("audit.py", {"all": 1, "report": 1, "analyse_outcome": "all"}),
])
def test_an_edit_to_a_package_module_reruns_the_jobs_that_import_it(fresh, config, module, expect):
    with open(fresh / "metapool" / module, "a") as fh:
        fh.write("\n# an edit\n")
    jobs = planned_jobs(run_snakemake(fresh, "-n").stdout)
    want = {k: (len(config["outcomes"]) if v == "all" else v) for k, v in expect.items()}
    assert jobs == want


def test_runs_against_another_directory(tmp_path):
    review = tmp_path / "myreview"
    copy_project(review, parts=("config.yaml", "data"))
    cfg = yaml.safe_load((review / "config.yaml").read_text())
    cfg["outcomes"] = {k: cfg["outcomes"][k] for k in ("injection_site", "sae_rr")}
    cfg["ignore_outcomes"] = []
    cfg["tables"] = ["data/raw/proportions.csv", "data/raw/two_arm.csv"]
    cfg.pop("targets")
    keep = {"injection_site", "sae_rr"}
    for t in cfg["tables"]:                                  # only the rows of the two outcomes
        rows = read_csv(review / t)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(r for r in rows if r["outcome"] in keep)
        (review / t).write_text(buf.getvalue())
    (review / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, width=200, allow_unicode=True))
    res = run_snakemake(tmp_path, "-s", str(ROOT / "Snakefile"), "--directory", str(review), "-q")
    assert res.returncode == 0, res.stderr[-3000:]
    assert (review / "results/pooled/sae_rr.json").exists() and (review / "results/report.html").exists()


def test_two_reviews_as_modules_in_one_dag(tmp_path):
    """`module ... prefix:` (many reviews in one DAG): each review folder keeps its own config and
    data, and gets its own results."""
    for name, outcomes in (("review_a", ("injection_site",)), ("review_b", ("sae_rr", "fever"))):
        d = tmp_path / name
        copy_project(d, parts=("config.yaml", "data"))
        cfg = keep_only_outcomes(yaml.safe_load((d / "config.yaml").read_text()), outcomes, d)
        (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, width=200, allow_unicode=True))
    (tmp_path / "Snakefile").write_text(f'''
module review_a:
    snakefile: "{ROOT / 'Snakefile'}"
    config: {{}}
    prefix: "review_a"

use rule * from review_a as review_a_*

module review_b:
    snakefile: "{ROOT / 'Snakefile'}"
    config: {{}}
    prefix: "review_b"

use rule * from review_b as review_b_*

rule all:
    default_target: True
    input:
        rules.review_a_all.input,
        rules.review_b_all.input,
''')
    res = run_snakemake(tmp_path, "-q")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert json.loads((tmp_path / "review_a/results/pooled/injection_site.json").read_text())["outcome"] == "injection_site"
    assert (tmp_path / "review_b/results/pooled/sae_rr.json").exists()
    assert not (tmp_path / "review_a/results/pooled/sae_rr.json").exists()
    assert (tmp_path / "review_b/results/report.html").exists()


# --------------------------------------------------------------------------- reproducibility
def test_two_runs_give_identical_bytes_and_a_killed_run_restarts_to_them(bundled_run, tmp_path):
    project = copy_project(tmp_path / "k")
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=project,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((project / "results/pooled").glob("*.json"))
                                             if (project / "results/pooled").exists() else []) < 5:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert run_snakemake(project, "--unlock").returncode == 0
    res = run_snakemake(project, "--rerun-incomplete", "-q")
    assert res.returncode == 0, res.stderr[-3000:]
    assert not list((project / "results").rglob(".*.tmp"))
    assert results(project) == results(bundled_run)
