"""The `metapool pool` command line (in-process, and once as a subprocess)."""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import assert_close, load_cases, rows_frame
from metapool.cli import main
from metapool.tables import SUMMARY_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
CASES = {c["case"]: c for c in load_cases()}


@pytest.fixture
def csv_of(tmp_path):
    def write(case_name, **extra):
        df = rows_frame(CASES[case_name]).assign(**extra)
        path = tmp_path / f"{case_name}.csv"
        df.to_csv(path, index=False)
        return str(path)
    return write


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", ["pritz1997_PFT_REML_z", "pritz1997_PLO_DL_knha", "bcg_RR_REML_knha"])
def test_pool_matches_metafor(capsys, csv_of, name):
    case = CASES[name]
    ci = {"z": "z", "knha": "hksj"}[case["test"]]
    code, out, err = run(capsys, "pool", csv_of(name), "--measure", case["measure"],
                         "--method", case["method"], "--ci", ci)
    assert code == 0, err
    df = pd.read_csv(io.StringIO(out), keep_default_na=False, na_values=[""])
    assert list(df.columns) == list(SUMMARY_COLUMNS) and len(df) == 1
    row, exp = df.iloc[0], case["expected"]
    assert row["method"] == case["method"] and row["ci_method"] == ci and row["k"] == exp["k"]
    for key in ("se", "tau2", "I2", "Q"):
        assert_close(row[key], exp[key], rel=1e-6, what=key)
    if case["measure"] in ("PR", "PLO", "PAS", "PFT"):
        # metafor tests a single-arm proportion against 0 on the analysis scale (logit 0 = 50%);
        # the summary prints no test without a stated null
        assert pd.isna(row["null"]) and pd.isna(row["stat"]) and pd.isna(row["pval"])
    else:
        assert row["null"] == 1
        for key in ("stat", "pval"):
            assert_close(row[key], exp[key], rel=1e-6, what=key)
    assert_close(row["estimate_analysis"], exp["estimate"], rel=1e-9, what="estimate_analysis")
    for key in ("estimate", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
        assert_close(row[key], exp["back"][key], rel=1e-6, what=key)


def test_counts_methods_json(capsys, csv_of):
    code, out, err = run(capsys, "pool", csv_of("bcg_OR_MH"), "--measure", "OR",
                         "--method", "MH,PETO", "--method", "DL", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["method"] for r in rows] == ["MH", "PETO", "DL"]
    assert [r["model"] for r in rows] == ["fixed", "fixed", "random"]
    assert rows[0]["tau2"] is None and rows[0]["pi_lb"] is None
    assert_close(rows[0]["estimate_analysis"], CASES["bcg_OR_MH"]["expected"]["estimate"], what="MH")
    assert_close(rows[1]["estimate_analysis"], CASES["bcg_OR_PETO"]["expected"]["estimate"], what="PETO")
    assert rows[2]["tau2"] > 0


def test_markdown_and_outcomes(capsys, tmp_path):
    a = rows_frame(CASES["pritz1997_PR_FE_z"]).assign(outcome="remission")
    b = a.assign(outcome="relapse").iloc[:5]
    path = tmp_path / "two.csv"
    pd.concat([a, b]).to_csv(path, index=False)
    code, out, err = run(capsys, "pool", str(path), "--measure", "PLO", "--format", "md", "--digits", "3")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("| outcome | label | measure |")
    assert len(lines) == 2 + 2
    assert lines[2].startswith("| remission | remission | PLO |") and "| 14 |" in lines[2]
    assert lines[3].startswith("| relapse |") and "| 5 |" in lines[3]
    code, out, err = run(capsys, "pool", str(path), "--measure", "PLO", "--outcome", "relapse")
    assert code == 0 and len(pd.read_csv(io.StringIO(out))) == 1


def test_generic_defaults_to_gen(capsys, tmp_path):
    path = tmp_path / "g.csv"
    pd.DataFrame({"study": list("abcd"), "yi": [0.1, 0.4, -0.1, 0.3],
                  "vi": [0.02, 0.03, 0.05, 0.01]}).to_csv(path, index=False)
    code, out, err = run(capsys, "pool", str(path), "--method", "FE")
    assert code == 0, err
    row = pd.read_csv(io.StringIO(out)).iloc[0]
    w = 1 / pd.Series([0.02, 0.03, 0.05, 0.01])
    assert row["measure"] == "GEN"
    assert row["estimate"] == pytest.approx((w * [0.1, 0.4, -0.1, 0.3]).sum() / w.sum(), rel=1e-10)


@pytest.mark.parametrize("args, message", [
    (["pool", "{missing}", "--measure", "PR"], "nope.csv: file not found"),
    (["pool", "{prop}", "--measure", "XYZ"], "unknown measure 'XYZ'"),
    (["pool", "{prop}", "--measure", "PR", "--method", "BAYES"], "unknown method 'BAYES'"),
    (["pool", "{prop}", "--measure", "OR"], "cannot be computed from proportion data"),
    (["pool", "{prop}", "--measure", "PR", "--method", "MH"], "MH pools two-arm counts"),
    (["pool", "{bin}", "--measure", "SMD"], "cannot be computed from binary data"),
    (["pool", "{bin}", "--measure", "RR", "--method", "PETO"], "PETO pools measure OR or PETO, not RR"),
    (["pool", "{prop}"], "--measure is required"),
    (["pool", "{nostudy}", "--measure", "PR"], "column 'study': required column is missing"),
    (["pool", "{badcols}", "--measure", "PR"], "badcols.csv, line 1: cannot tell"),
    (["pool", "{badvalue}", "--measure", "PR"], "badvalue.csv, line 3, column 'events': value 'two'"),
    (["pool", "{empty}", "--measure", "PR"], "is empty"),
    (["pool", "{prop}", "--measure", "PR", "--ci", "t"], "unknown --ci"),
    (["pool", "{prop}", "--measure", "PR", "--level", "95"], "argument --level: 95 is not between 0 and 1"),
    (["pool", "{prop}", "--measure", "PR", "--format", "xml"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
])
def test_errors_are_one_line(capsys, tmp_path, csv_of, args, message):
    paths = {"missing": str(tmp_path / "nope.csv"), "prop": csv_of("pritz1997_PR_FE_z"),
             "bin": csv_of("bcg_OR_MH"), "empty": str(tmp_path / "empty.csv")}
    (tmp_path / "empty.csv").write_text("")
    for name, frame in {"nostudy": pd.DataFrame({"events": [1], "total": [3]}),
                        "badcols": pd.DataFrame({"study": ["a"], "x": [1]}),
                        "badvalue": pd.DataFrame({"study": ["a", "b"], "events": ["1", "two"],
                                                  "total": [3, 4]})}.items():
        paths[name] = str(tmp_path / f"{name}.csv")
        frame.to_csv(paths[name], index=False)
    code, out, err = run(capsys, *[a.format(**paths) for a in args])
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("metapool") and "error:" in err
    assert message in err
    assert "Traceback" not in err


def test_console_entry_point_subprocess(tmp_path, csv_of):
    path = csv_of("bcg_RR_MH")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    ok = subprocess.run([sys.executable, "-m", "metapool.cli", "pool", path, "--measure", "RR",
                         "--method", "MH"], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    row = pd.read_csv(io.StringIO(ok.stdout)).iloc[0]
    assert_close(row["estimate_analysis"], CASES["bcg_RR_MH"]["expected"]["estimate"], what="MH RR")
    bad = subprocess.run([sys.executable, "-m", "metapool.cli", "pool", str(tmp_path / "x.csv")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and bad.stdout == "" and "Traceback" not in bad.stderr
