"""metapool.audit: forensic audit of a printed pooled estimate.

Outside references:
* tests/audit_cases.json (tests/make_audit_cases.R, R metafor 3.8-1): for every case the model
  that generated the printed numbers must be among the reproducing models, at 2 and at 3
  decimals, and the audit's own numbers for that model must equal metafor's unrounded ones;
  subset cases must be found by the subset search, missing-study cases by the missing search.
* EVIDENCE.md §4 note 1 (SRI-4: symmetric raw-scale CI, implied n ~ 103) and note 3 (LN
  remission 54.8 %: FE/DL raw and logit reproduce, Freeman-Tukey gives 0.548507).
* The crude pooled proportion sum(events)/sum(total) in closed form (missing-study search).
"""
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from metapool import audit as audit_mod
from metapool.audit import AuditResult, Printed, audit
from metapool.cli import main

TESTS = Path(__file__).parent
ROOT = TESTS.parent
CASES = json.loads((TESTS / "audit_cases.json").read_text())
ALL = CASES["cases"]
PLAIN = [c for c in ALL if "rows" not in c and "hidden" not in c]
SUBSET = [c for c in ALL if "rows" in c]
MISSING = [c for c in ALL if "hidden" in c]


def _table(case):
    t = pd.DataFrame(case["table"])
    return {c: t[c].tolist() for c in t.columns}


def _is_model(entry, model):
    """Does a reproducing entry describe the case's generating model?"""
    if (entry["measure"], entry["method"], entry["test"]) != (model["measure"], model["method"], model["test"]):
        return False
    if model.get("cc") is not None and model["cc"] not in [entry["cc"]] + entry["cc_equivalent"]:
        return False
    return (entry.get("vtype") or "LS") == model.get("vtype", "LS")


def _find(res, model, studies=None):
    return [e for e in res.reproducing if _is_model(e, model) and (studies is None or e["studies"] == studies)]


def test_metafor_version_recorded():
    assert CASES["meta"]["metafor"].startswith("3.8")
    assert len(PLAIN) >= 30 and SUBSET and MISSING


@pytest.mark.parametrize("case", PLAIN, ids=[c["case"] for c in PLAIN])
@pytest.mark.parametrize("decimals", ["2", "3"])
def test_generating_model_reproduces(case, decimals):
    pr = case["printed"][decimals]
    res = audit(_table(case), pr["estimate"], (pr["ci_lb"], pr["ci_ub"]), max_list=100000,
                glmm=case["model"]["method"] == "GLMM")
    assert res.inputs["family"] == case["family"]
    hits = _find(res, case["model"], [r["study"] for r in case["table"]])
    assert hits, (f"{case['case']}: generating model not among {res.n_reproducing} reproducing; "
                  f"nearest {res.nearest}")
    exp = case["expected"]
    for key in ("estimate", "ci_lb", "ci_ub"):   # metafor's unrounded numbers
        assert hits[0][key] == pytest.approx(exp[key], rel=1e-6, abs=1e-9), key
    if case["family"] != "proportion":
        assert hits[0]["pval"] == pytest.approx(exp["pval"], rel=1e-5, abs=1e-12)


@pytest.mark.parametrize("case", [c for c in PLAIN if c["family"] != "proportion"][:6],
                         ids=lambda c: c["case"])
def test_generating_model_with_p_value(case):
    """The printed p-value (3 significant digits) is matched as well."""
    pr = case["printed"]["3"]
    p = case["expected"]["pval"]
    p_text = "<0.001" if p < 0.001 else f"{p:.3f}"
    res = audit(_table(case), pr["estimate"], (pr["ci_lb"], pr["ci_ub"]), p=p_text, max_list=100000)
    assert _find(res, case["model"], [r["study"] for r in case["table"]])


@pytest.mark.parametrize("case", PLAIN[::5], ids=lambda c: c["case"])
def test_wrong_estimate_reproduces_nothing(case):
    """A deliberately wrong estimate (shifted by 50 printed units) gives no match, a nearest miss."""
    pr = case["printed"]["3"]
    shift = 0.05
    est, lb, ub = (f"{float(pr[k]) + shift:.3f}" for k in ("estimate", "ci_lb", "ci_ub"))
    res = audit(_table(case), est, (lb, ub), glmm=False)
    assert res.n_reproducing == 0 and res.reproducing == ()
    assert res.nearest is not None and res.nearest["distance"] > 0.5
    assert res.evaluated > 0


@pytest.mark.parametrize("case", SUBSET, ids=[c["case"] for c in SUBSET])
def test_subset_search_finds_the_pooled_rows(case):
    pr = case["printed"]["3"]
    t0 = time.perf_counter()
    res = audit(_table(case), pr["estimate"], (pr["ci_lb"], pr["ci_ub"]), subsets=True, glmm=False,
                max_list=100000)
    elapsed = time.perf_counter() - t0
    rows = [case["table"][i - 1]["study"] for i in case["rows"]]
    hits = _find(res, case["model"], rows)
    assert hits, f"{case['case']}: {res.n_reproducing} reproducing, none is the generating subset"
    for key in ("estimate", "ci_lb", "ci_ub"):
        assert hits[0][key] == pytest.approx(case["expected"][key], rel=1e-6)
    k = len(case["table"])
    # every subset x model was either computed or excluded by the bound
    assert res.evaluated + res.pruned >= (2 ** k - 1) * 2
    if k == 16:
        print(f"\n{case['case']}: k = 16 subset search {elapsed:.2f} s, evaluated {res.evaluated:,}, "
              f"pruned {res.pruned:,}")


def test_pruning_bound_loses_nothing(monkeypatch):
    """The subset search with the bound lists exactly what the exhaustive search lists."""
    case = next(c for c in SUBSET if c["case"] == "pritz_sub_PLO_REML_z")
    pr = case["printed"]["2"]
    args = (_table(case), pr["estimate"], (pr["ci_lb"], pr["ci_ub"]))
    pruned = audit(*args, subsets=True, glmm=False, max_list=100000)
    monkeypatch.setattr(audit_mod, "_PRUNE_MIN_ROWS", 10 ** 9)
    full = audit(*args, subsets=True, glmm=False, max_list=100000)
    assert pruned.pruned > 0 and full.pruned == 0
    key = [(e["measure"], e["method"], e["test"], e["cc"], e["vtype"], tuple(e["studies"])) for e in full.reproducing]
    assert [(e["measure"], e["method"], e["test"], e["cc"], e["vtype"], tuple(e["studies"]))
            for e in pruned.reproducing] == key


@pytest.mark.parametrize("case", [c for c in MISSING if c["family"] == "proportion"],
                         ids=lambda c: c["case"])
def test_missing_search_finds_the_hidden_row(case):
    pr = case["printed"]["3"]
    res = audit(_table(case), pr["estimate"], (pr["ci_lb"], pr["ci_ub"]), missing=True, max_n=120,
                missing_detail=None, glmm=False)
    h = case["hidden"]
    models = [m for m in res.missing["models"] if _is_model(m, case["model"])]
    assert models, f"{case['case']}: generating model not among {len(res.missing['models'])} models"
    found = [row for m in models for row in m["by_total"] if row[0] == h["total"]]
    assert any(lo <= h["events"] <= hi for _, lo, hi in found), found


@pytest.mark.parametrize("case", [c for c in MISSING if c["family"] != "proportion"], ids=lambda c: c["case"])
def test_missing_search_continuous_region(case):
    """The hidden row's (yi, SE) -- escalc of the hidden row -- lies in the region found for the
    generating model: at the searched SEs within 0.5 % of the hidden SE, the effect band (sampled
    between its bisected ends) contains the hidden effect to within 0.2 % of the CI width."""
    from metapool.effects import escalc

    pr = case["printed"]["3"]
    model = case["model"]
    res = audit(_table(case), pr["estimate"], (pr["ci_lb"], pr["ci_ub"]), missing=True, missing_detail=None,
                measures=[model["measure"]])
    full = pd.concat([pd.DataFrame(case["table"]), pd.DataFrame([case["hidden"]])], ignore_index=True)
    es = escalc(model["measure"], full)
    y, se = es.yi[-1], math.sqrt(es.vi[-1])
    models = [m for m in res.missing["models"] if _is_model(m, model)]
    assert models, f"{case['case']}: generating model not among {len(res.missing['models'])} models"
    m = models[0]
    assert m["se_min"] <= se * 1.005 and m["se_max"] >= se * 0.995, m["summary"]
    tol = 0.002 * (float(pr["ci_ub"]) - float(pr["ci_lb"]))
    near = [row for row in m["by_se"] if abs(row[0] / se - 1) <= 0.005]
    assert any(lo - tol <= y <= hi + tol for _, lo, hi in near), (y, near[:5])
    if model["measure"] in ("SMD", "SMCR"):   # the equivalent one-study n brackets the hidden n
        n = case["hidden"].get("n") or case["hidden"]["n_treat"] + case["hidden"]["n_ctrl"]
        assert m["n_equivalent_min"] - 1 <= n <= m["n_equivalent_max"] + 1


def test_sri4_scale_and_implied_n():
    """EVIDENCE.md §4 note 1: 0.819 (0.745-0.894) is symmetric on the raw scale only.

    Exact value from the printed numbers: SE = (0.894 - 0.745) / (2 x 1.959964) = 0.0380109,
    n = 0.819 x 0.181 / SE^2 = 102.60.  Rounding interval (each number +-0.0005):
    SE in [0.148, 0.150] / 3.919928 = [0.037756, 0.038266], p(1-p) in [0.147920, 0.148558]
    (p in [0.8185, 0.8195]), so n in [0.147920 / 0.038266^2, 0.148558 / 0.037756^2] = [101.02, 104.21].
    """
    t = pd.read_csv(ROOT / "data" / "raw" / "proportions.csv")
    rows = t[t["outcome"] == "sri4_wk12"][["study", "events", "total"]]
    res = audit(rows, 0.819, (0.745, 0.894))
    assert "raw" in res.ci_scales and "logit" not in res.ci_scales
    assert res.ci_scales == ("raw",)
    se = res.implied_se["raw"]
    assert se["se"] == pytest.approx(0.0380109, rel=1e-5)
    assert (se["lo"], se["hi"]) == (pytest.approx(0.037756, rel=1e-4), pytest.approx(0.038266, rel=1e-4))
    n = res.implied_n["raw"]
    assert n["n"] == pytest.approx(102.60, abs=0.01)
    assert n["lo"] == pytest.approx(101.02, abs=0.01) and n["hi"] == pytest.approx(104.21, abs=0.01)
    assert round(n["n"]) == 103   # EVIDENCE.md: "≈ 103"
    assert res.n_reproducing == 0 and res.nearest is not None   # note 2: not identifiable


def test_ln_remission_worked_example():
    """EVIDENCE.md §4 note 3: He 2020 7/13 + JICR 2019 10/18 -> 54.8 %."""
    data = {"study": ["He2020", "JICR2019"], "events": [7, 10], "total": [13, 18]}
    res = audit(data, "0.548", max_list=1000)
    got = {(e["measure"], e["method"]) for e in res.reproducing if e["test"] == "z"}
    for m in [("PR", "FE"), ("PR", "DL"), ("PLO", "FE"), ("PLO", "DL")]:
        assert m in got
    assert not any(e["measure"] == "PFT" for e in res.reproducing)
    ft = audit(data, "0.5485", decimals=4)      # FT: 0.548507 (EVIDENCE.md) -> prints 0.5485
    assert any(e["measure"] == "PFT" and e["method"] == "FE" and e["estimate"] == pytest.approx(0.548507, abs=5e-7)
               for e in ft.reproducing)
    assert res.nearest["measure"] == "PFT" and res.nearest["estimate"] == pytest.approx(0.548507, abs=5e-7)
    assert res.reproducing[0]["measure"] == "PR" and res.reproducing[0]["method"] == "FE"
    assert res.reproducing[0]["test"] == "z"


def test_isr_missing_studies_crude_closed_form():
    """ISR 33.1 % with He 2020 9/29 + He 2016 5/40: the crude pooled proportion (PR, FE, vtype AV,
    no correction) is (14 + x) / (69 + n), so the remainder (x, n) reproduces exactly when
    |(14 + x)/(69 + n) - 0.331| <= 0.0005."""
    data = {"study": ["He2020", "He2016"], "events": [9, 5], "total": [29, 40]}
    res = audit(data, "0.331", missing=True, max_n=300, missing_detail=None)
    crude = [m for m in res.missing["models"] if (m["measure"], m["method"], m["vtype"]) == ("PR", "FE", "AV")
             and "none" in [m["cc"]] + m["cc_equivalent"]]
    assert len(crude) == 1
    got = {(n, x) for n, lo, hi in crude[0]["by_total"] for x in range(lo, hi + 1)}
    want = {(n, x) for n in range(1, 301) for x in range(n + 1) if abs((14 + x) / (69 + n) - 0.331) <= 0.0005}
    assert got == want
    assert crude[0]["total_min"] == min(n for n, _ in want)
    assert res.missing["evaluated"] > 0


def test_json_and_roundtrip():
    case = next(c for c in PLAIN if c["case"] == "zero_PLO_REML_z_only0")
    pr = case["printed"]["3"]
    res = audit(_table(case), pr["estimate"], (pr["ci_lb"], pr["ci_ub"]), p="<0.001")
    d = res.to_dict()
    text = json.dumps(d, allow_nan=False)
    for key in ("ci_scales", "implied_se", "implied_n", "p_check", "reproducing", "nearest", "evaluated",
                "missing", "inputs"):
        assert key in d
    for key in ("measure", "method", "test", "cc", "studies", "estimate", "ci_lb", "ci_ub"):
        assert key in d["reproducing"][0]
    back = AuditResult.from_dict(json.loads(text))
    assert back.to_dict() == d
    md = res.to_markdown()
    assert md.startswith("# Audit of 0.299") and "## Models that reproduce" in md


def test_printed_parsing():
    assert Printed.parse("0.50").decimals == 2
    assert Printed.parse(0.819).decimals == 3
    p = Printed.parse("<0.001")
    assert p.relation == "<" and p.box == (0.0, 0.001)
    assert Printed.parse("p = .04").value == 0.04
    with pytest.raises(ValueError):
        Printed.parse("abc")


def test_unprinted_values_as_nan():
    """A row of a targets table can be passed as is: NaN / empty CI, p and decimals mean 'not printed'."""
    data = {"study": ["He2020", "JICR2019"], "events": [7, 10], "total": [13, 18]}
    a = audit(data, 0.548, (float("nan"), float("nan")), p=float("nan"), decimals=3.0)
    b = audit(data, "0.548")
    assert a.inputs["ci_lb"] is None and a.inputs["p"] is None
    assert a.to_dict()["reproducing"] == b.to_dict()["reproducing"]


def test_measures_restriction():
    data = {"study": ["He2020", "JICR2019"], "events": [7, 10], "total": [13, 18]}
    res = audit(data, "0.548", measures=["plo"])
    assert res.n_reproducing > 0 and {e["measure"] for e in res.reproducing} == {"PLO"}
    with pytest.raises(ValueError, match="proportion measures"):
        audit(data, "0.548", measures=["SMD"])


def test_bad_arguments():
    data = {"study": ["a", "b"], "events": [1, 2], "total": [10, 10]}
    with pytest.raises(ValueError, match="does not contain"):
        audit(data, 0.5, (0.6, 0.7))
    with pytest.raises(ValueError, match="family"):
        audit(data, 0.5, family="nonsense")
    big = {"study": [f"s{i}" for i in range(21)], "events": [1] * 21, "total": [10] * 21}
    with pytest.raises(ValueError, match="k <= 20"):
        audit(big, 0.1, subsets=True)


# ----------------------------------------------------------------------------- command line
def _csv(tmp_path, case):
    path = tmp_path / "table.csv"
    pd.DataFrame(case["table"]).to_csv(path, index=False)
    return str(path)


def test_cli_json(tmp_path, capsys):
    case = next(c for c in PLAIN if c["case"] == "bcg_RR_REML_z")
    pr = case["printed"]["3"]
    code = main(["audit", _csv(tmp_path, case), "--estimate", pr["estimate"], "--ci", pr["ci_lb"], pr["ci_ub"],
                 "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "NaN" not in out and "Infinity" not in out
    d = json.loads(out)
    assert d["family"] == "two-arm" and d["ci_scales"] == ["log"]
    assert any(_is_model(e, case["model"]) for e in d["reproducing"])


def test_cli_markdown(tmp_path, capsys):
    case = next(c for c in PLAIN if c["case"] == "pritz_PR_FE_z")
    pr = case["printed"]["3"]
    code = main(["audit", _csv(tmp_path, case), "--estimate", pr["estimate"], "--ci", pr["ci_lb"], pr["ci_ub"],
                 "--family", "proportion", "--format", "md"])
    out, _ = capsys.readouterr()
    assert code == 0 and out.startswith("# Audit of 0.831") and "| model |" in out


@pytest.mark.parametrize("argv, msg", [
    (["--estimate", "abc"], "estimate"),
    (["--estimate", "0.5", "--ci", "0.6", "0.7"], "does not contain"),
    (["--estimate", "0.5", "--family", "weird"], "family"),
    (["--estimate", "0.5", "--decimals", "-1"], "decimals"),
])
def test_cli_bad_arguments(tmp_path, capsys, argv, msg):
    case = next(c for c in PLAIN if c["case"] == "pritz_PR_FE_z")
    code = main(["audit", _csv(tmp_path, case)] + argv)
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and msg in err


def test_cli_missing_file(capsys):
    code = main(["audit", "/nonexistent.csv", "--estimate", "0.5"])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_cli_subprocess(tmp_path):
    case = next(c for c in PLAIN if c["case"] == "pritz_PLO_REML_z")
    pr = case["printed"]["2"]
    proc = subprocess.run([sys.executable, "-m", "metapool.cli", "audit", _csv(tmp_path, case), "--estimate",
                           pr["estimate"], "--ci", pr["ci_lb"], pr["ci_ub"], "--format", "json"],
                          capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["inputs"]["decimals"] == 2


def test_audit_printed_agrees_with_the_table_audit_on_sri4():
    """Without a table, the scale checks and implied numbers are those of the full audit."""
    from metapool.audit import audit, audit_printed

    rows = {"study": ["He2020", "LUPIL2"], "events": [16, 34], "total": [29, 50]}
    full = audit(rows, "0.819", ("0.745", "0.894"), glmm=False)
    alone = audit_printed("0.819", ("0.745", "0.894"), family="proportion")
    assert alone.ci_scales == ("raw",) == tuple(s for s in full.ci_scales if s != "freeman-tukey")
    assert alone.implied_n["raw"] == full.implied_n["raw"] and alone.implied_se["raw"] == full.implied_se["raw"]
    assert alone.reproducing == () and alone.inputs["k"] == 0
