"""Every way a hand-made CSV or config.yaml goes wrong stops the workflow before any job runs.

Each case edits a temporary copy of the project (config.yaml, data/) and runs the checks the
workflow runs while Snakemake parses it (:func:`metapool.workflow.load_project`, in-process), then
asserts that the message names the file, the line as an editor shows it, the column (or config
key), the value and what is allowed.  A few cases at the end run Snakemake itself to show that the
same message stops a real run before any job, without a traceback, and leaves earlier results
untouched.  The table of these messages is in the README.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import copy_project
import yaml


ROOT = Path(__file__).resolve().parents[1]
PROP = "data/raw/proportions.csv"
TWO = "data/raw/two_arm.csv"
PRE = "data/raw/prepost.csv"
STUDIES = "data/raw/studies.csv"


# --------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("base"))


@pytest.fixture
def project(base, tmp_path) -> Path:
    dest = tmp_path / "p"
    shutil.copytree(base, dest)
    return dest


def run(cwd: Path, *args, dry=True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", *(["-n"] if dry else []), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def read_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))


def write_rows(path: Path, rows, delimiter=",", bom=False):
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows(rows)
    path.write_text(("\ufeff" if bom else "") + buf.getvalue(), encoding="utf-8")


def set_cell(project: Path, rel: str, row: int, column: str, value: str) -> int:
    """Set data row ``row`` (0-based), ``column`` of a CSV; return its line as an editor shows it."""
    rows = read_rows(project / rel)
    rows[row + 1][rows[0].index(column)] = value
    write_rows(project / rel, rows)
    return row + 2          # header is line 1; the bundled files have one record per line


def edit_config(project: Path, func):
    cfg = yaml.safe_load((project / "config.yaml").read_text())
    func(cfg)
    (project / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, width=200))


def config_line(project: Path, text: str) -> int:
    """Line (from 1) of the first line of config.yaml containing ``text``."""
    for i, line in enumerate((project / "config.yaml").read_text().splitlines(), start=1):
        if text in line:
            return i
    raise AssertionError(f"{text!r} not in config.yaml")


def check(project: Path) -> str:
    """The message the workflow would stop with ('' when the project passes)."""
    from metapool.config import ConfigError
    from metapool.data import DataError
    from metapool.workflow import load_project

    try:
        load_project(project)
    except (ConfigError, DataError) as exc:
        return f"metapool: cannot run the workflow.\n{type(exc).__name__}: {exc}"
    return ""


def assert_stops(res, *parts: str):
    if isinstance(res, str):           # in-process check
        assert res, "the checks passed"
        for part in parts:
            assert part in res, f"{part!r} missing from:\n{res}"
        return
    out = res.stdout + res.stderr
    if os.environ.get("METAPOOL_DUMP_MESSAGES"):      # collect the messages for docs/reliability.md
        with open(os.environ["METAPOOL_DUMP_MESSAGES"], "a") as fh:
            msg = out.split("metapool: cannot run the workflow.")[-1].strip()
            fh.write(f"{os.environ.get('PYTEST_CURRENT_TEST', '').split(' ')[0]}\t{msg}\n")
    assert res.returncode != 0, f"the run did not stop:\n{out}"
    assert "Traceback" not in out, out
    assert "metapool: cannot run the workflow." in out, out
    for part in parts:
        assert part in out, f"{part!r} missing from:\n{out}"
    assert "Building DAG of jobs" not in out, out      # stopped while parsing: no job planned


def column(project: Path, rel: str, name: str) -> list[str]:
    rows = read_rows(project / rel)
    i = rows[0].index(name)
    return [r[i] for r in rows[1:]]


# --------------------------------------------------------------------------- the bundled project is fine
def test_bundled_project_passes_the_checks(project):
    res = run(project)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr


# --------------------------------------------------------------------------- CSV problems
def test_missing_column(project):
    rows = read_rows(project / PROP)
    i = rows[0].index("total")
    write_rows(project / PROP, [r[:i] + r[i + 1:] for r in rows])
    assert_stops(check(project), PROP, "line 1", "column 'total'", "required column is missing")


def test_misspelt_column(project):
    rows = read_rows(project / PROP)
    rows[0][rows[0].index("total")] = "totl"
    write_rows(project / PROP, rows)
    assert_stops(check(project), PROP, "line 1", "column 'total'", "'totl' looks like a misspelling")


def test_misspelt_optional_column(project):
    rows = read_rows(project / PROP)
    rows[0][rows[0].index("note")] = "nots"
    write_rows(project / PROP, rows)
    assert_stops(check(project), PROP, "line 1", "'nots'", "note")


def test_non_numeric_cell(project):
    line = set_cell(project, PROP, 3, "events", "seven")
    assert_stops(check(project), PROP, f"line {line}", "column 'events'", "value 'seven'", "a number")


def test_negative_count(project):
    line = set_cell(project, TWO, 2, "events_ctrl", "-1")
    assert_stops(check(project), TWO, f"line {line}", "column 'events_ctrl'", "value '-1'", ">= 0")


def test_fractional_count(project):
    line = set_cell(project, PROP, 0, "total", "13.5")
    assert_stops(check(project), PROP, f"line {line}", "column 'total'", "value '13.5'", "whole numbers")


def test_events_exceed_total(project):
    total = column(project, PROP, "total")[1]
    line = set_cell(project, PROP, 1, "events", str(int(total) + 1))
    assert_stops(check(project), PROP, f"line {line}", "column 'events'", f"value '{int(total) + 1}'",
                 f"events must not exceed total ({total})")


def test_sd_not_positive(project):
    line = set_cell(project, PRE, 0, "sd_pre", "0")
    assert_stops(check(project), PRE, f"line {line}", "column 'sd_pre'", "value '0'", "the SD must be > 0")


def test_n_below_two(project):
    line = set_cell(project, PRE, 0, "n", "1")
    assert_stops(check(project), PRE, f"line {line}", "column 'n'", "value '1'", "a whole number >= 2")


def test_r_outside_minus_one_one(project):
    line = set_cell(project, PRE, 0, "r", "1.5")
    assert_stops(check(project), PRE, f"line {line}", "column 'r'", "value '1.5'", "between -1 and 1")


def test_unknown_status(project):
    line = set_cell(project, PROP, 0, "status", "guessed")
    assert_stops(check(project), PROP, f"line {line}", "column 'status'", "value 'guessed'",
                 "one of reported, derived, secondary, inferred")


def test_duplicate_study_outcome(project):
    rows = read_rows(project / PROP)
    rows.append(list(rows[1]))
    write_rows(project / PROP, rows)
    assert_stops(check(project), PROP, f"line {len(rows)}", "column 'study'", f"value '{rows[1][0]}'",
                 f"already has a row for outcome '{rows[1][1]}'", f"{PROP}, line 2")


def test_study_not_in_study_table(project):
    line = set_cell(project, TWO, 0, "study", "Nobody2099")
    assert_stops(check(project), TWO, f"line {line}", "column 'study'", "value 'Nobody2099'",
                 "not in the study table")


def test_duplicate_study_in_study_table(project):
    rows = read_rows(project / STUDIES)
    rows.append(list(rows[2]))
    write_rows(project / STUDIES, rows)
    assert_stops(check(project), STUDIES, f"line {len(rows)}", "column 'study'", f"value '{rows[2][0]}'",
                 "already on line 3")


def test_semicolon_file_with_bom_is_read_like_the_original(project, base):
    """Excel's 'CSV UTF-8' in a decimal-comma locale: BOM + ';' — accepted, the same snapshots
    (so not even a rerun), and Snakemake accepts it too."""
    from metapool.workflow import load_project

    original = load_project(project).snapshots
    rows = read_rows(project / PROP)
    write_rows(project / PROP, rows, delimiter=";", bom=True)
    assert (project / PROP).read_bytes().startswith(b"\xef\xbb\xbf")
    assert load_project(project).snapshots == original
    res = run(project)
    assert res.returncode == 0, res.stdout + res.stderr


def test_semicolon_file_with_decimal_comma(project):
    rows = read_rows(project / PRE)
    rows[1][rows[0].index("sd_pre")] = "14,08"
    write_rows(project / PRE, rows, delimiter=";")
    assert_stops(check(project), PRE, "line 2", "column 'sd_pre'", "value '14,08'", "decimal comma")


def test_empty_file(project):
    (project / PROP).write_text("")
    assert_stops(check(project), PROP, "the file is empty")


def test_bom_only_file(project):
    (project / TWO).write_bytes(b"\xef\xbb\xbf\r\n")
    assert_stops(check(project), TWO, "the file is empty")


def test_header_without_rows(project):
    (project / PRE).write_text((project / PRE).read_text().splitlines()[0] + "\n")
    assert_stops(check(project), PRE, "a header but no data rows")


def test_empty_study_table(project):
    (project / STUDIES).write_text("")
    assert_stops(check(project), STUDIES, "the file is empty")


def test_row_with_surplus_cells(project):
    rows = read_rows(project / PROP)
    rows[2] = rows[2] + ["surplus"]
    write_rows(project / PROP, rows)
    assert_stops(check(project), PROP, "line 3", "too long", "starts with 'surplus'", "must be quoted")


def test_not_utf8(project):
    (project / STUDIES).write_bytes((project / STUDIES).read_bytes() + "Müller\n".encode("latin-1"))
    assert_stops(check(project), STUDIES, "not UTF-8", "CSV UTF-8")


def test_bad_inline_study(project):
    edit_config(project, lambda c: c.update(extra_studies=[
        {"study": "He2020_ARD", "outcome": "fever_x", "events": 9, "total": 5, "status": "reported",
         "source": "x"}]))
    assert_stops(check(project), "config.yaml extra_studies", "item 1", "column 'events'", "value '9'",
                 "must not exceed total (5)")


# --------------------------------------------------------------------------- config problems
def test_missing_data_file(project):
    edit_config(project, lambda c: c["tables"].append("data/raw/nope.csv"))
    line = config_line(project, "data/raw/nope.csv")
    assert_stops(check(project), "config.yaml", f"line {line}", "key tables/4", "value 'data/raw/nope.csv'",
                 "file not found")


def test_missing_study_table(project):
    (project / STUDIES).unlink()
    assert_stops(check(project), "config.yaml", f"line {config_line(project, 'studies:')}", "key studies",
                 f"value '{STUDIES}'", "file not found")


def test_data_path_is_a_directory(project):
    edit_config(project, lambda c: c.update(targets="data"))
    assert_stops(check(project), "config.yaml", "key targets", "value 'data'", "not a directory")


def test_outcome_without_data(project):
    edit_config(project, lambda c: c["outcomes"].update(ln_remision={"label": "typo", "measure": "PR"}))
    assert_stops(check(project), "config.yaml", f"line {config_line(project, 'ln_remision:') + 1}",
                 "key outcomes/ln_remision", "no data rows have outcome = 'ln_remision'",
                 "similar key 'ln_remission'")


def test_unknown_measure(project):
    edit_config(project, lambda c: c["outcomes"]["fever"].update(measure="PLOO"))
    assert_stops(check(project), "config.yaml", f"line {config_line(project, 'measure: PLOO')}",
                 "key outcomes/fever/measure", "value 'PLOO'", "one of PR, PLO", "did you mean 'PLO'")


def test_unknown_method(project):
    edit_config(project, lambda c: c["defaults"].update(methods=["FE", "DLL"]))
    assert_stops(check(project), "config.yaml", "key defaults/methods/1", "value 'DLL'", "one of FE",
                 "did you mean 'DL'")


def test_measure_does_not_fit_the_data(project):
    edit_config(project, lambda c: c["outcomes"]["fever"].update(measure="SMD"))
    assert_stops(check(project), "config.yaml", f"line {config_line(project, 'measure: SMD')}",
                 "key outcomes/fever/measure", "value 'SMD'", "'fever' has single-arm counts",
                 PROP, "PR, PLO, PAS, PFT")


def test_method_does_not_fit_the_data(project):
    edit_config(project, lambda c: c["outcomes"]["treg_abs"].update(methods=["MH", "REML"]))
    assert_stops(check(project), "config.yaml", "key outcomes/treg_abs/methods", "value 'MH'",
                 "MH pools two-arm counts", "pre/post means")


def test_glmm_needs_plo(project):
    edit_config(project, lambda c: c["outcomes"]["fever"].update(measure="PR", methods=["GLMM"]))
    assert_stops(check(project), "key outcomes/fever/methods", "value 'GLMM'", "measure PLO")


def test_unknown_subgroup_column(project):
    edit_config(project, lambda c: c["outcomes"]["fever"].update(subgroup="dose_regimn"))
    assert_stops(check(project), "key outcomes/fever/subgroup", "value 'dose_regimn'",
                 "did you mean 'dose_regimen'")


def test_status_filter_leaves_no_rows(project):
    edit_config(project, lambda c: c["outcomes"]["ln_remission"].update(status=["secondary"]))
    assert_stops(check(project), "config.yaml", "key outcomes/ln_remission/status", "none of",
                 "add the status")


def test_unknown_config_key(project):
    edit_config(project, lambda c: c["outcomes"]["fever"].update(colour="red"))
    assert_stops(check(project), "config.yaml", f"line {config_line(project, 'colour: red')}",
                 "key outcomes/fever/colour", "unknown key 'colour'", "allowed keys here")


def test_level_out_of_range(project):
    edit_config(project, lambda c: c["defaults"].update(level=95))
    assert_stops(check(project), "config.yaml", "key defaults/level", "value 95", "a number < 1")


def test_wrong_type(project):
    edit_config(project, lambda c: c.update(tables="data/raw/proportions.csv"))
    assert_stops(check(project), "key tables", "a list")


def test_missing_required_key(project):
    edit_config(project, lambda c: c["outcomes"]["fever"].pop("measure"))
    assert_stops(check(project), "key outcomes/fever", "'measure' is required")


# --------------------------------------------------------------------------- YAML syntax
def replace_in_config(project: Path, old: str, new: str):
    text = (project / "config.yaml").read_text()
    assert old in text
    (project / "config.yaml").write_text(text.replace(old, new, 1))


def test_yaml_unclosed_bracket(project):
    replace_in_config(project, "studies: data/raw/studies.csv", "studies: [data/raw/studies.csv")
    line = config_line(project, "studies: [")
    assert_stops(check(project), "config.yaml", "invalid YAML", f"starts on line {line}, column 10")


def test_yaml_tab_indentation(project):
    replace_in_config(project, "  fever:\n    label:", "  fever:\n\tlabel:")
    line = config_line(project, "\tlabel:")
    assert_stops(check(project), "config.yaml", f"line {line}", "column 1", "invalid YAML", "tab")


def test_yaml_unquoted_colon(project):
    replace_in_config(project, 'label: "Fever (adverse event)', 'label: Fever: adverse event (')
    line = config_line(project, "label: Fever: adverse")
    col = (project / "config.yaml").read_text().splitlines()[line - 1].index("Fever:") + 6  # ':' from 1
    assert_stops(check(project), "config.yaml", f"line {line}", f"column {col}", "invalid YAML",
                 "must be quoted")


def test_yaml_duplicate_key(project):
    replace_in_config(project, "  fever:\n", "  fever:\n    measure: PR\n")
    lines = (project / "config.yaml").read_text().splitlines()
    first = config_line(project, "  fever:") + 1
    second = next(i for i in range(first + 1, len(lines) + 1) if lines[i - 1].strip().startswith("measure:"))
    res = run(project)
    assert "value None" not in res.stderr
    assert_stops(res, "config.yaml", f"line {second}", "key measure", "appears twice",
                 f"first on line {first}")


def test_empty_config(project):
    (project / "config.yaml").write_text("")
    assert_stops(check(project), "config.yaml", "the file is empty")


def test_config_with_comments_only(project):
    (project / "config.yaml").write_text("# nothing yet\n")
    assert_stops(check(project), "config.yaml", "no settings (only comments")


def test_config_not_a_mapping(project):
    (project / "config.yaml").write_text("- studies\n- tables\n")
    assert_stops(check(project), "config.yaml", "line 1", "the top level must be a mapping")


def test_missing_config(project):
    (project / "config.yaml").unlink()
    assert_stops(check(project), "config.yaml", "file not found", str(project))


# --------------------------------------------------------------------------- nothing runs
def test_real_run_stops_before_any_job(project):
    """Not only the dry run: a real run with a bad row starts no job and writes no result."""
    set_cell(project, PROP, 0, "events", "-3")
    res = run(project, dry=False)
    assert_stops(res, PROP, "line 2", "column 'events'", "value '-3'")
    assert not (project / "results" / "pooled").exists()
    assert not (project / "results" / "logs").exists()
