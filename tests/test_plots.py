"""Forest and funnel plots (metapool.plots).

The plotted analyses are built by hand from the R metafor reference results in
tests/metafor_cases.json (not from our own fitting code), so the numbers printed in a figure
are checked against metafor: each printed value must equal the reference value rounded to
the printed number of decimals.
"""
import dataclasses
import math
from pathlib import Path
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from conftest import load_cases
from metapool.analysis import OutcomeAnalysis
from metapool.plots.forest import build_forest, build_summary_forest, forest_plot, summary_forest
from metapool.plots.funnel import build_funnel, funnel_plot
from metapool.plots.style import parse_number, text_width
from metapool.results import EffectSizes, MetaResult
from metapool.spec import resolve_spec

CASES = {c["case"]: c for c in load_cases()}
ANALYSIS_CASES = {c["case"]: c for c in load_cases(Path(__file__).parent / "metafor_cases_analyses.json")}
NUM = r"(−?-?\d+(?:\.\d+)?)"
CI_RE = re.compile(rf"^{NUM} \[{NUM}, {NUM}\]$")

_N_COLUMNS = {"proportion": ["total"], "binary": ["total_treat", "total_ctrl"],
              "continuous": ["n_treat", "n_ctrl"], "prepost": ["n"], "generic": []}


def _nan(v):
    return math.nan if v in ({}, None) else float(v)


def _ni(case):
    rows = pd.DataFrame(case["rows"])
    cols = _N_COLUMNS[case["type"]]
    return rows[cols].sum(axis=1).to_numpy(float) if cols else None


def _result(case) -> MetaResult:
    e = case["expected"]
    ci = {k: e.get(k) or [None, None] for k in ("tau2_ci", "I2_ci", "H2_ci")}
    method = case["method"]
    rows = case["rows"]
    return MetaResult(
        measure=case["measure"], method=method, test=case.get("test", "z"), level=case["level"],
        study=tuple(r["study"] for r in rows), yi=e["yi"], vi=e["vi"], weights=e["weights_percent"],
        k=int(e["k"]), estimate=e["estimate"], se=e["se"], stat=e["stat"], pval=_nan(e["pval"]),
        ci_lb=e["ci_lb"], ci_ub=e["ci_ub"], pi_lb=_nan(e.get("pi_lb")), pi_ub=_nan(e.get("pi_ub")),
        tau2=_nan(e.get("tau2")), I2=_nan(e.get("I2")), H2=_nan(e.get("H2")), Q=_nan(e.get("Q")),
        Q_df=_nan(e.get("Q_df")), Q_pval=_nan(e.get("Q_pval")),
        tau2_ci_lb=_nan(ci["tau2_ci"][0]), tau2_ci_ub=_nan(ci["tau2_ci"][1]),
        I2_ci_lb=_nan(ci["I2_ci"][0]), I2_ci_ub=_nan(ci["I2_ci"][1]),
        ni=_ni(case))


def make_analysis(dataset, measure, methods=("FE", "REML"), test="z", data=None, label=None, **fields):
    """An OutcomeAnalysis of a reference dataset with the metafor fits of ``methods`` (R values,
    not our fitting code); ``fields`` set further OutcomeAnalysis fields (provenance, ...)."""
    cases = [CASES[f"{dataset}_{measure}_{m}_{'z' if m == 'FE' else test}"] for m in methods]
    c0 = cases[0]
    e = c0["expected"]
    frame = pd.DataFrame(c0["rows"]) if data is None else data
    eff = EffectSizes(measure=measure, kind=c0["type"], study=[r["study"] for r in c0["rows"]],
                      yi=e["yi"], vi=e["vi"], ni=_ni(c0), data=frame.to_dict("records"))
    label = label or f"{dataset} ({measure})"
    spec = resolve_spec({"label": label, "measure": measure, "methods": list(methods)})
    return OutcomeAnalysis(outcome=f"{dataset}_{measure}", label=label, spec=spec, effects=eff,
                           fits=tuple(_result(c) for c in cases), **fields)


def _with(a, **fields):
    return dataclasses.replace(a, **fields)


def texts(fig):
    return {t.get_gid(): t.get_text() for t in fig.findobj(Text) if t.get_gid()}


def all_text(fig):
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def parse_ci(s):
    m = CI_RE.match(s)
    assert m, f"not an 'estimate [lb, ub]' text: {s!r}"
    return [parse_number(g) for g in m.groups()]


def assert_printed(printed, values, decimals, what):
    """Each printed number equals the true value rounded to ``decimals``."""
    values = np.asarray(values, float)
    assert np.all(np.abs(np.asarray(printed) - values) <= 0.5 * 10.0 ** -decimals + 1e-9), \
        f"{what}: printed {printed}, true {values}"


KINDS = [("pritz1997", "PLO"), ("pritz1997", "PFT"), ("pritz1997", "PR"), ("bcg", "RR"),
         ("bcg", "OR"), ("bcg", "RD"), ("normand1999", "MD"), ("normand1999", "SMD"),
         ("prepost_demo", "SMCR"), ("hackshaw1998", "GEN")]
BACK = {"PLO", "PAS", "PFT", "RR", "OR"}       # measures whose reporting scale differs


def _reporting(case, key):
    e = case["expected"]
    return e["back"][key] if case["measure"] in BACK else e[key]


def _factor_digits(measure):
    return (100.0, 1) if measure in ("PR", "PLO", "PAS", "PFT") else (1.0, 2)


# ----------------------------------------------------------------------------- files

@pytest.mark.parametrize("dataset,measure", KINDS)
def test_forest_and_funnel_files_for_each_data_kind(tmp_path, dataset, measure):
    a = make_analysis(dataset, measure)
    written = forest_plot(a, tmp_path / "x_forest") + funnel_plot(a, tmp_path / "x_funnel")
    assert sorted(p.name for p in written) == ["x_forest.png", "x_forest.svg", "x_funnel.png",
                                               "x_funnel.svg"]
    for p in written:
        head = p.read_bytes()[:200]
        assert head.startswith(b"\x89PNG") if p.suffix == ".png" else b"<svg" in p.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_figures_are_byte_identical_between_runs(tmp_path):
    a = make_analysis("bcg", "RR")
    for run in ("a", "b"):
        forest_plot(a, tmp_path / run / "f")
        funnel_plot(a, tmp_path / run / "u", egger={"estimate": -0.1, "slope": -1.2})
    for name in ("f.png", "f.svg", "u.png", "u.svg"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    svg = (tmp_path / "a" / "f.svg").read_text()
    assert "<dc:date>" not in svg


def test_no_figure_left_open_and_failed_save_leaves_no_file(tmp_path):
    import matplotlib.pyplot as plt

    a = make_analysis("pritz1997", "PLO")
    before = plt.get_fignums()
    forest_plot(a, tmp_path / "f")
    assert plt.get_fignums() == before
    with pytest.raises(ValueError, match="unsupported figure format"):
        forest_plot(a, tmp_path / "g", formats=("bmpx",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "f.svg"]


# ----------------------------------------------------------------------------- numbers

@pytest.mark.parametrize("dataset,measure", KINDS)
def test_forest_prints_the_metafor_numbers(dataset, measure):
    a = make_analysis(dataset, measure)
    t = texts(build_forest(a))
    factor, dec = _factor_digits(measure)
    for j, m in enumerate(("FE", "REML")):
        case = CASES[f"{dataset}_{measure}_{m}_z"]
        want = [_reporting(case, k) * factor for k in ("estimate", "ci_lb", "ci_ub")]
        assert_printed(parse_ci(t[f"pooled-{j}-est"]), want, dec, f"{m} estimate")
        assert t[f"pooled-{j}-label"].startswith("Fixed effect" if m == "FE" else "Random effects")
    reml = CASES[f"{dataset}_{measure}_REML_z"]
    pi = t["pi-est"].strip("[]").split(", ")
    assert_printed([parse_number(x) for x in pi],
                   [_reporting(reml, "pi_lb") * factor, _reporting(reml, "pi_ub") * factor], dec, "PI")
    w_re = [parse_number(t[f"study-{i}-w0"]) for i in range(a.effects.k)]
    w_fe = [parse_number(t[f"study-{i}-w1"]) for i in range(a.effects.k)]
    assert_printed(w_re, reml["expected"]["weights_percent"], 1, "REML weights")
    assert_printed(w_fe, CASES[f"{dataset}_{measure}_FE_z"]["expected"]["weights_percent"], 1, "FE weights")
    het = next(s for s in all_text(build_forest(a)) if s.startswith("Heterogeneity (REML)"))
    e = reml["expected"]
    i2 = float(re.search(r"I² = ([\d.]+)%", het).group(1))
    q = float(re.search(r"Q = ([\d.]+), df = (\d+)", het).group(1))
    assert abs(i2 - e["I2"]) <= 0.05 + 1e-9 and abs(q - e["Q"]) <= 0.005 + 1e-9, het
    assert f"df = {int(e['Q_df'])}" in het


@pytest.mark.parametrize("dataset,measure,inv", [
    ("pritz1997", "PLO", lambda x: 1 / (1 + np.exp(-x))), ("bcg", "RR", np.exp),
    ("normand1999", "SMD", lambda x: x), ("hackshaw1998", "GEN", lambda x: x)])
def test_study_rows_print_back_transformed_normal_cis(dataset, measure, inv):
    a = make_analysis(dataset, measure)
    t = texts(build_forest(a))
    factor, dec = _factor_digits(measure)
    y, se = a.effects.yi, np.sqrt(a.effects.vi)
    for i in range(a.effects.k):
        want = inv(np.array([y[i], y[i] - 1.959963984540054 * se[i], y[i] + 1.959963984540054 * se[i]]))
        assert_printed(parse_ci(t[f"study-{i}-est"]), want * factor, dec, a.effects.study[i])


def test_ratio_axis_is_logarithmic_with_reference_line_at_one():
    for measure, scale, ref in (("RR", "log", 1.0), ("OR", "log", 1.0), ("MD", "linear", 0.0)):
        ds = "normand1999" if measure == "MD" else "bcg"
        fig = build_forest(make_analysis(ds, measure))
        ax = fig.axes[0]
        assert ax.get_xscale() == scale
        vertical = [ln for ln in ax.get_lines() if np.allclose(ln.get_xdata(), ref)
                    and np.ptp(ln.get_ydata()) > 0]
        assert vertical, f"no reference line at {ref} for {measure}"
    fig = build_forest(make_analysis("pritz1997", "PLO"))
    assert fig.axes[0].get_xlabel() == "Proportion (%)"
    lo, hi = fig.axes[0].get_xlim()
    assert 0 <= lo < hi <= 100


def test_raw_data_columns_and_totals():
    a = make_analysis("bcg", "RR")
    t = texts(build_forest(a))
    rows = CASES["bcg_RR_FE_z"]["rows"]
    assert t["study-0-events_treat"] == str(rows[0]["events_treat"])
    assert t["study-0-total_ctrl"] == str(rows[0]["total_ctrl"])
    assert t["pooled-0-total_treat"] == str(sum(r["total_treat"] for r in rows))
    texts_all = all_text(build_forest(make_analysis("normand1999", "MD")))
    assert {"Mean", "SD", "Total", "LD-IL-2", "Control"} <= set(texts_all)
    texts_all = all_text(build_forest(make_analysis("prepost_demo", "SMCR")))
    assert {"Before", "After", "N"} <= set(texts_all)


# ----------------------------------------------------------------------------- layout

def _row_overlaps(fig):
    """Pairs of drawn texts whose rendered boxes overlap, and every drawn (text, box)."""
    from test_figure_layout import drawn_texts, overlaps

    boxes = drawn_texts(fig)
    return overlaps(boxes), [(t.get_text(), b) for t, b in boxes]


@pytest.mark.parametrize("dataset,measure", [("bcg", "RR"), ("normand1999", "MD"),
                                             ("pritz1997", "PFT"), ("hackshaw1998", "GEN"),
                                             ("prepost_demo", "SMCR")])
def test_no_text_overlaps_and_nothing_outside_the_figure(dataset, measure):
    title = ("A long outcome label, proportion of LD-IL-2-treated patients with a response "
             "(includes INFERRED numbers, see the evidence table) " * 2)
    fig = build_forest(make_analysis(dataset, measure, label=title))
    bad, boxes = _row_overlaps(fig)
    assert not bad, bad[:5]
    w, h = fig.canvas.get_width_height()
    outside = [s for s, b in boxes if b.x0 < -0.5 or b.y0 < -0.5 or b.x1 > w + 0.5 or b.y1 > h + 0.5]
    assert not outside, outside


def test_long_labels_are_shortened_in_the_middle_keeping_the_year():
    from metapool.plots.forest import LABEL_MAX

    long = "A very long study label from a multicentre trial with many, many authors et al. 2021"
    a = make_analysis("bcg", "RR")
    key = a.effects.study[0]
    fig = build_forest(_with(a, study_labels={key: long}))
    label = texts(fig)["study-0-label"]
    head, tail = label.split("\u2026")
    assert long.startswith(head) and tail == " 2021"
    assert text_width(label) <= LABEL_MAX + 1e-9
    assert not _row_overlaps(fig)[0]


def _provenance(a, status=None, conversion=None, note=None):
    status, conversion, note = status or {}, conversion or {}, note or {}
    return tuple({"study": s, "status": status.get(i, "reported"), "pooled": True,
                  **({"conversion": conversion[i]} if i in conversion else {}),
                  **({"note": note[i]} if i in note else {})}
                 for i, s in enumerate(a.effects.study))


def test_markers_for_inferred_and_converted_rows():
    a = make_analysis("bcg", "RR")
    prov = _provenance(a, status={12: "inferred"}, conversion={2: "Wan 2014"},
                       note={12: "denominator read from a figure"})
    fig = build_forest(_with(a, provenance=prov))
    t, s = texts(fig), all_text(fig)
    assert t["study-12-label"].endswith("\u2020")
    assert t["study-2-label"].endswith("\u2021")
    assert not t["study-0-label"].endswith(("\u2020", "\u2021"))
    foot = " ".join(s)
    assert "\u2020 Inferred numbers" in foot and "in the primary pool" in foot
    assert f"{a.effects.study[12]} (denominator read from a figure)" in foot
    assert any(x.startswith("\u2021") and "Wan 2014" in x for x in s)


def test_study_rows_use_author_year_labels_from_the_study_table():
    """Rows show "Author Year" (duplicates a, b) made from the study table; ids stay in the data."""
    from metapool.analysis import study_labels

    a = make_analysis("bcg", "RR")
    ids = list(a.effects.study)
    authors = ["He J", "He J", "von Spee-Mayer C", "NR"] + [f"Author{i} AB" for i in range(4, len(ids))]
    years = [2020, 2020, 2016, 2019] + [1950 + i for i in range(4, len(ids))]
    studies = pd.DataFrame({"study": ids, "author": authors, "year": years})
    labels = study_labels(studies, ids)
    assert labels[ids[0]] == "He 2020a" and labels[ids[1]] == "He 2020b"
    assert labels[ids[2]] == "von Spee-Mayer 2016"
    assert labels[ids[3]] == ids[3]                       # no author: the id is kept
    assert labels[ids[5]] == "Author5 1955"
    b = _with(a, study_labels=labels)
    t = texts(build_forest(b))
    assert [t[f"study-{i}-label"] for i in range(a.effects.k)] == [labels[s] for s in ids]
    assert not any(t[f"study-{i}-label"] == ids[i] for i in (0, 1, 2, 5))
    assert not _row_overlaps(build_forest(b))[0]
    # without labels the ids are shown, as before
    t0 = texts(build_forest(a))
    assert [t0[f"study-{i}-label"] for i in range(a.effects.k)] == ids


def test_inferred_rows_left_out_of_the_primary_pool_are_open_and_pooled_in_a_second_diamond():
    """Rows the status filter left out come from the inferred-sensitivity analysis of
    metapool.analysis: open circles, dagger, a second diamond, a footnote naming them."""
    from metapool.analysis import analyse_outcome

    rows = [dict(r, outcome="bcg", status="reported") for r in CASES["bcg_RR_FE_z"]["rows"]]
    rows[-1]["status"] = "inferred"
    rows[-1]["note"] = "allocation inferred from the discussion"
    a = analyse_outcome("bcg", {"label": "BCG", "measure": "RR", "methods": ["FE", "REML"],
                                "favours": ["Favours BCG", "Favours control"]}, rows)
    assert a.k == 12 and a.inferred_sensitivity.k == 13
    fig = build_forest(a)
    t, s = texts(fig), all_text(fig)
    open_rows = [k for k in t if k.startswith("inferred-") and k.endswith("-label")]
    assert [t[k] for k in open_rows] == [rows[-1]["study"] + " \u2020"]
    sens = a.inferred_sensitivity.fit("REML").reporting()
    assert_printed(parse_ci(t["pooled-sensitivity-est"]), [sens["estimate"], sens["ci_lb"], sens["ci_ub"]],
                   2, "sensitivity diamond")
    assert t["pooled-sensitivity-label"] == "Including inferred numbers (REML, k = 13)"
    foot = " ".join(s)
    assert "open circles, not in the primary pool" in foot and "allocation inferred from the discussion" in foot
    ax = fig.axes[0]
    circles = [ln for ln in ax.get_lines() if ln.get_marker() == "o" and ln.get_markerfacecolor() == "white"]
    assert len(circles) == 1
    assert texts(fig)["favours-left"].startswith("\u2190 Favours BCG")


def test_subgroup_blocks_print_the_metafor_subgroup_fits(tmp_path):
    """Subtotals and the test for subgroup differences of bcg by allocation against R metafor
    (``bcg_alloc_REML_z_separate`` in tests/metafor_cases_analyses.json)."""
    from metapool.subgroups import subgroup_analysis

    ref = ANALYSIS_CASES["bcg_alloc_REML_z_separate"]
    a = make_analysis("bcg", "RR")
    alloc = {r["study"]: r["alloc"] for r in ref["rows"]}
    sg = subgroup_analysis(a.effects, groups=[alloc[s] for s in a.effects.study], method="REML", by="alloc")
    b = _with(a, subgroups=sg)
    fig = build_forest(b)
    t, s = texts(fig), all_text(fig)
    want = {g["name"]: g for g in ref["expected"]["groups"]}
    assert {"alternate", "random", "systematic"} <= set(s)
    for g_i, g in enumerate(sg.groups):
        r = want[g.name]
        assert_printed(parse_ci(t[f"subgroup-{g_i}-est"]), np.exp([r["estimate"], r["ci_lb"], r["ci_ub"]]),
                       2, g.name)
        assert t[f"subgroup-{g_i}-label"] == f"Subtotal (REML, k = {r['k']})"
        het = t[f"subgroup-{g_i}-het"]
        assert het.startswith("Heterogeneity: ") and "\u2026" not in het
        assert f"Q = {r['Q']:.2f}, df = {r['k'] - 1}" in " ".join(
            v for k, v in t.items() if k.startswith(f"subgroup-{g_i}-het"))
    test = ref["expected"]["test"]
    line = next(x for x in s if x.startswith("Test for subgroup differences"))
    assert f"Q = {test['Q_between']:.2f}, df = {test['df']}, p = {test['pval']:.3f}" in line
    # study rows appear under their subgroup header, in the group order
    ys = {x.get_text(): x.get_position()[1] for x in fig.findobj(Text)}
    assert ys["alternate"] < ys["Stein & Aronson 1953"] < ys["random"] < ys["Aronson 1948"] < ys["systematic"]
    assert not _row_overlaps(fig)[0]
    assert len(forest_plot(b, tmp_path / "sg")) == 2


@pytest.mark.parametrize("k", [1, 2])
def test_one_and_two_studies(tmp_path, k):
    a = make_analysis("bcg", "RR")
    e = a.effects
    sub = lambda x: x[:k]  # noqa: E731
    eff = EffectSizes("RR", "binary", e.study[:k], sub(e.yi), sub(e.vi), sub(e.ni), e.data[:k])
    fits = []
    for f in a.fits:   # hand-made fits of the first k studies (values are not checked here)
        if k == 1 and f.is_random:
            continue                          # as metapool.analysis: no random-effects fit of one study
        fits.append(dataclasses.replace(f, study=e.study[:k], yi=sub(e.yi), vi=sub(e.vi),
                                        weights=np.full(k, 100.0 / k), k=k, ni=sub(e.ni),
                                        Q=math.nan if k == 1 else 1.0, Q_df=k - 1.0))
    notes = ("REML not fitted: k = 1 (random-effects models need 2 studies)",) if k == 1 else ()
    an = _with(a, effects=eff, fits=tuple(fits), notes=notes)
    fig = build_forest(an)
    t, s = texts(fig), all_text(fig)
    assert ("pi-est" in t) == (k > 1)
    if k == 1:
        assert [x for x in s if "eterogeneity" in x] == ["Heterogeneity: not applicable (k = 1)."]
        assert any(x.startswith("REML not fitted: k = 1") for x in s)
    assert not [x for x in s if re.search(r"\bNA\b", x)]
    assert len(forest_plot(an, tmp_path / "f") + funnel_plot(an, tmp_path / "u")) == 4


def test_ratios_below_001_print_two_significant_digits_never_zero():
    from metapool.plots.forest import _fmt_value, _scale

    sc = _scale("OR")
    assert [_fmt_value(v, sc) for v in (0.0068, 0.0123, 0.00049, 0.00003, 1.5, 2345.6)] == \
        ["0.0068", "0.01", "0.00049", "<0.0001", "1.50", "2346"]
    assert _fmt_value(0.0068, _scale("MD")) == "0.01"


# ----------------------------------------------------------------------------- funnel

def test_funnel_contents():
    a = make_analysis("bcg", "RR")
    fig = build_funnel(a, filled={"yi": [0.1, 0.2], "vi": [0.3, 0.1]},
                       egger={"estimate": -0.2, "slope": -1.0, "pval": 0.04})
    ax = fig.axes[0]
    assert ax.get_ylim()[0] > ax.get_ylim()[1] == 0          # inverted, SE 0 at the top
    s = all_text(fig)
    assert "Imputed by trim and fill (2)" in s and "Egger regression line (p = 0.040)" in s
    assert any("p \u2264 0.01" == x for x in s)               # contour legend
    assert not any("fewer than" in x for x in s)              # k = 13: no low-power note
    assert fig.axes[1].get_xlabel() == "Risk ratio"          # reporting scale on top
    top = [x.get_text() for x in fig.axes[1].get_xticklabels()]
    assert "1" in top
    pos = fig.axes[1].get_xticks()[top.index("1")]
    assert abs(pos) < 1e-9                                    # RR = 1 sits at log RR = 0
    egger_line = [ln for ln in ax.get_lines() if ln.get_color() == "#b2182b"][0]
    se_max = ax.get_ylim()[0]                                  # yi = estimate + slope * se
    assert np.allclose(egger_line.get_xdata(), [-0.2, -0.2 - 1.0 * se_max])


def test_funnel_text_inside_the_figure():
    fig = build_funnel(make_analysis("pritz1997", "PFT", label="A very long funnel title " * 8))
    bad, boxes = _row_overlaps(fig)
    w, h = fig.canvas.get_width_height()
    assert not [s for s, b in boxes if b.x0 < 0 or b.y0 < 0 or b.x1 > w or b.y1 > h]


def test_funnel_few_studies_note_and_no_contours_for_proportions():
    fig = build_funnel(make_analysis("normand1999", "MD"))      # k = 9
    note = " ".join(all_text(fig)).replace("\n", " ")
    assert "Only 9 studies: with fewer than 10 studies" in note and "Cochrane Handbook" in note
    fig = build_funnel(make_analysis("pritz1997", "PLO"))
    s = " ".join(all_text(fig))
    assert "single-arm proportions have no null value" in s
    assert "p \u2264 0.01" not in s
    assert fig.axes[1].get_xlabel() == "Proportion (%)"
    with pytest.raises(ValueError, match="limit estimate"):
        build_funnel(make_analysis("bcg", "RR"), egger={"pval": 0.1})
    with pytest.raises(ValueError, match="Peters"):
        build_funnel(make_analysis("bcg", "RR"), egger={"predictor": "ninv", "estimate": 0, "slope": 1})


def test_funnel_draws_the_bias_module_results():
    """Egger line and trim-and-fill points from metapool.bias objects (metafor regtest/trimfill)."""
    bias = pytest.importorskip("metapool.bias")
    a = make_analysis("bcg", "RR")
    eg = bias.egger_test(a.effects.yi, a.effects.vi)
    tf = bias.trim_and_fill(a.effects.yi, a.effects.vi)
    ref = CASES["bcg_RR_bias"]["expected"]
    fig = build_funnel(a, filled=tf, egger=eg)
    ax = fig.axes[0]
    open_pts = [c for c in ax.collections if len(c.get_offsets()) == ref["trimfill_FE"]["k0"]]
    assert open_pts, "trim-and-fill points missing"
    line = [ln for ln in ax.get_lines() if ln.get_color() == "#b2182b"][0]
    assert np.isclose(line.get_xdata()[0], ref["egger_lm"]["intercept"])   # metafor's limit estimate
    fig2 = build_funnel(a, filled=tf.to_dict(), egger=eg.to_dict())
    assert len(fig2.axes[0].collections) == len(ax.collections)


# ----------------------------------------------------------------------------- summary forest

def test_summary_forest_back_transforms_rows(tmp_path):
    case = CASES["bcg_RR_bias"]["expected"]["leave1out_REML"]
    labels = [f"omitting {r['study']}" for r in CASES["bcg_RR_bias"]["rows"]]
    fig = build_summary_forest(labels, case["estimate"], case["ci_lb"], case["ci_ub"], measure="RR",
                               pooled=_result(CASES["bcg_RR_REML_z"]))
    t = texts(fig)
    for i in range(len(labels)):
        want = np.exp([case["estimate"][i], case["ci_lb"][i], case["ci_ub"][i]])
        assert_printed(parse_ci(t[f"row-{i}-est"]), want, 2, labels[i])
    assert fig.axes[0].get_xscale() == "log"
    assert "pooled-0-est" in t
    assert not _row_overlaps(fig)[0]
    out = summary_forest(labels, case["estimate"], case["ci_lb"], case["ci_ub"], measure="RR",
                         path_stem=tmp_path / "loo", title="Leave-one-out")
    assert all(p.stat().st_size > 0 for p in out)
    with pytest.raises(ValueError, match="same length"):
        build_summary_forest(labels[:2], case["estimate"], case["ci_lb"], case["ci_ub"], measure="RR")
