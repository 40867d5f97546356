"""Checks of committed ground truth itself: what the real packages recorded, before any test reads it.

These tests exercise no ckptconv code. They hold the data files under tests/data/ to what their
scripts (tools/groundtruth/README.md) promise, so a rerun of a script that went wrong fails here and
not as a puzzling mismatch in the tests that read the file.
"""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).parent / "data"


def test_no_printed_line_raised_in_the_real_libraries():
    printed = json.loads((DATA / "pipelines" / "printed.json").read_text())
    assert printed["errors"] == {} and all(s["within_1e-4"] for s in printed["summary"].values())


def test_every_committed_data_file_is_made_by_a_script_the_groundtruth_readme_names():
    """The README's rule: each top-level entry of tests/data/ appears in its table or exceptions."""
    readme = (Path(__file__).parents[1] / "tools" / "groundtruth" / "README.md").read_text()
    unnamed = [p.name for p in DATA.iterdir() if f"tests/data/{p.name}" not in readme]
    assert unnamed == []
