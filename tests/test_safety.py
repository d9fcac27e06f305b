"""Safety of what the workflow reads and writes.

* Study names, outcome labels and the title with HTML/Markdown special characters are escaped
  in report.html and in summary.md / reproduction.md; CSV cells that start with =, +, - or @
  cannot act as spreadsheet formulas (a full run on a small config).
* config.yaml is loaded safely: a ``!!python/...`` tag or a YTE template (``__use_yte__``)
  stops the run with a located message and executes nothing.
* No path in the config can make the pipeline read from or write outside the working directory.
"""
from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_PARTS, copy_project, keep_only_outcomes
import yaml

from metapool.config import ConfigError, config_paths, path_problem, read_config

ROOT = Path(__file__).resolve().parents[1]
EVIL = "<script>alert(1)</script> | *x*"
FORMULAS = ('=HYPERLINK("http://evil.example","x")', "@SUM(A1:A9)", "-2+3")
FORMULA_START = ("=", "+", "-", "@")
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?inf$")


def snakemake(cwd: Path, *args, dry=False):
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *(["-n"] if dry else []), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)


def rename_study(project: Path, old: str, new: str):
    """Rename a study key (and its display label) in the study table and every outcome table."""
    for f in (project / "data" / "raw").glob("*.csv"):
        rows = list(csv.reader(io.StringIO(f.read_text(encoding="utf-8"), newline="")))
        if "study" not in rows[0]:
            continue
        i = rows[0].index("study")
        j = rows[0].index("label") if "label" in rows[0] else None     # the study table's display label
        for r in rows[1:]:
            if r[i] == old:
                r[i] = new
                if j is not None:
                    r[j] = new
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        f.write_text(buf.getvalue(), encoding="utf-8")


# --------------------------------------------------------------------------- escaping
@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """A run whose study names, labels, notes and title are made of markup and formulas."""
    cwd = copy_project(tmp_path_factory.mktemp("safety") / "p")
    cfg = yaml.safe_load((cwd / "config.yaml").read_text())
    keep = ["ln_remission", "sri4_wk12", "injection_site"]
    keep_only_outcomes(cfg, keep, cwd)
    for o in keep:                      # every renamed study enters the results
        cfg["outcomes"][o]["status"] = ["reported", "derived", "secondary", "inferred"]
    cfg["title"] = f"Review {EVIL} & <b>bold</b>"
    cfg["outcomes"]["ln_remission"]["label"] = f"Remission {EVIL}"
    cfg["outcomes"]["sri4_wk12"]["label"] = "=cmd|' /C calc'!A0"
    cfg["outcomes"]["ln_remission"]["note"] = "<img src=x onerror=alert(2)> [link](javascript:alert(3))"
    (cwd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, width=200))
    rename_study(cwd, "He2020_ARD", EVIL)
    for old, new in zip(("JICR2019_LN", "He2016_NatMed", "Humrich2022_LUPIL2"), FORMULAS):
        rename_study(cwd, old, new)
    res = snakemake(cwd, "--quiet")
    assert res.returncode == 0, res.stdout + res.stderr
    return cwd


@pytest.mark.slow
def test_html_report_escapes_data_text(hostile_run):
    html = (hostile_run / "results" / "report.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html        # the name is shown, as text
    assert "<script>alert(1)" not in html
    assert "<img src=x" not in html and "<b>bold</b>" not in html
    assert "&lt;b&gt;bold&lt;/b&gt; " in html or "&lt;b&gt;bold&lt;/b&gt;<" in html


def test_markdown_table_cells_are_escaped():
    import pandas as pd

    from metapool.tables import to_markdown

    md = to_markdown(pd.DataFrame({"study": [EVIL, "ln_remission"], "k": [1, 2]}))
    assert r"| \<script\>alert(1)\</script\> \| \*x\* | 1 |" in md
    assert "| ln_remission | 2 |" in md                 # '_' inside a word is left alone


@pytest.mark.slow
def test_summary_markdown_has_no_raw_markup(hostile_run):
    md = (hostile_run / "results" / "summary.md").read_text()
    assert "<script>" not in md and "*x*" not in md


@pytest.mark.slow
def test_reproduction_markdown_escapes_study_names(hostile_run):
    md = (hostile_run / "results" / "reproduction.md").read_text()
    assert "<script>" not in md and "*x*" not in md
    assert r"\<script\>alert(1)\</script\> \| \*x\*" in md


@pytest.mark.slow
def test_csv_cells_cannot_be_formulas(hostile_run):
    files = sorted((hostile_run / "results").glob("*.csv")) + sorted(
        (hostile_run / "results" / "effects").glob("*.csv"))
    seen = set()
    for f in files:
        for row in csv.reader(io.StringIO(f.read_text(), newline="")):
            for cell in row:
                assert not (cell.startswith(FORMULA_START) and not NUMBER.match(cell)), (f.name, cell)
                seen |= {x for x in FORMULAS if cell == "'" + x}
    assert seen == set(FORMULAS), seen


# --------------------------------------------------------------------------- YAML
UNSAFE = {
    "apply": 'title: !!python/object/apply:os.system ["touch PWNED"]\n',
    "name": "title: !!python/name:os.system\n",
    "object": "title: !!python/object:pathlib.Path {}\n",
    "yte": '__use_yte__: true\ntitle: ?__import__("os").system("touch PWNED")\n',
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_read_config_refuses_code(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text(UNSAFE[case] + "studies: s.csv\n")
    with pytest.raises(ConfigError) as err:
        read_config("config.yaml")
    assert "config.yaml, line" in str(err.value)
    assert "refused" in str(err.value) or "runs Python code" in str(err.value)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["apply", "yte"])
def test_workflow_never_executes_config_code(tmp_path, case):
    cwd = copy_project(tmp_path / "p")
    text = (cwd / "config.yaml").read_text()
    (cwd / "config.yaml").write_text(UNSAFE[case] + re.sub(r"(?m)^title:.*\n", "", text))
    res = snakemake(cwd, dry=True)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "Traceback" not in out
    assert "ConfigError: config.yaml, line" in out
    assert not (cwd / "PWNED").exists()


def test_yaml_merge_keys_are_not_duplicates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text("base: &b {measure: PR, label: x}\no: {<<: *b, measure: PLO}\n")
    assert read_config("c.yaml")["o"] == {"measure": "PLO", "label": "x"}


# --------------------------------------------------------------------------- paths
@pytest.mark.parametrize("value, ok", [
    ("data/raw/x.csv", True), ("./data/x.csv", True), ("data/../data/x.csv", True),
    ("/etc/passwd", False), ("~/x.csv", False), ("../x.csv", False), ("data/../../x.csv", False),
    ("C:\\data\\x.csv", False), ("..\\x.csv", False), ("", False), (3, False),
])
def test_path_rule(value, ok):
    assert (path_problem(value) is None) == ok


def test_every_path_key_is_checked():
    cfg = {"studies": "s.csv", "tables": ["a.csv", "b.csv"], "targets": "t.csv", "title": "/not/a/path",
           "outcomes": {"o": {"label": "/x", "analyses": {"metareg": {"moderators_file": "../m.csv"}}}},
           "extra_studies": [{"source": "/x"}]}
    found = {"/".join(map(str, k)): v for k, v in config_paths(cfg)}
    assert found == {"studies": "s.csv", "tables/0": "a.csv", "tables/1": "b.csv", "targets": "t.csv",
                     "outcomes/o/analyses/metareg/moderators_file": "../m.csv"}


@pytest.mark.slow
@pytest.mark.parametrize("key, value, expect", [
    ("studies", "/etc/passwd", "absolute paths"),
    ("targets", "../outside.csv", "'..' must not lead out"),
    ("tables", ["data/raw/proportions.csv", "data/../../outside.csv"], "'..' must not lead out"),
    ("targets", "~/outside.csv", "absolute paths"),
])
def test_paths_outside_the_working_directory_are_refused(tmp_path, key, value, expect):
    cwd = copy_project(tmp_path / "p")
    (tmp_path / "outside.csv").write_text((cwd / "data/raw/published_targets.csv").read_text())
    cfg = yaml.safe_load((cwd / "config.yaml").read_text())
    cfg[key] = value
    (cwd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, width=200))
    res = snakemake(cwd, dry=True)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "Traceback" not in out, out
    assert "ConfigError: config.yaml, line" in out and f"key {key}" in out and expect in out, out


@pytest.mark.slow
def test_outcome_key_cannot_name_a_path(tmp_path):
    cwd = copy_project(tmp_path / "p")
    cfg = yaml.safe_load((cwd / "config.yaml").read_text())
    cfg["outcomes"]["../../evil"] = {"label": "x", "measure": "PR"}
    (cwd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, width=200))
    res = snakemake(cwd, dry=True)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "Traceback" not in out and "../../evil" in out, out
    assert not (tmp_path / "evil.json").exists()


@pytest.mark.slow
def test_a_run_writes_only_inside_the_working_directory(hostile_run):
    """Everything the run created is under results/ or .snakemake/ (or is the copied project)."""
    parent = hostile_run.parent
    assert sorted(p.name for p in parent.iterdir()) == ["p"]
    created = {p.relative_to(hostile_run).parts[0] for p in hostile_run.rglob("*")}
    assert created <= set(PROJECT_PARTS) | {"results", ".snakemake"}, created
