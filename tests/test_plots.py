"""Forest and funnel plots (metapool.plots).

The plotted analyses are built by hand from the R metafor reference results in
tests/metafor_cases.json (not from our own fitting code), so the numbers printed in a figure
are checked against metafor: each printed value must equal the reference value rounded to
the printed number of decimals.
"""
import math
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from conftest import load_cases
from metapool.plots import (build_forest, build_funnel, build_summary_forest, forest_plot,
                            funnel_plot, summary_forest)
from metapool.plots.style import parse_number, text_width
from metapool.results import EffectSizes, MetaResult, OutcomeAnalysis

CASES = {c["case"]: c for c in load_cases()}
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


def make_analysis(dataset, measure, methods=("FE", "REML"), test="z", data=None, extras=None,
                  label=None):
    """An OutcomeAnalysis of a reference dataset with the metafor fits of ``methods``."""
    cases = [CASES[f"{dataset}_{measure}_{m}_{'z' if m == 'FE' else test}"] for m in methods]
    c0 = cases[0]
    e = c0["expected"]
    frame = pd.DataFrame(c0["rows"]) if data is None else data
    eff = EffectSizes(measure=measure, kind=c0["type"], study=[r["study"] for r in c0["rows"]],
                      yi=e["yi"], vi=e["vi"], ni=_ni(c0), data=frame)
    return OutcomeAnalysis(outcome=f"{dataset}_{measure}", label=label or f"{dataset} ({measure})",
                           effects=eff, fits=tuple(_result(c) for c in cases), extras=extras or {})


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
    assert {"Mean", "SD", "Total", "Treatment", "Control"} <= set(texts_all)
    texts_all = all_text(build_forest(make_analysis("prepost_demo", "SMCR")))
    assert {"Before", "After", "N"} <= set(texts_all)


# ----------------------------------------------------------------------------- layout

def _row_overlaps(fig):
    """Pairs of texts on the same row whose rendered boxes overlap horizontally."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(r)) for t in fig.findobj(Text)
             if t.get_text().strip() and t.get_visible()]
    bad = []
    for i, (s1, b1) in enumerate(boxes):
        for s2, b2 in boxes[i + 1:]:
            if b1.overlaps(b2):
                bad.append((s1, s2))
    return bad, boxes


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


def test_long_labels_are_truncated_with_an_ellipsis():
    from metapool.plots.forest import LABEL_MAX

    rows = pd.DataFrame(CASES["bcg_RR_FE_z"]["rows"])
    long = "A very long study label from a multicentre trial with many, many authors et al. 2021"
    a = make_analysis("bcg", "RR")
    eff = EffectSizes("RR", "binary", (long,) + a.effects.study[1:], a.effects.yi, a.effects.vi,
                      a.effects.ni, rows.assign(study=[long] + list(rows.study[1:])))
    fits = tuple(MetaResult(**{**f.__dict__, "study": eff.study}) for f in a.fits)
    fig = build_forest(OutcomeAnalysis("o", "o", eff, fits))
    label = texts(fig)["study-0-label"]
    assert label.endswith("\u2026") and long.startswith(label[:-1])
    assert text_width(label) <= LABEL_MAX + 1e-9
    assert not _row_overlaps(fig)[0]


def test_markers_for_inferred_and_converted_rows():
    rows = pd.DataFrame(CASES["bcg_RR_FE_z"]["rows"])
    rows["status"] = ["reported"] * 12 + ["inferred"]
    rows["note"] = ["", "", "converted from median (IQR)"] + [""] * 10
    rows["conversion"] = ["", "", "Wan 2014"] + [""] * 10
    fig = build_forest(make_analysis("bcg", "RR", data=rows))
    t, s = texts(fig), all_text(fig)
    assert t["study-12-label"].endswith("\u2020")
    assert t["study-2-label"].endswith("\u2021")
    assert not t["study-0-label"].endswith(("\u2020", "\u2021"))
    assert any(x.startswith("\u2020 Inferred") for x in s)
    assert any(x.startswith("\u2021") and "Wan 2014" in x for x in s)


def test_markers_from_provenance_when_the_data_lack_status():
    a = make_analysis("bcg", "RR")
    prov = [{"study": s, "status": "inferred" if i == 4 else "reported", "note": None,
             "conversion": "Hozo 2005" if i == 5 else None} for i, s in enumerate(a.effects.study)]
    b = OutcomeAnalysis(a.outcome, a.label, a.effects, a.fits, {"provenance": prov})
    t = texts(build_forest(b))
    marked = [i for i in range(a.effects.k) if t[f"study-{i}-label"][-1] in "\u2020\u2021"]
    assert marked == [4, 5]
    assert t["study-5-label"].endswith("\u2021")


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
    b = OutcomeAnalysis(a.outcome, a.label, a.effects, a.fits, {"study_labels": labels})
    t = texts(build_forest(b))
    assert [t[f"study-{i}-label"] for i in range(a.effects.k)] == [labels[s] for s in ids]
    assert not any(t[f"study-{i}-label"] == ids[i] for i in (0, 1, 2, 5))
    assert not _row_overlaps(build_forest(b))[0]
    # without labels the ids are shown, as before
    t0 = texts(build_forest(a))
    assert [t0[f"study-{i}-label"] for i in range(a.effects.k)] == ids


def test_forest_footer_names_rows_left_to_the_sensitivity_analysis():
    a = make_analysis("bcg", "RR")
    extras = {"inferred_sensitivity": {"status": "ok", "added": [{"study": "X2019", "status": "inferred"}]},
              "study_labels": {"X2019": "Xu 2019"}}
    fig = build_forest(OutcomeAnalysis(a.outcome, a.label, a.effects, a.fits, extras))
    assert any(x.startswith("Not shown: Xu 2019 (inferred)") for x in all_text(fig))
    assert not any("Xu 2019" in v for k, v in texts(fig).items() if k.startswith("study-"))


def _subgroup_analysis():
    from metapool.models import fit

    a = make_analysis("bcg", "RR")
    eff = a.effects
    groups = []
    for name, sl in (("Before 1960", slice(0, 6)), ("1960 and later", slice(6, None))):
        st = list(eff.study[sl])
        f = fit(eff.yi[sl], eff.vi[sl], method="REML", measure="RR", study=st)
        groups.append({"name": name, "study": st, "fit": f.to_dict()})
    extras = {"subgroups": {"by": "era", "method": "REML", "groups": groups,
                            "test": {"Q_between": 3.21, "df": 1, "pval": 0.073, "tau2": "separate"}}}
    return OutcomeAnalysis(a.outcome, a.label, eff, a.fits, extras)


def test_subgroup_blocks(tmp_path):
    from metapool.results import result_from_dict

    b = _subgroup_analysis()
    fig = build_forest(b)
    t, s = texts(fig), all_text(fig)
    assert {"Before 1960", "1960 and later"} <= set(s)
    for g_i, g in enumerate(b.extras["subgroups"]["groups"]):
        rep = result_from_dict(g["fit"]).reporting()
        assert_printed(parse_ci(t[f"subgroup-{g_i}-est"]), [rep["estimate"], rep["ci_lb"], rep["ci_ub"]],
                       2, g["name"])
        assert t[f"subgroup-{g_i}-label"] == f"Subtotal (REML, k = {len(g['study'])})"
    line = next(x for x in s if x.startswith("Test for subgroup differences"))
    assert "Q = 3.21, df = 1, p = 0.073" in line
    # study rows appear under their subgroup header, in the group order
    ys = {x.get_text(): x.get_position()[1] for x in fig.findobj(Text)}
    assert ys["Before 1960"] < ys["Aronson 1948"] < ys["1960 and later"] < ys["Vandiviere et al 1973"]
    assert not _row_overlaps(fig)[0]
    assert len(forest_plot(b, tmp_path / "sg")) == 2


@pytest.mark.parametrize("k", [1, 2])
def test_one_and_two_studies(tmp_path, k):
    a = make_analysis("bcg", "RR")
    e = a.effects
    sub = lambda x: x[:k]  # noqa: E731
    eff = EffectSizes("RR", "binary", e.study[:k], sub(e.yi), sub(e.vi), sub(e.ni), e.data.iloc[:k])
    fits = []
    for f in a.fits:   # hand-made fits of the first k studies (values are not checked here)
        fits.append(MetaResult(**{**f.__dict__, "study": e.study[:k], "yi": sub(e.yi), "vi": sub(e.vi),
                                  "weights": np.full(k, 100.0 / k), "k": k, "ni": sub(e.ni),
                                  "Q": math.nan if k == 1 else 1.0, "Q_df": k - 1.0}))
    an = OutcomeAnalysis("o", "o", eff, tuple(fits))
    fig = build_forest(an)
    t = texts(fig)
    assert ("pi-est" in t) == (k > 1)
    if k == 1:
        assert any("not estimable (k = 1)" in s for s in all_text(fig))
    assert len(forest_plot(an, tmp_path / "f") + funnel_plot(an, tmp_path / "u")) == 4


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
