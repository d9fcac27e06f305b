"""Input a careless or malicious user could give: every class is refused before any job with a
located message, or handled the way metafor handles it (issue 9).

The checks are the ones the workflow runs while Snakemake parses it
(:func:`metapool.workflow.load_project`), called in-process on a temporary copy of the project;
the subprocess tests at the end show that a real ``snakemake`` run behaves the same and that a
bad edit after a finished run leaves every result byte-identical.  The property-based test at the
end generates configs and tables: each is either refused with a located ConfigError/DataError, or
every job of every outcome runs without an exception.
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
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import copy_project
from metapool.config import ConfigError, read_config
from metapool.data import DataError
from metapool.workflow import load_project

ROOT = Path(__file__).resolve().parents[1]
PROP = "data/raw/proportions.csv"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("base"), parts=("config.yaml", "data"))


@pytest.fixture
def project(base, tmp_path) -> Path:
    dest = tmp_path / "p"
    shutil.copytree(base, dest)
    return dest


def edit_config(project: Path, func):
    cfg = yaml.safe_load((project / "config.yaml").read_text())
    func(cfg)
    (project / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, width=200, allow_unicode=True))


def rows_of(project: Path, rel: str):
    return list(csv.reader(io.StringIO((project / rel).read_text(encoding="utf-8"), newline="")))


def write_rows(project: Path, rel: str, rows):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    (project / rel).write_text(buf.getvalue(), encoding="utf-8")


def refused(project: Path, *parts: str, error=(ConfigError, DataError)) -> str:
    with pytest.raises(error) as exc:
        load_project(project)
    msg = str(exc.value)
    for part in parts:
        assert part in msg, f"{part!r} missing from: {msg}"
    return msg


# --------------------------------------------------------------------------- 1. rows silently left out
def test_a_row_whose_outcome_is_not_configured_is_an_error_naming_the_nearest(project):
    rows = rows_of(project, PROP)
    i = next(j for j, r in enumerate(rows) if r[1] == "injection_site")
    rows[i][1] = "injection_sites"
    write_rows(project, PROP, rows)
    refused(project, PROP, f"line {i + 1}", "column 'outcome'", "'injection_sites'",
            "did you mean 'injection_site'?", "ignore_outcomes")


def test_ignored_outcomes_are_skipped_and_listed(project):
    plan = load_project(project)
    ignored = yaml.safe_load((project / "config.yaml").read_text())["ignore_outcomes"]
    assert {r["outcome"] for r in plan.skipped} == set(ignored)
    assert all(r["table"] and r["line"] for r in plan.skipped)          # each skipped row is located


def test_ignore_outcomes_must_name_rows_and_not_a_configured_outcome(project):
    edit_config(project, lambda c: c["ignore_outcomes"].append("fevr_rr"))
    refused(project, "key ignore_outcomes/", "'fevr_rr'", "did you mean 'fever_rr'?")
    edit_config(project, lambda c: (c["ignore_outcomes"].pop(), c["ignore_outcomes"].append("fever")))
    refused(project, "'fever' is configured under outcomes:")


# --------------------------------------------------------------------------- 2./3. options
@pytest.mark.parametrize("where, value, parts", [
    (("defaults", "level"), float("nan"), ["key defaults/level", "finite"]),
    (("defaults", "r"), float("nan"), ["key defaults/r", "finite"]),
    (("defaults", "continuity", "add"), float("inf"), ["key defaults/continuity/add", "finite"]),
    (("outcomes", "treg_abs", "analyses"), {"gosh": {"subsets": "abc"}}, ["gosh/subsets", "'abc'", "whole number"]),
    (("outcomes", "treg_abs", "analyses"), {"cumulative": {"ordr": "year"}}, ["unknown key 'ordr'", "did you mean 'order'"]),
    (("outcomes", "treg_abs", "analyses"), {"cumulative": {"decresing": True}}, ["did you mean 'decreasing'"]),
    (("outcomes", "treg_abs", "analyses"), {"small_study": {"model": "xyz"}}, ["'xyz'", "lm, rma"]),
    (("outcomes", "treg_abs", "analyses"), {"inferred_sensitivity": {"statuses": ["infered"]}},
     ["'infered'", "did you mean 'inferred'"]),
    (("outcomes", "treg_abs", "analyses"), {"cumulative": {"order": "yaer"}}, ["cumulative/order", "did you mean 'year'"]),
    (("outcomes", "treg_abs", "analyses"), {"metareg": {"moderators": ["dose"]}},
     ["metareg/moderators/0", "'dose'", "a column of the study table"]),
    (("outcomes", "fever", "favours"), ["A", "B"], ["favours labels go under a comparison"]),
    (("outcomes", "sae_rr", "reference_proportion"), 0.2, ["single-arm proportions"]),
    (("title",), "t" * 400, ["key title", "300"]),
])
def test_every_option_is_checked_before_any_job(project, where, value, parts):
    def change(c):
        node = c
        for k in where[:-1]:
            node = node.setdefault(k, {})
        node[where[-1]] = value
    edit_config(project, change)
    refused(project, "config.yaml", *parts, error=ConfigError)


@pytest.mark.parametrize("where", ["outcome", "defaults"])
def test_a_meta_regression_without_moderators_is_refused_before_any_job(project, where):
    if where == "outcome":
        edit_config(project, lambda c: c["outcomes"]["treg_abs"].setdefault("analyses", {}).update(metareg=True))
        refused(project, "key outcomes/treg_abs/analyses/metareg", "needs moderators")
    else:
        edit_config(project, lambda c: c["defaults"]["analyses"].update(metareg=True))
        refused(project, "key defaults/analyses/metareg", "needs moderators")


def test_a_key_with_a_final_newline_is_refused(project):
    text = (project / "config.yaml").read_text().replace("\n  fever:\n", '\n  "fever\\n":\n', 1)
    (project / "config.yaml").write_text(text)
    refused(project, "key outcomes", "'fever\\n'", "letters, digits", error=ConfigError)


def test_an_outcome_with_an_impossible_subgroup_target_is_refused(project):
    rows = rows_of(project, "data/raw/published_targets.csv")
    hdr = rows[0]
    i = next(j for j, r in enumerate(rows) if r[0] == "IID_sri4")
    rows[i][hdr.index("subgroup")] = "1 MIU qd"
    write_rows(project, "data/raw/published_targets.csv", rows)
    refused(project, "published_targets.csv", f"line {i + 1}", "column 'subgroup'", "did you mean '1 MIU qod'")


def test_a_huge_total_is_refused(project):
    rows = rows_of(project, PROP)
    rows[1][rows[0].index("total")] = "1e308"
    write_rows(project, PROP, rows)
    refused(project, PROP, "line 2", "column 'total'", "'1e308'", error=DataError)


# --------------------------------------------------------------------------- 5. resource exhaustion
BOMB = "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


def test_a_yaml_alias_bomb_is_refused_before_it_expands(project):
    # 9**9 (387 million) strings if expanded, from 72 aliases: the expansion count stops it
    (project / "config.yaml").write_text('a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + BOMB)
    with pytest.raises(ConfigError, match="expands to more than"):
        read_config(project / "config.yaml")


def test_more_aliases_than_the_limit_are_refused(project):
    from metapool.config import MAX_ALIASES

    many = "".join(f"k{i}: *a\n" for i in range(MAX_ALIASES + 1))
    (project / "config.yaml").write_text("a: &a 1\n" + many)
    with pytest.raises(ConfigError, match=f"more than {MAX_ALIASES} YAML aliases"):
        read_config(project / "config.yaml")


def test_a_control_character_in_config_yaml_is_refused_with_its_line(project):
    text = (project / "config.yaml").read_text()
    line = text[:text.index("title:")].count("\n") + 1
    (project / "config.yaml").write_text(text.replace("title: ", "title: \x07", 1))
    with pytest.raises(ConfigError, match=r"control character \(\\x07\)") as e:
        read_config(project / "config.yaml")
    assert f"line {line}" in str(e.value)


def test_a_huge_config_is_refused_before_it_is_parsed(project):
    text = (project / "config.yaml").read_text().replace("title: ", "title: " + "x" * 50_000_000, 1)
    (project / "config.yaml").write_text(text)
    with pytest.raises(ConfigError, match="KiB is read"):
        read_config(project / "config.yaml")


# --------------------------------------------------------------------------- 6. surprising writes
def test_a_nul_byte_in_a_text_cell_is_refused(project):
    rows = rows_of(project, PROP)
    rows[1][rows[0].index("note")] = "a\x00b"
    write_rows(project, PROP, rows)
    refused(project, PROP, "line 2", "column 'note'", "control characters", error=DataError)


def test_results_as_a_symbolic_link_is_refused(project, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (project / "results").symlink_to(elsewhere)
    refused(project, "'results'", "symbolic link", error=ConfigError)


# --------------------------------------------------------------------------- 4. degenerate data
def test_degenerate_analyses_say_why_and_the_outcome_goes_on():
    from metapool.analysis import analyse_outcome
    from metapool.results import NotRun

    rows = [{"study": s, "events": e, "total": 29, "status": "reported"} for s, e in (("a", 4), ("b", 25), ("c", 4))]
    a = analyse_outcome("fever", {"label": "Fever", "measure": "PLO", "methods": ["FE", "REML"],
                                  "analyses": {"small_study": True, "leave_one_out": True}}, rows)
    # metafor: ranktest gives NA and regtest cannot fit sei when every study has the same variance
    assert isinstance(a.small_study.begg, NotRun) and "same variance" in a.small_study.begg.reason
    assert isinstance(a.small_study.egger, NotRun) and "same in every study" in a.small_study.egger.reason
    assert not isinstance(a.leave_one_out, NotRun) and a.primary.k == 3         # the rest goes on


def test_one_study_with_knapp_hartung_uses_z_as_metafor():
    from metapool.analysis import analyse_outcome

    a = analyse_outcome("x", {"label": "x", "measure": "PLO", "test": "knha"},
                        [{"study": "a", "events": 3, "total": 10, "status": "reported"}])
    f = a.fits[0]
    assert f.test == "z" and f.ci_lb < f.estimate < f.ci_ub
    assert any("Knapp-Hartung needs k >= 2" in n for n in f.notes)


def test_every_table_double_zero_mh_gives_q_0_as_metafor():
    from metapool.counts import mantel_haenszel

    rows = [{"study": s, "events_treat": 0, "total_treat": n, "events_ctrl": 0, "total_ctrl": n}
            for s, n in (("a", 10), ("b", 20))]
    r = mantel_haenszel(rows, "OR")      # metafor rma.mh: estimate NA, QE = 0, QEp = 1
    assert r.estimate != r.estimate and r.Q == 0 and r.Q_pval == 1


# --------------------------------------------------------------------------- generated configs and tables
OPTIONS = {
    "leave_one_out": st.one_of(st.booleans(), st.fixed_dictionaries({"min_k": st.integers(-2, 6)})),
    "cumulative": st.one_of(st.booleans(), st.fixed_dictionaries(
        {"order": st.sampled_from(["year", "n", "yaer", "dose"]), "decreasing": st.booleans()})),
    "gosh": st.one_of(st.booleans(), st.fixed_dictionaries({"subsets": st.one_of(st.integers(-3, 200), st.just("abc"))})),
    "small_study": st.one_of(st.booleans(), st.fixed_dictionaries({"model": st.sampled_from(["lm", "rma", "xyz"])})),
    "metareg": st.fixed_dictionaries({"moderators": st.lists(st.sampled_from(["year", "n", "dose", "nope"]),
                                                             min_size=0, max_size=2, unique=True)}),
    "influence": st.booleans(),
}


@st.composite
def projects(draw):
    k = draw(st.integers(1, 5))
    kind = draw(st.sampled_from(["proportion", "binary"]))
    rows = []
    for i in range(k):
        n = draw(st.integers(1, 60))
        if kind == "proportion":
            rows.append({"study": f"S{i}", "outcome": "o", "events": draw(st.integers(0, n)), "total": n})
        else:
            n2 = draw(st.integers(1, 60))
            rows.append({"study": f"S{i}", "outcome": "o", "events_treat": draw(st.integers(0, n)), "total_treat": n,
                         "events_ctrl": draw(st.integers(0, n2)), "total_ctrl": n2})
        rows[-1].update(source="s", status=draw(st.sampled_from(["reported", "derived", "inferred"])))
    if draw(st.booleans()):            # one spoilt cell
        r = draw(st.sampled_from(rows))
        col = draw(st.sampled_from([c for c in r if c not in ("study", "source")]))
        r[col] = draw(st.sampled_from(["-1", "x", "1e308", "0.5", ""]))
    measure = draw(st.sampled_from(["PR", "PLO", "PAS", "PFT", "RR", "OR", "RD", "SMD"]))
    methods = draw(st.lists(st.sampled_from(["FE", "DL", "REML", "PM", "MH", "PETO", "GLMM"]), min_size=1,
                            max_size=3, unique=True))
    analyses = {name: draw(opt) for name, opt in OPTIONS.items() if draw(st.booleans())}
    entry = {"label": "O", "measure": measure, "methods": methods, "analyses": analyses,
             "test": draw(st.sampled_from(["z", "knha"])), "level": draw(st.sampled_from([0.9, 0.95, 1.5, float("nan")]))}
    if draw(st.booleans()):
        entry["subgroup"] = draw(st.sampled_from(["dose", "country", "nope"]))
    studies = [{"study": f"S{i}", "author": f"Author{i}", "year": 2000 + draw(st.integers(0, 3)),
                "dose": draw(st.sampled_from(["low", "high", ""])), "n": draw(st.integers(1, 80))} for i in range(k)]
    return rows, studies, entry


def _csv(records):
    cols = list(dict.fromkeys(c for r in records for c in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    w.writerows(records)
    return buf.getvalue()


@settings(max_examples=int(os.environ.get("METAPOOL_PROPERTY_EXAMPLES", "30")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=projects())
def test_generated_projects_are_refused_with_a_location_or_run_every_job(tmp_path_factory, case):
    from metapool.jobs.analyse_outcome import run_outcome

    rows, studies, entry = case
    d = tmp_path_factory.mktemp("gen")
    (d / "data").mkdir()
    (d / "data/studies.csv").write_text(_csv(studies))
    (d / "data/o.csv").write_text(_csv(rows))
    cfg = {"studies": "data/studies.csv", "tables": ["data/o.csv"], "outcomes": {"o": entry}}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    try:
        plan = load_project(d)
    except (ConfigError, DataError) as exc:
        msg = str(exc)
        assert msg.startswith(("config.yaml", "data/")) and ("line" in msg or "key" in msg), msg
        return
    for o in plan.outcomes:
        run_outcome(plan.snapshots[o], pooled=d / f"results/pooled/{o}.json", effects=d / f"results/effects/{o}.csv",
                    figures=d / f"results/figures/{o}", progress=lambda s: None)


# --------------------------------------------------------------------------- the real workflow
def snakemake(cwd: Path, *args, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".snakemake" not in p.parts}


@pytest.mark.slow
def test_a_bad_edit_after_a_finished_run_leaves_every_result_byte_identical(tmp_path):
    project = copy_project(tmp_path / "p")
    res = snakemake(project, "-q")
    assert res.returncode == 0, res.stderr[-3000:]
    before = snapshot(project / "results")
    edit_config(project, lambda c: c["outcomes"]["treg_abs"].update(analyses={"gosh": {"subsets": "abc"}}))
    res = snakemake(project)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "Traceback" not in out and "gosh/subsets" in out, out[-3000:]
    assert "Building DAG of jobs" not in out
    assert snapshot(project / "results") == before
    tree = snapshot(project)
    res = snakemake(project, "-n")                           # a dry run writes nothing (outside .snakemake)
    assert res.returncode != 0
    assert snapshot(project) == tree
