"""One plan of every path a run creates, checked before anything is read or written.

Outputs, files inside hub folders, configs, reports and metafiles: any two that are one path (as
written, through a symlink, through ``..``, or a hard link) or one inside a folder published whole,
and any of them that is an input, end the run with exit 2 and one line, and nothing is created,
whether or not the directories exist yet. Built from the class: every pair of kinds, every relation.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ckptconv.errors import UsageError
from ckptconv.io.paths import Planned, check_plan


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def one_error_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


# --- the plan itself: relations, whatever the kinds ---------------------------------------------------

RELATIONS = {
    "the same name": lambda d, a: a,
    "a name through ..": lambda d, a: a.parent / "sub" / ".." / a.name,
    "a symlink to it": lambda d, a: _link(d / "link", a),
    "a symlinked folder": lambda d, a: _link(d / "linked", a.parent) / a.name,
}


def _link(link: Path, target: Path) -> Path:
    """``link``, a symlink to ``target`` (which need not exist yet)."""
    link.symlink_to(target)
    return link


@pytest.mark.parametrize("relation", RELATIONS)
@pytest.mark.parametrize("exists", [False, True])
def test_two_planned_paths_that_are_one_are_refused(tmp_path, relation, exists):
    out = tmp_path / "out" / "a.pth"
    (tmp_path / "out" / "sub").mkdir(parents=True)
    if exists:
        out.write_bytes(b"x")
    other = RELATIONS[relation](tmp_path, out)
    with pytest.raises(UsageError, match="are the same file"):
        check_plan([Planned(out, "OUT"), Planned(other, "--report")], [])


@pytest.mark.parametrize("relation", RELATIONS)
def test_a_path_inside_a_planned_folder_is_refused(tmp_path, relation):
    folder = tmp_path / "out" / "hub"
    (tmp_path / "out" / "sub").mkdir(parents=True)
    inner = RELATIONS[relation](tmp_path, folder / "snippet.py")
    with pytest.raises(UsageError, match="would be written inside the folder"):
        check_plan([Planned(folder, "OUT", folder=True), Planned(inner, "--config-out")], [])
    with pytest.raises(UsageError, match="would be written inside the folder"):
        check_plan([Planned(folder / "nested", "the output of b", folder=True), Planned(folder, "the output of a", folder=True)], [])


def test_an_input_is_never_planned_and_never_inside_a_planned_folder(tmp_path):
    src = tmp_path / "in" / "a.pyth"
    src.parent.mkdir()
    src.write_bytes(b"x")
    os.link(src, tmp_path / "hard.pyth")
    for other in (src, tmp_path / "in" / "." / "a.pyth", tmp_path / "hard.pyth"):
        with pytest.raises(UsageError, match="the output is the input"):
            check_plan([Planned(other, "OUT")], [src])
    with pytest.raises(UsageError, match="the output folder holds the input"):
        check_plan([Planned(tmp_path / "in", "OUT", folder=True)], [src])


# --- through the command line: every pair of the batch's kinds ---------------------------------------


@pytest.fixture
def zoo(tmp_path, make_ckpt):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    make_ckpt("b0", name="b0.pyth", directory=zoo)
    make_ckpt("b1", name="b1.pyth", directory=zoo)
    return zoo


@pytest.mark.parametrize("out_dir_exists", [False, True])
@pytest.mark.parametrize("first, second", [("--report", "output"), ("--metafile", "output"), ("--report", "--metafile"),
                                           ("--report", "config"), ("--metafile", "config")])
def test_a_batch_path_that_meets_another_is_refused_before_anything_is_made(cli, zoo, tmp_path, out_dir_exists, first, second):
    out = tmp_path / "out"
    if out_dir_exists:
        out.mkdir()
    where = {"output": out / "b0.pth", "config": out / "b0.py", "--report": out / "b0.pth", "--metafile": out / "b0.pth"}
    path = where[second] if second in ("output", "config") else out / "shared.yml"
    args = ["batch", zoo, "--out-dir", out, "--verify", "structure", "--configs"]
    args += [first, path] + ([second, path] if second.startswith("--") else [])
    before = listing(tmp_path)
    result = cli(*args)
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert "are the same file" in line and first in line
    assert listing(tmp_path) == before  # not even --out-dir was made


def test_hub_folders_planned_inside_each_other_are_refused(cli, make_ckpt, tmp_path):
    make_ckpt("b0", name="b0.pyth")
    make_ckpt("b1", name="b1.pyth")
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"checkpoints": [{"source": "b0.pyth", "output": "a"}, {"source": "b1.pyth", "output": "a/b"}]}))
    before = listing(tmp_path)
    result = cli("batch", manifest, "--to", "timm", "--hub", "--out-dir", tmp_path / "out", "--verify", "structure")
    assert result.exit_code == 2 and "would be written inside the folder" in one_error_line(result)
    assert listing(tmp_path) == before


def test_an_out_dir_holding_the_input_folder_is_named_as_such(cli, zoo):
    result = cli("batch", zoo, "--out-dir", zoo)
    assert result.exit_code == 2 and "holds the input folder" in one_error_line(result)


def test_merge_outputs_are_neither_a_share_nor_each_other(cli, tmp_path):
    share = tmp_path / "share.json"
    share.write_text("{}")
    for args in (("--out", share), ("--out", tmp_path / "m.json", "--metafile", tmp_path / "m.json"), ("--out", tmp_path / "o.json", "--metafile", share)):
        result = cli("report", "merge", share, *args)
        assert result.exit_code == 2, result.output
        one_error_line(result)


def test_two_metafile_entries_of_one_name_are_refused(cli, make_ckpt, tmp_path):
    """A metafile names a model by its output's path, '/' as '_': a/b.pth and a_b.pth would be one."""
    make_ckpt("b0", name="b0.pyth")
    make_ckpt("b1", name="b1.pyth")
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"checkpoints": [{"source": "b0.pyth", "output": "a/b.pth"}, {"source": "b1.pyth", "output": "a_b.pth"}]}))
    before = listing(tmp_path)
    result = cli("batch", manifest, "--out-dir", tmp_path / "out", "--metafile", tmp_path / "meta.yml", "--verify", "structure")
    assert result.exit_code == 2 and "--metafile would name two models 'a_b'" in one_error_line(result)
    assert listing(tmp_path) == before
