"""The config schema (generated from metapool/registry.py) and the bundled config.yaml."""
import copy
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from metapool import registry

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = registry.config_schema()

VALID = {
    "studies": "data/raw/studies.csv",
    "tables": ["data/raw/proportions.csv"],
    "targets": "data/raw/published_targets.csv",
    "extra_studies": [{"study": "New2025", "outcome": "fever", "events": 3, "total": 20,
                       "source": "New et al. 2025, Table 2", "status": "reported"}],
    "defaults": {"methods": ["FE", "REML"], "test": "z", "level": 0.95, "pi_method": "metafor", "r": 0.5,
                 "continuity": {"add": 0.5, "to": "only0", "drop00": False},
                 "status": ["reported", "derived", "secondary"]},
    "outcomes": {"fever": {"label": "Fever", "measure": "PLO", "methods": ["FE", "DL"],
                           "status": ["reported", "inferred"], "subgroup": "dose_regimen"}},
}


def errors(cfg):
    return list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(cfg))


def with_change(path, value):
    cfg = copy.deepcopy(VALID)
    node = cfg
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return cfg


def test_schema_is_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_schema_file_is_generated_from_the_registry():
    """workflow/schemas/config.schema.yaml is `python -m metapool.registry` output: one source."""
    res = subprocess.run([sys.executable, "-m", "metapool.registry"], capture_output=True, text=True, cwd=ROOT,
                         check=True)
    assert (ROOT / "workflow/schemas/config.schema.yaml").read_text() == res.stdout, \
        "regenerate it: python -m metapool.registry > workflow/schemas/config.schema.yaml"
    assert yaml.safe_load(res.stdout) == SCHEMA


def test_schema_enums_are_the_registry_names():
    outcome = SCHEMA["properties"]["outcomes"]["additionalProperties"]["properties"]
    assert outcome["measure"]["enum"] == list(registry.MEASURES)
    assert SCHEMA["$defs"]["methods"]["items"]["enum"] == list(registry.METHODS)
    assert list(outcome["analyses"]["properties"]) == list(registry.ANALYSES)


def test_example_config_is_valid():
    assert errors(VALID) == []


@pytest.mark.parametrize("path, value", [
    (("outcomes", "fever", "measure"), "XYZ"),                 # unknown measure
    (("outcomes", "fever", "methods"), ["FE", "DLL"]),          # unknown method
    (("defaults", "methods"), ["REML", "BAYES"]),
    (("outcomes", "fever", "status"), ["reported", "guessed"]),  # unknown evidence status
    (("outcomes", "fever", "colour"), "red"),                   # unknown key (typo guard)
    (("defaults", "level"), 95),                                # level is a fraction
    (("defaults", "test"), "t"),
    (("defaults", "continuity"), {"add": -1}),
    (("outcomes", "fever", "label"), KeyError),                 # label required
    (("tables",), []),                                          # at least one table
    (("outcomes",), {}),                                        # at least one outcome
    (("outcomes", "fever bad"), {"label": "x", "measure": "PR"}),  # not usable as a wildcard
    (("outcomes", "fever2\n"), {"label": "x", "measure": "PR"}),  # '$' would accept a final newline
    (("outcomes", "fever", "analyses"), {"cumulative": {"ordr": "year"}}),      # misspelt option key
    (("outcomes", "fever", "analyses"), {"cumulative": {"decresing": True}}),
    (("outcomes", "fever", "analyses"), {"small_study": {"model": "xyz"}}),     # unknown option value
    (("outcomes", "fever", "analyses"), {"inferred_sensitivity": {"statuses": ["infered"]}}),
    (("outcomes", "fever", "analyses"), {"gosh": {"subsets": "abc"}}),         # wrong type
    (("outcomes", "fever", "analyses"), {"leave_one_ot": True}),               # unknown analysis
    (("outcomes", "fever", "analyses"), {"metareg": {}}),                      # moderators required
    (("title",), "x" * 301),                                                    # too long
    (("outcomes", "fever", "favours"), ["only one"]),
])
def test_invalid_configs_are_rejected(path, value):
    assert errors(with_change(path, value)), f"{path} = {value!r} should be rejected"


@pytest.mark.parametrize("drop", ["source", "status", "study", "outcome"])
def test_inline_studies_need_key_and_provenance(drop):
    cfg = copy.deepcopy(VALID)
    del cfg["extra_studies"][0][drop]
    assert errors(cfg)


def test_bundled_config_is_valid():
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert errors(cfg) == []
    for name, spec in cfg["outcomes"].items():
        assert spec["label"].strip(), name


@pytest.mark.skipif(shutil.which("snakemake") is None, reason="snakemake not installed")
def test_invalid_config_stops_before_any_job_without_traceback(tmp_path):
    for part in ("Snakefile", "workflow", "scripts"):
        src = ROOT / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / part)
    cfg = copy.deepcopy(VALID)
    cfg["outcomes"]["fever"]["measure"] = "XYZ"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "outcomes/fever/measure" in out and "XYZ" in out
    assert "Traceback" not in out
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.json"))
