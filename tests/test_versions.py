"""The version table (issue 32): which versions of each target library load ckptconv's files strictly
and compute pycls's outputs. tools/groundtruth/versions.py measured them in venvs of their own
(tests/data/versions/measured.json); docs/versions.md's tables and ckptconv/data/versions.json (what
``verify --in-library`` reads) are rendered from those measurements. Data only: no venv, no target
library is imported here.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MEASURED = json.loads((REPO / "tests" / "data" / "versions" / "measured.json").read_text())
RUNTIME = REPO / "ckptconv" / "data" / "versions.json"
DOC = REPO / "docs" / "versions.md"
# The versions CI installs (tools/groundtruth/requirements/gt.txt and gt-nodeps.txt pin the same).
CI = {"timm": "1.0.31", "torchvision": "0.29.1", "mmdet": "3.3.0", "mmpretrain": "1.2.0",
      "transformers": "5.25.0", "onnxruntime": "1.32.0"}


def _script():
    """tools/groundtruth/versions.py as a module: its rendering needs the standard library only."""
    spec = importlib.util.spec_from_file_location("groundtruth_versions", REPO / "tools" / "groundtruth" / "versions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _script()


def test_the_measurements_are_judged_as_the_script_judges_them_today():
    """Every run judged again by the script's tolerances gives the verdicts measured.json holds."""
    assert SCRIPT.refresh(copy.deepcopy(MEASURED)) == MEASURED


def test_the_docs_tables_are_what_the_measurements_render():
    text = DOC.read_text()
    assert text.count(SCRIPT.BEGIN) == 1 and text.count(SCRIPT.END) == 1
    assert SCRIPT.render_doc(text, MEASURED) == text, "run: python tools/groundtruth/versions.py --render"


def test_the_shipped_table_is_what_the_measurements_derive_to():
    assert RUNTIME.read_text() == SCRIPT.runtime_text(MEASURED), "run: python tools/groundtruth/versions.py --render"
    shipped = json.loads(RUNTIME.read_text())
    assert set(shipped["libraries"]) == {"timm", "torchvision", "mmdet", "mmpretrain", "transformers", "onnxruntime"}
    for library, versions in shipped["libraries"].items():
        assert versions == {v: row["verdict"] for v, row in MEASURED["libraries"][library].items() if row["status"] != "not measured"}


def _gt_pins() -> dict[str, str]:
    folder = REPO / "tools" / "groundtruth" / "requirements"
    lines = (folder / "gt.txt").read_text().splitlines() + (folder / "gt-nodeps.txt").read_text().splitlines()
    return dict(m.groups() for m in map(re.compile(r"([\w.-]+)==([\w.+-]+)$").match, lines) if m)


def test_the_ci_versions_are_the_ground_truth_environment_pins():
    pins = _gt_pins()
    assert {lib: pins[lib] for lib in CI} == CI == SCRIPT.PINNED


@pytest.mark.parametrize("library", sorted(CI))
def test_the_ci_version_of_each_library_was_measured_the_same_on_every_model_and_layout(library):
    row = MEASURED["libraries"][library][CI[library]]
    assert row["verdict"] == "same" and row["status"] == "measured" and row["import"] == "ok"
    assert set(row["runs"]) == set(MEASURED["models"])
    for model, layouts in row["runs"].items():
        assert set(layouts) == set(MEASURED["layouts"][library]), model
        for layout, run in layouts.items():
            assert run["ok"] and run["problems"] == [] and run.get("counted", True), (model, layout)
            if "refused" not in run:  # a pair ckptconv refuses by design is only converted
                assert library == "onnxruntime" or run["strict"]["ok"], (model, layout)  # a graph has no state dict
                assert all(run[i]["max_rel"] <= lim for i, (_, lim) in MEASURED["tolerance"][layout].items())


def test_each_measured_row_ran_the_version_it_is_filed_under():
    for library, rows in MEASURED["libraries"].items():
        for version, row in rows.items():
            if row["status"] != "not measured":
                assert row["versions"][library] == version, (library, version)
                assert row["versions"]["torch"].split("+")[0] == "2.14.1", (library, version)
