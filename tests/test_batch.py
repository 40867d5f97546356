"""``ckptconv batch`` on a small zoo: statuses, report, incremental re-runs, collisions, publish names."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ckptconv.verification import synthetic

ZOO = ("b0", "b2", "b3", "b4")


@pytest.fixture(scope="session")
def zoo(tmp_path_factory, registry, states):
    """Four variants (b2 in the legacy format, the rest zip; b0 with optimizer state; b4 with an
    EMA set that wins on recorded errors), plus one zip cut in half."""
    d = tmp_path_factory.mktemp("zoo")
    for arch in ZOO:
        ckpt = {"epoch": 99, "model_state": states(arch), "cfg": synthetic.cfg_yaml(registry.variant(arch))}
        if arch == "b4":
            ckpt.update(ema_state=states(arch, 1000), test_err=25.0, ema_err=24.0)
        if arch == "b0":
            ckpt["optimizer_state"] = synthetic.optimizer_state(ckpt["model_state"])
        synthetic.save(ckpt, d / f"EN-{arch.upper()}_dds_8gpu.pyth", legacy=arch == "b2")
    good = (d / "EN-B0_dds_8gpu.pyth").read_bytes()
    (d / "EN-B1_corrupt.pyth").write_bytes(good[: len(good) // 2])
    return d


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.parametrize("jobs, verify", [("1", "numeric"), ("2", "structure")])
def test_zoo_converts_with_one_failure_listed(cli, zoo, tmp_path, jobs, verify):
    out, report = tmp_path / "out", tmp_path / "report.json"
    result = cli("batch", zoo, "--out-dir", out, "--report", report, "--jobs", jobs, "--verify", verify)
    assert result.exit_code == 1
    data = json.loads(report.read_text())
    by_name = {f["source"].rsplit("/", 1)[-1]: f for f in data["files"]}
    assert data["summary"] == {"converted": len(ZOO), "up to date": 0, "refused": 0, "skipped": 0, "failed": 1, "total": len(ZOO) + 1, "seconds": data["summary"]["seconds"]}
    corrupt = by_name.pop("EN-B1_corrupt.pyth")
    assert corrupt["status"] == "failed" and "truncated or corrupt" in corrupt["error"]
    assert "EN-B1_corrupt.pyth" in corrupt["error"] and "truncated or corrupt" in result.stderr
    for name, f in by_name.items():
        assert f["status"] == "converted" and f["verification"] == f"{verify} ok"
        assert f["arch"] == name[3:5].lower()
        assert f["source_sha256"] == sha256(f["source"]) and f["output_sha256"] == sha256(f["output"])
    b4 = torch.load(by_name["EN-B4_dds_8gpu.pyth"]["output"], weights_only=True)
    assert b4["meta"]["weights"] == "ema"  # ema_err < test_err: pycls's choice
    assert not list(out.glob(".ckptconv-tmp-*"))


def test_rerun_is_incremental_and_force_redoes(cli, zoo, tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    for arch in ("b0", "b3"):
        shutil.copy(zoo / f"EN-{arch.upper()}_dds_8gpu.pyth", good)
    out = tmp_path / "out"
    assert cli("batch", good, "--out-dir", out, "--jobs", "1").exit_code == 0
    stamp = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    again = cli("batch", good, "--out-dir", out, "--json", "--jobs", "1")
    assert again.exit_code == 0
    data = json.loads(again.stdout)
    assert [f["status"] for f in data["files"]] == ["up to date", "up to date"]
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == stamp
    other_options = cli("batch", good, "--out-dir", out, "--json", "--jobs", "1", "--dtype", "fp16")
    assert other_options.exit_code == 1  # outputs exist but were made otherwise: not overwritten silently
    assert all("pass --force" in f["error"] for f in json.loads(other_options.stdout)["files"])
    forced = cli("batch", good, "--out-dir", out, "--json", "--force", "--dtype", "fp16", "--jobs", "1")
    assert [f["status"] for f in json.loads(forced.stdout)["files"]] == ["converted", "converted"]


@pytest.mark.parametrize("options", [["--to", "mmdet,timm"], ["--format", "safetensors"], ["--publish"]], ids=["pth", "safetensors", "publish"])
def test_a_rerun_with_nothing_to_do_never_imports_torch(cli, zoo, tmp_path, options):
    """Up to date is judged from each output's own index and meta in one read: a rerun of a batch
    whose outputs are all current runs with an ``import torch`` that fails, and says so."""
    good = tmp_path / "good"
    good.mkdir()
    for name in ("EN-B0_dds_8gpu.pyth", "EN-B2_dds_8gpu.pyth"):  # zip with optimizer state, legacy
        shutil.copy(zoo / name, good)
    out = tmp_path / "out"
    assert cli("batch", good, "--out-dir", out, "--jobs", "1", *options).exit_code == 0
    poison = tmp_path / "poison" / "torch"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('torch was imported')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(poison.parent), os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-m", "ckptconv", "batch", str(good), "--out-dir", str(out), "--json", *options]
    again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    files = json.loads(again.stdout)["files"]
    assert [f["status"] for f in files] == ["up to date"] * len(files) and len(files) == 2 * (1 + options.count("mmdet,timm"))
    assert all(f["output_sha256"] == hashlib.sha256(Path(f["output"]).read_bytes()).hexdigest() for f in files)
    assert all(f["weights"] == "model" for f in files)


def test_two_inputs_on_one_output_fail_before_writing(cli, zoo, tmp_path):
    a, b = tmp_path / "one", tmp_path / "two"
    for d in (a, b):
        d.mkdir(parents=True)
        shutil.copy(zoo / "EN-B0_dds_8gpu.pyth", d / "model.pyth")
    out = tmp_path / "out"
    result = cli("batch", a / "model.pyth", b / "model.pyth", "--out-dir", out)
    assert result.exit_code == 2
    assert "1 output(s) would be written by more than one input" in result.stderr and "model.pth" in result.stderr
    assert not out.exists()  # nothing is created before the plan is valid


def test_runs_given_by_their_checkpoints_folders_are_named_by_run(cli, zoo, tmp_path):
    """pycls's OUT_DIR/checkpoints folders of two runs, given as they are: outputs named by run."""
    for run in ("run1", "run2"):
        (tmp_path / run / "checkpoints").mkdir(parents=True)
        shutil.copy(zoo / "EN-B0_dds_8gpu.pyth", tmp_path / run / "checkpoints" / "model_epoch_0100.pyth")
    result = cli("batch", tmp_path / "run1" / "checkpoints", tmp_path / "run2", "--out-dir", tmp_path / "out", "--verify", "structure", "-j", "1")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["run1.pth", "run2.pth"]


def test_manifest_names_outputs_and_options(cli, zoo, tmp_path):
    manifest = tmp_path / "zoo.toml"
    manifest.write_text(
        f"""
[[checkpoint]]
source = "{zoo / 'EN-B0_dds_8gpu.pyth'}"
output = "effnet-b0-stages.pth"
layout = "mmdet-stages"

[[checkpoint]]
source = "{zoo / 'EN-B4_dds_8gpu.pyth'}"
weights = "model"
arch = "b4"
output = "effnet-b4.safetensors"
"""
    )
    out = tmp_path / "out"
    result = cli("batch", manifest, "--out-dir", out, "--json", "--jobs", "1")
    assert result.exit_code == 0, result.output
    files = json.loads(result.stdout)["files"]
    assert [f["layout"] for f in files] == ["mmdet-stages", "mmdet"]
    assert (out / "effnet-b0-stages.pth").exists() and (out / "effnet-b4.safetensors").exists()
    as_json = tmp_path / "zoo.json"
    as_json.write_text(json.dumps({"checkpoints": [{"source": str(zoo / "EN-B3_dds_8gpu.pyth"), "output": "b3.pth"}]}))
    assert cli("batch", as_json, "--out-dir", out, "--jobs", "1").exit_code == 0
    assert (out / "b3.pth").exists()


def test_manifest_cannot_switch_on_trust_pickle(cli, zoo, tmp_path):
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([{"source": str(zoo / "EN-B0_dds_8gpu.pyth"), "trust_pickle": True}]))
    result = cli("batch", manifest, "--out-dir", tmp_path / "out")
    assert result.exit_code == 2 and "a manifest cannot switch on --trust-pickle" in result.stderr


def test_glob_and_publish_names_carry_the_final_hash(cli, zoo, tmp_path):
    out = tmp_path / "out"
    result = cli("batch", str(zoo / "EN-B[03]_*.pyth"), "--out-dir", out, "--publish", "--json", "--jobs", "1")
    assert result.exit_code == 0, result.output
    files = json.loads(result.stdout)["files"]
    assert len(files) == 2
    for f in files:
        name = f["output"].rsplit("/", 1)[-1]
        digest = sha256(f["output"])
        assert name == f"{f['source'].rsplit('/', 1)[-1][:-5]}-{digest[:8]}.pth"
        assert f["output_sha256"] == digest
    again = json.loads(cli("batch", str(zoo / "EN-B[03]_*.pyth"), "--out-dir", out, "--publish", "--json", "--jobs", "1").stdout)
    assert [f["status"] for f in again["files"]] == ["up to date", "up to date"]
    assert sorted(p.name for p in out.iterdir()) == sorted(f["output"].rsplit("/", 1)[-1] for f in files)


def test_file_name_hint_disagreeing_with_tensors_is_reported(cli, zoo, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(zoo / "EN-B3_dds_8gpu.pyth", src / "EN-B5_mislabelled.pyth")
    result = cli("batch", src, "--out-dir", tmp_path / "out", "--json", "--jobs", "1")
    f = json.loads(result.stdout)["files"][0]
    assert result.exit_code == 0 and f["arch"] == "b3"
    assert f["note"] == "file name suggests b5 but the tensors are b3 (converted as b3)"


def test_verify_takes_the_batch_report(cli, zoo, tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(zoo / "EN-B0_dds_8gpu.pyth", good)
    report = tmp_path / "r.json"
    assert cli("batch", good, "--out-dir", tmp_path / "out", "--report", report, "--jobs", "1").exit_code == 0
    result = cli("verify", report, "--json")
    assert result.exit_code == 0
    checks = [c["name"] for c in json.loads(result.stdout)["files"][0]["checks"]]
    assert "provenance" in checks and "tensors" in checks  # each output verified against its source


def test_usage_errors(cli, tmp_path):
    assert cli("batch", tmp_path / "nothing-here", "--out-dir", tmp_path / "o", "--jobs", "1").exit_code == 1  # a missing file is that file's failure
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("batch", empty, "--out-dir", tmp_path / "o")
    assert result.exit_code == 2 and "no *.pyth or *.pth files" in result.stderr
    assert cli("batch", str(tmp_path / "*.nope"), "--out-dir", tmp_path / "o").exit_code == 2
    assert cli("batch", empty, "--out-dir", tmp_path / "missing" / "deeper").exit_code == 2


def test_outputs_inside_the_source_tree_are_not_taken_as_inputs(cli, zoo, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(zoo / "EN-B0_dds_8gpu.pyth", src)
    assert cli("batch", src, "--out-dir", src / "converted", "--jobs", "1").exit_code == 0
    again = cli("batch", src, "--out-dir", src / "converted", "--json", "--jobs", "1")
    assert [f["status"] for f in json.loads(again.stdout)["files"]] == ["up to date"]


def crash_on_b2(job):
    """A job function for the crash test: the worker converting a b2 file dies on the spot."""
    import os

    from ckptconv.batch.job import run_job

    if "EN-B2_" in job.source:
        os._exit(3)
    return run_job(job)


def test_a_file_that_kills_its_worker_fails_alone(zoo, tmp_path):
    from ckptconv.batch import inputs, plan, pool
    from ckptconv.options import Request

    entries = [inputs.Entry(zoo / f"EN-{a}_dds_8gpu.pyth", Path(f"EN-{a}")) for a in ("B0", "B2", "B3")]
    jobs = plan.plan(entries, tmp_path, Request(source=Path(), verify="structure"), layouts=("mmdet",))
    done = []
    result = pool.run(jobs, workers=2, job_fn=crash_on_b2, on_done=lambda job, o: done.append(job.source))
    statuses = [o.status for o in result.outcomes]
    # a job in flight beside the crash may have finished writing before the pool broke: its re-run
    # then finds the output up to date, which is the truth
    assert statuses[1] == "failed" and {statuses[0], statuses[2]} <= {"converted", "up to date"}
    assert "the worker process died while converting this file" in result.outcomes[1].error
    assert sorted(done) == sorted(j.source for j in jobs)  # every file reported exactly once






def test_safetensors_format_for_the_whole_zoo(cli, zoo, tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    for arch in ("B0", "B2"):  # zip and legacy inputs
        shutil.copy(zoo / f"EN-{arch}_dds_8gpu.pyth", good)
    out = tmp_path / "out"
    result = cli("batch", good, "--out-dir", out, "--format", "safetensors", "--json", "--jobs", "1")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["EN-B0_dds_8gpu.safetensors", "EN-B2_dds_8gpu.safetensors"]
    assert cli("verify", out, "--json").exit_code == 0
    again = json.loads(cli("batch", good, "--out-dir", out, "--format", "safetensors", "--json", "--jobs", "1").stdout)
    assert [f["status"] for f in again["files"]] == ["up to date", "up to date"]


def test_the_batch_parent_never_imports_torch(zoo, tmp_path):
    """Workers import torch; the parent plans and reports without it, so workers fork cheaply."""
    import subprocess
    import sys

    good = tmp_path / "good"
    good.mkdir()
    for arch in ("B0", "B3"):
        shutil.copy(zoo / f"EN-{arch}_dds_8gpu.pyth", good)
    code = (
        "import sys\nfrom ckptconv.cli import main\n"
        f"try:\n    main(['batch', {str(good)!r}, '--out-dir', {str(tmp_path / 'out')!r}, '--jobs', '2', '-q'])\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print('torch' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"
    assert len(list((tmp_path / "out").glob("*.pth"))) == 2


@pytest.mark.parametrize("edit", ["version", "prefix", "comment"])
def test_an_output_made_with_another_table_is_never_up_to_date(cli, zoo, tmp_path, edit):
    """Everything that decides an output's bytes is compared: the table's name, version and
    content (a new default prefix, even a changed comment), not only the options asked for."""
    from ckptconv.tables.registry import builtin_dir

    tables = tmp_path / "tables" / "effnet" / "layouts"
    tables.mkdir(parents=True)
    text = (builtin_dir() / "effnet" / "layouts" / "mmdet.toml").read_text()
    (tables / "mmdet.toml").write_text(text)
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(zoo / "EN-B0_dds_8gpu.pyth", good)
    run = lambda *extra: cli("--tables", tables.parent.parent, "batch", good, "--out-dir", tmp_path / "out", "--json", "--verify", "structure", "--jobs", "1", *extra)  # noqa: E731
    assert run().exit_code == 0
    assert [f["status"] for f in json.loads(run().stdout)["files"]] == ["up to date"]
    changed = {
        "version": re.sub(r"version   = (\d+)", lambda m: f"version   = {int(m.group(1)) + 1}", text),
        "prefix": text.replace('prefix    = ""', 'prefix    = "backbone"'),
        "comment": text + "\n# a comment\n",
    }[edit]
    (tables / "mmdet.toml").write_text(changed)
    again = run()
    assert again.exit_code == 1
    assert "pass --force" in json.loads(again.stdout)["files"][0]["error"]
    assert [f["status"] for f in json.loads(run("--force").stdout)["files"]] == ["converted"]


def test_an_output_that_fails_its_own_crc_is_not_up_to_date(cli, zoo, tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(zoo / "EN-B3_dds_8gpu.pyth", good)
    out = tmp_path / "out"
    assert cli("batch", good, "--out-dir", out, "--verify", "structure", "--jobs", "1").exit_code == 0
    converted = out / "EN-B3_dds_8gpu.pth"
    raw = bytearray(converted.read_bytes())
    raw[len(raw) // 2] ^= 0x40  # a flipped bit inside some tensor record
    converted.write_bytes(bytes(raw))
    again = json.loads(cli("batch", good, "--out-dir", out, "--json", "--verify", "structure", "--jobs", "1").stdout)
    assert again["files"][0]["status"] == "failed" and "pass --force" in again["files"][0]["error"]


DESIGN_SPACE = Path(__file__).parent / "data" / "design_space"


def test_a_sweep_tree_converts_each_runs_last_epoch_and_reports_its_structure(cli, tmp_path):
    """pycls's trainer writes OUT_DIR/checkpoints/model_epoch_NNNN.pyth each epoch; a sweep is a tree
    of such runs. batch takes each run's last epoch (every epoch with --every-epoch), mirrors the
    tree, naming each output by its run (and with --every-epoch by its epoch), and the report says what
    each model is: the zoo name, or a custom model's numbers (here as pycls 0.1.1's cfg set them:
    tests/data/design_space/cases.json)."""
    cases = json.loads((DESIGN_SPACE / "cases.json").read_text())["cases"]
    sweep = tmp_path / "sweep"
    for run, case in (("000", "regnety_small_nc10"), ("001", "effnet_narrow_nc10")):
        for epoch in (2, 10):
            path = sweep / run / "checkpoints" / f"model_epoch_{epoch:04d}.pyth"
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(DESIGN_SPACE / "checkpoints" / f"{case}.pyth", path)
    result = cli("batch", sweep, "--out-dir", tmp_path / "out", "--to", "timm", "-j", "1", "--json")
    assert result.exit_code == 0, result.output
    files = {Path(f["output"]).relative_to(tmp_path / "out").as_posix(): f for f in json.loads(result.stdout)["files"]}
    assert set(files) == {"000.pth", "001.pth"}
    regnet = files["000.pth"]["numbers"]
    values = cases["regnety_small_nc10"]["values"]
    assert (regnet["depth"], regnet["w0"], regnet["wa"], regnet["wm"]) == (values["REGNET.DEPTH"], values["REGNET.W0"], values["REGNET.WA"], values["REGNET.WM"])
    assert files["001.pth"]["numbers"]["depths"] == cases["effnet_narrow_nc10"]["values"]["EN.DEPTHS"]
    every = cli("batch", sweep, "--out-dir", tmp_path / "every", "--to", "timm", "--every-epoch", "--verify", "structure", "-j", "1", "--json")
    assert every.exit_code == 0, every.output
    assert sorted(Path(f["output"]).relative_to(tmp_path / "every").as_posix() for f in json.loads(every.stdout)["files"]) == [
        f"{run}/epoch_{epoch:04d}.pth" for run in ("000", "001") for epoch in (2, 10)]
    again = cli("batch", sweep, "--out-dir", tmp_path / "every", "--to", "timm", "--every-epoch", "--verify", "structure", "-j", "1", "--json")
    assert [f["status"] for f in json.loads(again.stdout)["files"]] == ["up to date"] * 4  # custom models too: their meta records them


def test_the_readme_batch_form_works_on_a_first_run(cli, zoo, tmp_path, monkeypatch):
    """`batch zoo/ --to all --out-dir conv/ --report conv/report.json`: the report inside the
    out-dir the run creates (docs/commands.md's form)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zoo").mkdir()
    shutil.copy(zoo / "EN-B0_dds_8gpu.pyth", tmp_path / "zoo")
    result = cli("batch", "zoo/", "--to", "timm", "--out-dir", "conv/", "--report", "conv/report.json", "-j", "1", "--verify", "structure")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "conv" / "report.json").read_text())["ok"]


@pytest.mark.parametrize("args, words", [
    (("convert", "missing.pyth", "o.pth", "--to", "timm"), "no such file"),
    (("convert", "SRC", "o.pth", "--to", "timn"), "unknown layout 'timn'"),
    (("convert", "SRC", "o.ckpt", "--to", "timm"), ".ckpt"),
    (("convert", "SRC", "SRC", "--to", "timm"), "the output is the input"),
])
def test_a_usage_error_is_found_before_torch_is_imported(zoo, tmp_path, args, words):
    """A typo costs milliseconds, not the seconds torch's import takes on a loaded machine."""
    import subprocess
    import sys

    src = str(zoo / "EN-B0_dds_8gpu.pyth")
    argv = [src if a == "SRC" else str(tmp_path / a) if a.endswith((".pth", ".ckpt", ".pyth")) else a for a in args]
    code = (
        "import sys\nfrom ckptconv.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    print(e.code, 'torch' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert run.stdout.split() == ["2", "False"] and words in run.stderr, (run.stdout, run.stderr)


def test_the_report_says_which_weight_set_each_file_gave(cli, zoo, tmp_path):
    """EN-B4 records test_err 25.0 and ema_err 24.0: --weights best takes its EMA set, as pycls's
    load_checkpoint does; EN-B0 has no EMA."""
    result = cli("batch", zoo / "EN-B0_dds_8gpu.pyth", zoo / "EN-B4_dds_8gpu.pyth", "--out-dir", tmp_path / "out", "-j", "1", "--verify", "structure", "--json")
    assert result.exit_code == 0, result.output
    assert {Path(f["source"]).name: f["weights"] for f in json.loads(result.stdout)["files"]} == {"EN-B0_dds_8gpu.pyth": "model", "EN-B4_dds_8gpu.pyth": "ema"}


def test_shares_are_disjoint_cover_the_plan_and_stay_when_inputs_are_added():
    from ckptconv.batch.shard import Shard

    keys = [f"run{i:03d}/checkpoints/model_epoch_0100.pth" for i in range(200)]
    for n in (1, 2, 3, 8):
        owners = [[k for k in range(n) if Shard(k, n, "--shard").holds(key)] for key in keys]
        assert all(len(o) == 1 for o in owners)  # each pair in exactly one share
        assert n == 1 or len({o[0] for o in owners}) == n  # every share gets work
        more = keys + [f"late{i}/x.pth" for i in range(50)]
        again = [[k for k in range(n) if Shard(k, n, "--shard").holds(key)] for key in more[: len(keys)]]
        assert again == owners


@pytest.mark.parametrize("text, environ, want", [
    ("3/8", {}, (2, 8, "--shard")),
    (None, {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "1"}, (4, 8, "SLURM_ARRAY_TASK_ID")),
    (None, {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "4"}, (0, 4, "SLURM_ARRAY_TASK_ID")),
    (None, {"JOB_COMPLETION_INDEX": "2", "CKPTCONV_SHARD_COUNT": "3"}, (2, 3, "JOB_COMPLETION_INDEX")),
    (None, {"JOB_COMPLETION_INDEX": "2"}, None),  # Kubernetes sets no count: without one, no shard
])
def test_the_share_comes_from_shard_or_the_arrays_variables(text, environ, want):
    from ckptconv.batch.shard import resolve

    got = resolve(text, environ)
    assert (got.index, got.count, got.given_by) == want if want else got is None


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0"])
def test_a_share_that_cannot_exist_is_a_usage_error(text):
    from ckptconv.batch.shard import resolve
    from ckptconv.errors import UsageError

    with pytest.raises(UsageError):
        resolve(text, {})


def test_shards_started_together_give_what_one_batch_gives_and_a_killed_one_reruns(cli, zoo, tmp_path):
    """Three shares in three processes at once into one tree, the second stopped by SIGTERM once it
    has published its first output (its progress line says so), then run again: it keeps that
    output (up to date) and converts the rest. Merged: what one unsharded batch gives, byte for byte."""
    import subprocess
    import sys

    src = tmp_path / "zoo"
    src.mkdir()
    for i in range(6):  # share 2 of 3 holds three: run0, run2 and run3 (sha256 of the output name, mod 3)
        shutil.copy(zoo / "EN-B0_dds_8gpu.pyth", src / f"run{i}.pyth")
    common = ["--to", "timm", "--verify", "structure", "-j", "1"]
    assert cli("batch", src, "--out-dir", tmp_path / "one", *common, "-q").exit_code == 0

    def share(k: int, *extra: str) -> subprocess.Popen:
        args = ["batch", str(src), "--out-dir", str(tmp_path / "many"), "--shard", f"{k}/3", "--report", str(tmp_path / f"r{k}.json"), *common, *extra]
        return subprocess.Popen([sys.executable, "-m", "ckptconv", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    running = [share(1, "-q"), share(2), share(3, "-q")]
    first = running[1].stdout.readline()  # "[1/N] converted ..." once its first output is published
    running[1].send_signal(signal.SIGTERM)
    codes = [p.wait(timeout=120) for p in running]
    assert re.match(r"\[1/[2-9]\] converted", first) and codes == [0, 143, 0], (first, codes)  # stopped with jobs left
    assert not (tmp_path / "r2.json").exists()  # a stopped share writes no report
    assert share(2, "-q").wait(timeout=120) == 0  # the rerun finishes what the stopped one left
    statuses = sorted(f["status"] for f in json.loads((tmp_path / "r2.json").read_text())["files"])
    assert statuses[-1] == "up to date" and "converted" in statuses  # it kept the published output
    merged = cli("report", "merge", *(tmp_path / f"r{k}.json" for k in (1, 2, 3)), "--out", tmp_path / "merged.json")
    assert merged.exit_code == 0, merged.output
    files = json.loads((tmp_path / "merged.json").read_text())["files"]
    assert sorted(Path(f["output"]).name for f in files) == sorted(p.name for p in (tmp_path / "one").glob("*.pth"))
    for f in files:
        assert f["output_sha256"] == hashlib.sha256((tmp_path / "one" / Path(f["output"]).name).read_bytes()).hexdigest()
    assert cli("verify", tmp_path / "merged.json", "-q").exit_code == 0
    incomplete = cli("report", "merge", tmp_path / "r1.json", tmp_path / "r3.json", "--out", tmp_path / "part.json")
    assert incomplete.exit_code == 1 and "share(s) 2 of 3 missing" in incomplete.output


@pytest.mark.parametrize("force", [False, True])
def test_a_target_never_replaces_another_targets_output(cli, zoo, tmp_path, force):
    """Single-target outputs carry no layout in their names: timm into an out-dir of mmdet outputs
    fails naming both, and never suggests (or obeys) a --force that would destroy the mmdet file."""
    src = tmp_path / "zoo"
    src.mkdir()
    shutil.copy(zoo / "EN-B0_dds_8gpu.pyth", src)
    assert cli("batch", src, "--out-dir", tmp_path / "out", "--verify", "structure", "-j", "1").exit_code == 0
    before = (tmp_path / "out" / "EN-B0_dds_8gpu.pth").read_bytes()
    result = cli("batch", src, "--out-dir", tmp_path / "out", "--to", "timm", "--verify", "structure", "-j", "1", *(["--force"] if force else []))
    assert result.exit_code == 1 and "holds mmdet weights (its meta), not timm" in result.output
    assert "--force" not in result.output.split("holds mmdet weights")[1].split("\n")[0]
    assert (tmp_path / "out" / "EN-B0_dds_8gpu.pth").read_bytes() == before


def test_an_output_of_other_tensors_under_a_copied_meta_is_never_up_to_date(cli, zoo, tmp_path):
    """The meta records a digest of the tensors written (tensors_crc): zeros saved under the very
    meta of a real output fail the rerun, instead of passing as "up to date"."""
    src = tmp_path / "zoo"
    src.mkdir()
    shutil.copy(zoo / "EN-B0_dds_8gpu.pyth", src)
    args = ("batch", src, "--out-dir", tmp_path / "out", "--verify", "structure", "-j", "1", "--json")
    assert cli(*args).exit_code == 0
    assert [f["status"] for f in json.loads(cli(*args).stdout)["files"]] == ["up to date"]
    out = tmp_path / "out" / "EN-B0_dds_8gpu.pth"
    obj = torch.load(out, weights_only=True)
    torch.save({"state_dict": {k: torch.zeros_like(v) for k, v in obj["state_dict"].items()}, "meta": obj["meta"]}, out)
    rerun = json.loads(cli(*args).stdout)["files"]
    assert [f["status"] for f in rerun] == ["failed"] and "the output exists" in rerun[0]["error"]


def test_a_pycls_run_tree_uses_the_config_yaml_pycls_dumped_beside_its_checkpoints(cli, tmp_path):
    """pycls's trainer writes OUT_DIR/config.yaml and OUT_DIR/checkpoints/model_epoch_NNNN.pyth. A
    checkpoint saved without its cfg (pycls's own stride-1 RegNetX, its cfg taken out) is converted
    with the run's config.yaml: REGNET.STRIDE 1, which the tensors cannot show, nothing assumed."""
    real = DESIGN_SPACE / "checkpoints" / "regnetx_stride1.pyth"
    ckpt = torch.load(real, weights_only=True)
    cfg = ckpt.pop("cfg")
    assert "STRIDE: 1" in cfg
    for run, with_config in (("with", True), ("without", False)):
        (tmp_path / "sweep" / run / "checkpoints").mkdir(parents=True)
        torch.save(ckpt, tmp_path / "sweep" / run / "checkpoints" / "model_epoch_0001.pyth")
        if with_config:
            (tmp_path / "sweep" / run / "config.yaml").write_text(cfg)
    result = cli("batch", tmp_path / "sweep", "--to", "torchvision", "--out-dir", tmp_path / "out", "--verify", "structure", "-j", "1", "--json")
    by_run = {Path(f["source"]).parts[-3]: f for f in json.loads(result.stdout)["files"]}
    assert by_run["with"]["status"] == "converted", by_run["with"]
    meta = torch.load(by_run["with"]["output"], weights_only=True)._metadata["ckptconv"]
    assert meta["model"]["regnet"]["stride"] == 1 and meta["assumed"] == []
    guessed = torch.load(by_run["without"]["output"], weights_only=True)._metadata["ckptconv"]  # from the shapes alone
    assert guessed["model"]["anynet"]["strides"] == [1, 2, 2, 2] and any("stage strides" in a for a in guessed["assumed"])


def test_a_surprise_while_judging_outputs_leaves_the_job_to_its_worker(cli, zoo, tmp_path, monkeypatch):
    """The pre-pass that finds up-to-date outputs must never end a batch: an unexpected error there
    (a bug, a file that breaks a reader) sends the job on, where it converts or fails alone, and
    its outcome's note names the error."""
    from ckptconv.batch import pool

    def broken(job, sha):
        raise RuntimeError("surprise")

    monkeypatch.setattr(pool, "current", broken)
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(zoo / "EN-B0_dds_8gpu.pyth", good)
    result = cli("batch", good, "--out-dir", tmp_path / "out", "--json", "--jobs", "1", "--verify", "structure")
    (done,) = json.loads(result.stdout)["files"]
    assert result.exit_code == 0 and done["status"] == "converted"
    assert "the check before the workers failed (RuntimeError: surprise)" in done["note"]  # said, never hidden


def test_configs_asked_on_a_rerun_are_written_for_up_to_date_outputs(cli, zoo, tmp_path):
    """--configs on a rerun: the outputs stay as they are (up to date) and each gets the config its
    conversion would have written (the same text as a fresh run's, but for the folder's name)."""
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(zoo / "EN-B0_dds_8gpu.pyth", good)
    args = ("--to", "mmdet,timm,torchvision", "--verify", "structure", "-j", "1", "--json")
    assert cli("batch", good, "--out-dir", tmp_path / "a", *args).exit_code == 0
    rerun = cli("batch", good, "--out-dir", tmp_path / "a", "--configs", *args)
    assert [f["status"] for f in json.loads(rerun.stdout)["files"]] == ["up to date"] * 3
    assert cli("batch", good, "--out-dir", tmp_path / "b", "--configs", *args).exit_code == 0
    for layout in ("mmdet", "timm", "torchvision"):
        written = (tmp_path / "a" / layout / "EN-B0_dds_8gpu.py").read_text()
        fresh = (tmp_path / "b" / layout / "EN-B0_dds_8gpu.py").read_text()
        assert written == fresh.replace(str(tmp_path / "b"), str(tmp_path / "a")), layout


def test_the_api_batch_is_the_commands_batch(cli, zoo, tmp_path):
    """``ckptconv.convert_batch`` runs what ``ckptconv batch`` runs: the same files, statuses and
    outputs (bytes) in its report; a batch that cannot run raises in the API's words, writing nothing."""
    import ckptconv

    good = tmp_path / "good"
    good.mkdir()
    for arch in ("b0", "b3"):
        shutil.copy(zoo / f"EN-{arch.upper()}_dds_8gpu.pyth", good)
    by_api = ckptconv.convert_batch([good], tmp_path / "api", layouts=["mmdet", "timm"], jobs=1, verify="structure")
    by_cli = cli("batch", good, "--out-dir", tmp_path / "cli", "--to", "mmdet,timm", "--jobs", "1", "--verify", "structure", "--json")
    assert by_api.ok and by_cli.exit_code == 0
    api_files, cli_files = by_api.report["files"], json.loads(by_cli.stdout)["files"]
    assert [(f["source"], f["status"]) for f in api_files] == [(f["source"], f["status"]) for f in cli_files]
    assert [f["output_sha256"] for f in api_files] == [f["output_sha256"] for f in cli_files]
    assert [Path(f["output"]).relative_to(tmp_path / "api") for f in api_files] == [Path(f["output"]).relative_to(tmp_path / "cli") for f in cli_files]
    with pytest.raises(ckptconv.UsageError) as e:
        ckptconv.convert_batch([good], tmp_path / "never", layouts=["keras"])
    assert "--to" not in str(e.value) and not (tmp_path / "never").exists()
