"""Aggregates with identity: a report carries its plan, ``report merge`` never calls two different
batches one, types every field it reads and names every problem; a batch always says when it
converts only a share, and from which variable; no two shares write one file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARDS = ("--shard", "1/2"), ("--shard", "2/2")


@pytest.fixture(scope="module")
def sources(tmp_path_factory, built):
    zoo = tmp_path_factory.mktemp("zoo")
    for i, arch in enumerate(("b0", "regnetx_200mf", "regnety_200mf")):
        (zoo / f"m{i}.pyth").write_bytes(built.source(arch).read_bytes())
    return zoo


@pytest.fixture(scope="module")
def timm_shares(tmp_path_factory, sources):
    """One batch to timm in two shares (read-only: a test that edits a report edits a copy)."""
    from click.testing import CliRunner

    from ckptconv.cli import main

    def cli(*args):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    return shares(cli, sources, tmp_path_factory.mktemp("shares"), "a", "--to", "timm")


def shares(cli, sources: Path, tmp_path: Path, tag: str, *more) -> list[Path]:
    reports = []
    for k, (flag, share) in enumerate(SHARDS, 1):
        report = tmp_path / f"{tag}-{k}.json"
        result = cli("batch", sources, "--out-dir", tmp_path / tag, flag, share, "--report", report, "--verify", "structure", "-j", "1", *more)
        assert result.exit_code in (0, 1), result.output
        reports.append(report)
    return reports


def one_error_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


@pytest.mark.parametrize("differ", [("--to", "timm"), ("--dtype", "fp16"), ("--weights", "model"), ("--out-dir", None)])
def test_merge_refuses_shares_of_different_batches(cli, sources, timm_shares, tmp_path, differ):
    first = timm_shares[0]
    if differ[1] is None:  # the same options into another tree
        second = shares(cli, sources, tmp_path, "b", "--to", "timm")[1]
    else:
        extra = ("--to", "timm", differ[0], differ[1]) if differ[0] != "--to" else ("--to", "timm,torchvision")
        second = shares(cli, sources, tmp_path, "c", *extra)[1]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = cli("report", "merge", first, second, "--out", tmp_path / "merged.json")
    assert result.exit_code == 2 and "are reports of different batches" in one_error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_merge_of_one_batchs_shares_carries_its_plan(cli, timm_shares, tmp_path):
    reports = timm_shares
    plans = [json.loads(r.read_text())["plan"] for r in reports]
    assert plans[0] == plans[1] and plans[0]["targets"] == ["timm"] and plans[0]["jobs"] == 3
    assert cli("report", "merge", *reports, "--out", tmp_path / "merged.json").exit_code == 0
    assert json.loads((tmp_path / "merged.json").read_text())["plan"] == plans[0]


@pytest.mark.parametrize("field, value", [("may_refuse", "no"), ("may_refuse", 0), ("status", "done"), ("output", 7), ("params", "12"), ("source", None)])
def test_merge_types_every_field_it_reads(cli, timm_shares, tmp_path, field, value):
    data = json.loads(timm_shares[0].read_text())
    data["files"][0][field] = value
    reports = [tmp_path / "edited.json", timm_shares[1]]
    reports[0].write_text(json.dumps(data))
    result = cli("report", "merge", *reports, "--out", tmp_path / "merged.json")
    assert result.exit_code == 2 and field in one_error_line(result)


def test_merge_names_every_file_that_did_not_convert(cli, sources, tmp_path):
    reports = shares(cli, sources, tmp_path, "a", "--to", "mmdet")  # regnety_200mf into mmdet: refused
    result = cli("report", "merge", *reports, "--out", tmp_path / "merged.json")
    assert result.exit_code == 1
    assert "1 file(s) did not convert" in result.stderr and "m2.pyth (refused" in result.stderr
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert merged["problems"] and not merged["ok"]


def test_a_batch_says_when_it_converts_a_share_and_which_variable_said_so(cli, sources, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "0")
    for quiet in ([], ["-q"]):
        result = cli("batch", sources, "--out-dir", tmp_path / "out", "--to", "timm", "--verify", "structure", "-j", "1", *quiet)
        assert result.exit_code == 0
        assert "note: converting share 2 of 2" in result.stderr and "as SLURM_ARRAY_TASK_ID says" in result.stderr
    as_json = cli("batch", sources, "--out-dir", tmp_path / "out", "--to", "timm", "--verify", "structure", "-j", "1", "--json")
    assert json.loads(as_json.stdout)["shard"]["given_by"] == "SLURM_ARRAY_TASK_ID" and as_json.stderr == ""


def test_a_share_never_writes_the_metafile_and_merge_does(cli, sources, tmp_path):
    result = cli("batch", sources, "--out-dir", tmp_path / "out", "--shard", "1/2", "--metafile", tmp_path / "meta.yml")
    assert result.exit_code == 2 and "report merge" in one_error_line(result)
    assert not (tmp_path / "out").exists()
    whole = cli("batch", sources, "--out-dir", tmp_path / "one", "--to", "mmpretrain", "--verify", "structure", "-j", "1", "--metafile", tmp_path / "one.yml")
    assert whole.exit_code == 1  # RegNetY to mmpretrain is refused
    reports = shares(cli, sources, tmp_path, "many", "--to", "mmpretrain")
    merged = cli("report", "merge", *reports, "--out", tmp_path / "merged.json", "--metafile", tmp_path / "many.yml")
    assert merged.exit_code == 1
    import yaml

    one, many = (yaml.safe_load((tmp_path / f"{n}.yml").read_text()) for n in ("one", "many"))
    assert sorted(m["Name"] for m in one["Models"]) == sorted(m["Name"] for m in many["Models"])


def test_a_share_never_replaces_another_shares_report(cli, sources, tmp_path):
    report = tmp_path / "report.json"
    assert cli("batch", sources, "--out-dir", tmp_path / "out", "--shard", "1/2", "--report", report, "--to", "timm", "--verify", "structure", "-j", "1").exit_code == 0
    before = report.read_bytes()
    result = cli("batch", sources, "--out-dir", tmp_path / "out", "--shard", "2/2", "--report", report, "--to", "timm", "--verify", "structure", "-j", "1")
    assert result.exit_code == 2 and "give each share its own --report" in one_error_line(result)
    assert report.read_bytes() == before
    again = cli("batch", sources, "--out-dir", tmp_path / "out", "--shard", "1/2", "--report", report, "--to", "timm", "--verify", "structure", "-j", "1")
    assert again.exit_code == 0  # its own share's report: a rerun replaces it
