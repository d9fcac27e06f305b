"""End-to-end runs of the Snakemake workflow on the bundled data, in temporary copies of the repo.

Checks: every output exists and the outputs agree with each other; a run with nothing to do
does nothing; adding one inline study re-runs only that outcome (and the report) and changes
only that outcome's pooled result; an invalid data row stops the run with a clear message and
no traceback; the workflow runs against another directory; the reproduction statuses are the
ones documented in docs/workflow.md.
"""
import base64
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import copy_project
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("forest.png", "forest.svg", "funnel.png", "funnel.svg")


def snakemake(cwd: Path, *args, check=True):
    res = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=cwd,
                         capture_output=True, text=True, timeout=600)
    if check and res.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
    return res


def planned_jobs(output: str) -> dict:
    """``{rule: count}`` from the 'Job stats' table of a dry run."""
    m = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal", output, re.S)
    if not m:
        return {}
    return {line.split()[0]: int(line.split()[1]) for line in m.group(1).splitlines() if line.strip()}


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    cwd = copy_project(tmp_path_factory.mktemp("bundled"))
    snakemake(cwd)
    return cwd


def same(a, b) -> bool:
    """Equal numbers, or both missing (NaN in CSV, null in JSON)."""
    missing = [x is None or (isinstance(x, float) and math.isnan(x)) for x in (a, b)]
    if any(missing):
        return all(missing)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def load_pooled(cwd, outcome):
    return json.loads((cwd / "results" / "pooled" / f"{outcome}.json").read_text())


def test_every_output_exists(run_dir, config):
    res = run_dir / "results"
    for o in config["outcomes"]:
        assert (res / "effects" / f"{o}.csv").stat().st_size > 0
        assert (res / "pooled" / f"{o}.json").stat().st_size > 0
        for f in FIGURES:
            assert (res / "figures" / f"{o}_{f}").stat().st_size > 1000, f"{o}_{f}"
        assert (res / "logs" / "analyse_outcome" / f"{o}.log").exists()
    for name in ("summary.csv", "summary.md", "reproduction.csv", "reproduction.md", "report.html"):
        assert (res / name).stat().st_size > 0, name
    assert not [p for p in res.rglob("*") if p.name.endswith(".tmp")], "temporary files left behind"


def test_summary_agrees_with_pooled_json(run_dir, config):
    summary = pd.read_csv(run_dir / "results" / "summary.csv")
    assert set(summary["outcome"]) == set(config["outcomes"])
    for o in config["outcomes"]:
        pooled = load_pooled(run_dir, o)
        assert pooled["outcome"] == o and pooled["label"] == config["outcomes"][o]["label"]
        rows = summary[summary["outcome"] == o]
        assert list(rows["method"]) == [f["method"] for f in pooled["fits"]]
        for (_, row), fit in zip(rows.iterrows(), pooled["fits"]):
            rep = fit["reporting"]
            assert row["k"] == fit["k"]
            for key in ("estimate", "ci_lb", "ci_ub"):
                assert same(row[key], rep[key]), (o, fit["method"], key, row[key], rep[key])


def test_effects_csv_agrees_with_pooled_json(run_dir, config):
    for o in config["outcomes"]:
        pooled = load_pooled(run_dir, o)
        eff = pd.read_csv(run_dir / "results" / "effects" / f"{o}.csv")
        assert list(eff["study"].astype(str)) == pooled["effects"]["study"]
        np.testing.assert_allclose(eff["yi"], pooled["effects"]["yi"], rtol=1e-10)
        weight_cols = [c for c in eff.columns if c.startswith("weight_")]
        assert weight_cols
        for c in weight_cols:
            assert eff[c].sum() == pytest.approx(100.0, abs=1e-6)
        fixed = [f for f in pooled["fits"] if f["method"] in ("FE", "EE")]
        if fixed:   # inverse-variance weights are 1/vi, in percent
            w = 1 / np.asarray(pooled["effects"]["vi"])
            np.testing.assert_allclose(fixed[0]["weights"], 100 * w / w.sum(), rtol=1e-8)


def test_report_embeds_figures_and_covers_every_outcome(run_dir, config):
    html = (run_dir / "results" / "report.html").read_text()
    assert "<script" not in html.lower()
    imgs = re.findall(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html)
    ks = {o: load_pooled(run_dir, o)["effects"]["study"] for o in config["outcomes"]}
    n_funnels = sum(len(s) >= 3 for s in ks.values())     # funnels shown from k = 3 studies
    n_diagnostic = sum(len(load_pooled(run_dir, o)["extras"]["figures"]) for o in config["outcomes"])
    assert len(imgs) == len(config["outcomes"]) + n_funnels + n_diagnostic
    assert all(b"<svg" in base64.b64decode(i)[:1000] for i in imgs)
    for o in config["outcomes"]:
        assert f'id="o-{o}"' in html
    assert html.index("Reproduction of published estimates") < html.index("Results by outcome")
    assert "Methods" in html and "References" in html and "Software" in html
    rep = pd.read_csv(run_dir / "results" / "reproduction.csv")
    for s in rep["status"]:
        assert f"st-{s.replace(' ', '-')}" in html


def test_reproduction_table_covers_every_target(run_dir, config):
    targets = pd.read_csv(ROOT / config["targets"])
    rep = pd.read_csv(run_dir / "results" / "reproduction.csv")
    assert list(rep["target_id"]) == list(targets["target_id"])
    assert set(rep["status"]) <= {"reproduced", "close", "differs", "not reproducible"}
    assert rep["reason"].fillna("").str.len().gt(0).all(), "every status needs a reason"
    computed = rep[rep["status"] != "not reproducible"]
    assert computed["computed_estimate"].notna().all()
    np.testing.assert_allclose(computed["diff_estimate"],
                               computed["computed_estimate"] - computed["published_estimate"])


def documented_statuses() -> dict:
    """``{target_id: status}`` from the reproduction table in docs/workflow.md."""
    text = (ROOT / "docs" / "workflow.md").read_text()
    section = text.split("<!-- reproduction-statuses -->")[1].split("<!-- /reproduction-statuses -->")[0]
    out = {}
    for line in section.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[1] in ("reproduced", "close", "differs", "not reproducible"):
            out[cells[0]] = cells[1]
    return out


def test_reproduction_statuses_are_the_documented_ones(run_dir):
    documented = documented_statuses()
    rep = pd.read_csv(run_dir / "results" / "reproduction.csv")
    assert documented, "docs/workflow.md lists no reproduction statuses"
    assert dict(zip(rep["target_id"], rep["status"])) == documented


def test_inferred_numbers_only_in_the_sensitivity_analysis(run_dir):
    """ln_remission: He 2020 alone in the primary pool, JICR 2019 10/18 (INFERRED) in the
    sensitivity analysis, the 54.8% target reproduced only with it, and the report says so."""
    pooled = load_pooled(run_dir, "ln_remission")
    assert pooled["effects"]["study"] == ["He2020_ARD"]
    sens = pooled["extras"]["inferred_sensitivity"]
    assert sens["status"] == "ok" and [p["study"] for p in sens["added"]] == ["JICR2019_LN"]
    assert all(sorted(f["study"]) == ["He2020_ARD", "JICR2019_LN"] for f in sens["fits"])
    rep = pd.read_csv(run_dir / "results" / "reproduction.csv").set_index("target_id")
    for t in ("IID_remission", "RT_ln_remission"):
        assert rep.loc[t, "k"] == 2
        assert rep.loc[t, "reason"].startswith("reproduced only when the INFERRED JICR2019_LN 10/18 row is "
                                               "included (sensitivity analysis)")
    assert "INFERRED Humrich2022_LUPIL2 34/50" in rep.loc["IID_sri4", "reason"]
    html = (run_dir / "results" / "report.html").read_text()
    sec = html[html.index('id="o-ln_remission"'):html.index('id="o-sri4_wk12"')]
    assert "Sensitivity analysis including inferred numbers:</b> FE: 54.8% (" in sec
    assert "not run: no inferred rows" in html[html.index('id="o-fever"'):]


def test_effects_csv_and_json_keep_ids_and_add_labels(run_dir):
    eff = pd.read_csv(run_dir / "results" / "effects" / "treg_abs.csv")
    pooled = load_pooled(run_dir, "treg_abs")
    assert list(eff["study"]) == pooled["effects"]["study"]
    labels = pooled["extras"]["study_labels"]
    assert list(eff["label"]) == [labels[s] for s in eff["study"]]
    assert labels["FengM2019_IntImmunopharmacol"] == "Feng 2019" and labels["ShanxiRA_ACRabs"] == "Wang 2022"


def test_nothing_to_do_on_second_run(run_dir):
    res = snakemake(run_dir, "-n")
    assert "Nothing to be done" in res.stdout + res.stderr


def test_inline_study_changes_only_its_outcome(run_dir, config, tmp_path):
    cwd = tmp_path / "added"
    shutil.copytree(run_dir, cwd, symlinks=True)
    outcome = next(iter(config["outcomes"]))
    before = {o: (cwd / "results" / "pooled" / f"{o}.json").read_bytes() for o in config["outcomes"]}
    snap = json.loads((cwd / "results" / "data" / f"{outcome}.json").read_text())
    row = {k: v for k, v in snap["rows"][0].items() if v is not None and k not in ("kind", "table", "line")}
    row.update(study="Added2025", status="reported", source="test: inline study")
    studies_csv = cwd / yaml.safe_load((cwd / "config.yaml").read_text())["studies"]
    studies = pd.read_csv(studies_csv, dtype=str, keep_default_na=False)
    new_study = studies[studies["study"] == snap["rows"][0]["study"]].assign(study="Added2025")
    pd.concat([studies, new_study]).to_csv(studies_csv, index=False)   # a new study needs its row
    cfg = yaml.safe_load((cwd / "config.yaml").read_text())
    cfg["extra_studies"] = list(cfg.get("extra_studies") or []) + [row]
    (cwd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    dry = snakemake(cwd, "-n")
    assert planned_jobs(dry.stdout) == {"all": 1, "analyse_outcome": 1, "report": 1}, dry.stdout
    assert f"outcome={outcome}" in dry.stdout

    snakemake(cwd)
    after = {o: (cwd / "results" / "pooled" / f"{o}.json").read_bytes() for o in config["outcomes"]}
    for o in config["outcomes"]:
        if o != outcome:
            assert after[o] == before[o], f"{o} changed"
    new = json.loads(after[outcome])
    assert "Added2025" in new["effects"]["study"]
    assert new["fits"][0]["k"] == json.loads(before[outcome])["fits"][0]["k"] + 1


def test_invalid_data_row_stops_before_any_job(config, tmp_path):
    cwd = copy_project(tmp_path / "bad")
    table = next(t for t in config["tables"] if "events" in pd.read_csv(cwd / t, nrows=1).columns)
    df = pd.read_csv(cwd / table)
    df.loc[1, "events"] = -3
    df.to_csv(cwd / table, index=False)
    res = snakemake(cwd, check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "Traceback" not in out
    assert Path(table).name in out and "events" in out and "-3" in out
    assert not (cwd / "results" / "pooled").exists()


def test_runs_against_another_directory(tmp_path):
    review = copy_project(tmp_path / "myreview")
    for part in ("Snakefile", "workflow", "scripts"):   # the review holds only config + data
        p = review / part
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    res = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
                          "myreview", "--cores", "2", "-n"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (review / "results" / "data").is_dir()
    assert not (tmp_path / "results").exists()


def test_unknown_extra_analysis_stops_before_any_job(config, tmp_path):
    cwd = copy_project(tmp_path / "unknown")
    cfg = yaml.safe_load((cwd / "config.yaml").read_text())
    first = next(iter(cfg["outcomes"]))
    cfg["outcomes"][first]["analyses"] = {"no_such_analysis": True}
    (cwd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = snakemake(cwd, "-n", check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "Traceback" not in out
    assert f"outcomes/{first}/analyses" in out and "no_such_analysis" in out
