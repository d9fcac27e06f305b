"""The README's instructions, followed literally.

The code blocks of README.md are read from the file itself, so an edit to the README that breaks
a step breaks this test: "Adding a study" (the inline row, the studies.csv line, the CSV route),
the profiles, and the command-line examples.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, copy_project, run_snakemake

from metapool.workflow import load_project

README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(section: str) -> list:
    """The fenced code blocks of one ``## section`` of the README, as (language, text)."""
    start = README.index(f"## {section}")
    end = README.find("\n## ", start + 1)
    body = README[start:end if end > 0 else None]
    return re.findall(r"```(\w*)\n(.*?)```", body, re.S)


def add_study_as_the_readme_says(project: Path, route: str = "inline") -> None:
    (_, inline), (_, study_line), (_, csv_rows) = [b for b in blocks("Adding a study") if b[0] in ("yaml", "")][:3]
    cfg_path = project / "config.yaml"
    with open(project / "data/raw/studies.csv", "a", encoding="utf-8") as fh:
        fh.write(study_line)
    if route == "inline":
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["extra_studies"] = (cfg.get("extra_studies") or []) + yaml.safe_load(inline)["extra_studies"]
    else:
        (project / "data/raw/example.csv").write_text(csv_rows)
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["tables"].append("data/raw/example.csv")
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False, width=200, allow_unicode=True))


@pytest.mark.parametrize("route", ["inline", "csv"])
def test_adding_a_study_as_the_readme_says_is_accepted(tmp_path, route):
    project = copy_project(tmp_path / "p", parts=("config.yaml", "data"))
    before = load_project(project)
    add_study_as_the_readme_says(project, route)
    plan = load_project(project)
    changed = [o for o in plan.outcomes if plan.snapshots[o] != before.snapshots[o]]
    assert changed == ["ln_remission"]
    assert "Example2025" in plan.snapshots["ln_remission"]


@pytest.mark.slow
def test_after_adding_a_study_a_dry_run_lists_only_its_outcome_and_the_report(bundled_run, tmp_path):
    project = tmp_path / "p"
    shutil.copytree(bundled_run, project, symlinks=True)
    add_study_as_the_readme_says(project)
    res = run_snakemake(project, "-n")
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", res.stdout, re.M))
    assert jobs.get("analyse_outcome") == "1" and jobs.get("report") == "1", res.stdout[-2000:]
    assert "outcome=ln_remission" in res.stdout.replace(" ", "").replace("wildcards:", "")


@pytest.mark.slow
def test_the_profiles_in_the_readme_plan_the_workflow(tmp_path):
    project = copy_project(tmp_path / "p")
    for _, text in blocks("Running at scale"):
        for line in text.splitlines():
            command = line.split("#")[0].strip()
            if command.startswith("snakemake --workflow-profile workflow/profiles/default"):
                res = subprocess.run([sys.executable, "-m", *command.split(), "-n"], cwd=project,
                                     capture_output=True, text=True, timeout=300)
                assert res.returncode == 0, res.stderr[-3000:]
                assert "analyse_outcome" in res.stdout
                return
    pytest.fail("no local-profile command in the README's 'Running at scale' section")


@pytest.mark.parametrize("table", ["a three-study table", "the bundled data/raw/proportions.csv"])
def test_the_command_line_examples_run(tmp_path, capsys, table):
    """Each `metapool` line of the README's "Command line" section, on a plain table and on the
    bundled multi-outcome table (pool: every outcome, k = 1 ones included; audit: --outcome)."""
    from metapool.cli import main

    (_, text), = [b for b in blocks("Command line") if b[0] == ""]
    if table.startswith("a three"):
        data, extra = tmp_path / "DATA.csv", []
        data.write_text("study,events,total\nHe 2020,16,29\nLUPIL-2,34,50\nHe 2016,36,40\n")
    else:
        data, extra = ROOT / "data/raw/proportions.csv", ["--outcome", "sri4_wk12"]
    for line in text.splitlines():
        words = re.sub(r"\[[^\]]*\]", "", line).split()          # drop the optional [...] parts
        assert words[0] == "metapool"
        words = [str(data) if w == "DATA.csv" else w for w in words[1:]]
        if words[0] == "audit":
            words += ["--format", "json", "--no-glmm", *extra]
        code = main(words)
        out, err = capsys.readouterr()
        assert code == 0, err
        assert out.strip()
