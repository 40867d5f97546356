"""Nothing is destroyed: an output is published whole or not at all, never over a file the user did
not name for it (an input, a table, the file being verified, another target's output), and a file
written wrong is caught when read back, before anything is published."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ckptconv.io import files, writer
from ckptconv.verification import synthetic

from .conftest import digest, only_error_line


def test_config_out_naming_the_output_is_refused(refused, built, tmp_path):
    out = tmp_path / "out" / "o.pth"
    refused(built.source(), 2, "are the same file", args=("--config-out", out), out=out)


def test_config_out_naming_the_input_is_refused(refused, make_ckpt):
    src = make_ckpt()
    refused(src, 2, "the output is the input", args=("--config-out", src))


def test_report_over_the_file_being_verified_is_refused(cli, built, tmp_path):
    out = tmp_path / "o.pth"
    out.write_bytes(built.output("b0", "mmdet").read_bytes())
    before = digest(out)
    assert "the output is the input" in only_error_line(cli("verify", out, "--report", out))
    assert digest(out) == before


def test_batch_report_over_its_own_input_is_refused(cli, make_ckpt, tmp_path):
    src = make_ckpt()
    before = digest(src)
    result = cli("batch", src, "--out-dir", tmp_path / "out", "--report", src)
    assert result.exit_code == 2 and "the output is the input" in only_error_line(result)
    assert digest(src) == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize("output", ["/tmp/escape.pth", "../escape.pth", "a/../../escape.pth"])
def test_a_manifest_output_outside_the_out_dir_is_refused(cli, built, tmp_path, output):
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([{"source": str(built.source()), "output": output}]))
    result = cli("batch", manifest, "--out-dir", tmp_path / "out")
    assert result.exit_code == 2 and "must be a relative path inside --out-dir" in only_error_line(result)
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.pth").exists()


def test_a_symlink_leading_out_of_the_out_dir_is_refused(cli, make_ckpt, tmp_path):
    src = make_ckpt()
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(src.parent)  # out/sub/<name> is the input's own folder
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([{"source": str(src), "output": f"sub/{src.stem}.pth"}]))
    before = digest(src)
    result = cli("batch", manifest, "--out-dir", out, "--force")
    assert result.exit_code == 2 and "outside --out-dir" in only_error_line(result)
    assert digest(src) == before


def test_an_output_that_appears_meanwhile_is_never_replaced(cli, built, tmp_path, monkeypatch):
    """Two runs racing for one new name: the existence check is not enough, publishing is
    atomic-no-replace without --force."""
    from ckptconv import convert

    out = tmp_path / "o.pth"
    real = convert.prepare

    def racing(*args, **kwargs):
        conversion = real(*args, **kwargs)
        out.write_bytes(b"the other run's output")
        return conversion

    monkeypatch.setattr(convert, "prepare", racing)
    result = cli("pycls2mmdet", built.source(), out)
    assert result.exit_code == 2 and "the output appeared while converting" in only_error_line(result)
    assert out.read_bytes() == b"the other run's output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.pth"]


@pytest.mark.parametrize("command", ["batch", "demo"])
def test_an_out_dir_under_a_read_only_parent_is_a_usage_error(cli, built, tmp_path, monkeypatch, command):
    from ckptconv.io import files

    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    # as root, chmod cannot make a directory read-only: ask the question the code asks
    monkeypatch.setattr(files.os, "access", lambda p, mode: False if Path(p) == ro else real(p, mode))
    args = ["batch", built.source()] if command == "batch" else ["demo"]
    result = cli(*args, "--out-dir", ro / "out")
    assert result.exit_code == 2 and "is not writable" in only_error_line(result)
    assert not (ro / "out").exists()


# 14 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", ["pth", "safetensors"])
def test_shared_storage_and_non_contiguous_tensors_are_written_correctly(cli, states, tmp_path, ext):
    sd = {k: v.clone() for k, v in states("b0").items()}
    flat = torch.cat([sd["stem.bn.weight"], sd["stem.bn.bias"]])  # two params as views of one storage
    sd["stem.bn.weight"], sd["stem.bn.bias"] = flat[:32], flat[32:]
    sd["s7.b1.lin_proj.weight"] = sd["s7.b1.lin_proj.weight"].squeeze().t().contiguous().t()[..., None, None]  # non-contiguous
    assert not sd["s7.b1.lin_proj.weight"].is_contiguous()
    src = tmp_path / "views.pth"
    torch.save({"model_state": sd}, src)
    out = tmp_path / f"o.{ext}"
    assert cli("pycls2mmdet", src, out).exit_code == 0
    from .test_convert import load_output

    got, _ = load_output(out)
    assert torch.equal(got["layers.0.bn.weight"], sd["stem.bn.weight"]) and torch.equal(got["layers.0.bn.bias"], sd["stem.bn.bias"])
    assert torch.equal(got["layers.5.4.linear_conv.conv.weight"], sd["s7.b1.lin_proj.weight"])
    if ext == "pth":  # a view must not drag its whole storage along
        assert got["layers.0.bn.weight"].untyped_storage().nbytes() == 32 * 4


# 16 -----------------------------------------------------------------------------------------------
def test_existing_output_is_refused_before_anything_is_read(cli, tmp_path):
    corrupt = tmp_path / "corrupt.pyth"
    corrupt.write_bytes(b"PK\x03\x04 nonsense")
    out = tmp_path / "o.pth"
    out.write_bytes(b"old")
    result = cli("pycls2mmdet", corrupt, out)
    assert result.exit_code == 2 and "the output exists" in result.stderr  # not the corrupt input


def test_force_keeps_the_old_file_until_the_new_one_is_complete(cli, make_ckpt, tmp_path, monkeypatch):
    src, out = make_ckpt("b0"), tmp_path / "o.pth"
    out.write_bytes(b"old output")
    seen = {}

    def failing_save(f, *args):
        f.write(b"partial" * 1000)
        seen["during"] = out.read_bytes()
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(writer, "write_pth", failing_save)
    result = cli("pycls2mmdet", src, out, "--force")
    assert result.exit_code == 1 and "writing failed: I/O error; nothing was written" in result.stderr
    assert seen["during"] == b"old output" and out.read_bytes() == b"old output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["EN-B0_test.pyth", "o.pth"]


# 17 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["same", "symlink", "hardlink"])
def test_output_that_is_the_input_is_refused_even_with_force(cli, make_ckpt, tmp_path, how):
    src = make_ckpt("b0", name="in.pth")
    before = digest(src)
    out = {"same": src, "symlink": tmp_path / "link.pth", "hardlink": tmp_path / "hard.pth"}[how]
    if how == "symlink":
        out.symlink_to(src)
    elif how == "hardlink":
        os.link(src, out)
    result = cli("pycls2mmdet", src, out, "--force")
    assert result.exit_code == 2 and "the output is the input" in result.stderr
    assert digest(src) == before


def test_temp_files_locked_by_a_live_writer_are_left_alone_whatever_their_pid(tmp_path):
    """Liveness is the writer's lock on the file, not its PID: another PID namespace, container
    or host (a shared volume) may reuse any PID, or show none of ours."""

    live = tmp_path / ".ckptconv-tmp-999999999-abcd-x.pth"  # a PID that no process here has
    live.write_bytes(b"in progress elsewhere")
    os.utime(live, (time.time() - 3600, time.time() - 3600))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'rb'); fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)", str(live)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert files.clean_stale_temps(tmp_path) == []
        assert live.exists()
    finally:
        holder.kill()
        holder.wait()
    assert files.clean_stale_temps(tmp_path) == [live]  # its writer is gone: the lock is free


# 20 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["write", "fsync"])
def test_disk_full_is_a_clean_error(cli, make_ckpt, tmp_path, monkeypatch, where):
    src, out = make_ckpt("b0"), tmp_path / "o.pth"
    full = OSError(errno.ENOSPC, "No space left on device")
    if where == "write":

        def no_space(f, *args):
            f.write(b"x" * 1024)
            raise full

        monkeypatch.setattr(writer, "write_pth", no_space)
    else:
        real_fsync = os.fsync

        def fsync(fd):
            if os.fstat(fd).st_size > 0 and not os.path.isdir(f"/proc/self/fd/{fd}"):
                raise full
            return real_fsync(fd)

        monkeypatch.setattr(files.os, "fsync", fsync)
    result = cli("pycls2mmdet", src, out)
    assert result.exit_code == 1 and "the disk is full; nothing was written" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["EN-B0_test.pyth"]


# 21 -----------------------------------------------------------------------------------------------
def test_missing_output_directory_is_refused_before_reading(cli, tmp_path):
    corrupt = tmp_path / "corrupt.pyth"
    corrupt.write_bytes(b"garbage")
    result = cli("pycls2mmdet", corrupt, tmp_path / "no" / "such" / "dir" / "o.pth")
    assert result.exit_code == 2 and "does not exist; create it first" in result.stderr


def test_read_only_output_directory_is_refused_before_reading(cli, tmp_path, monkeypatch):
    corrupt = tmp_path / "corrupt.pyth"
    corrupt.write_bytes(b"garbage")
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    # as root, chmod cannot make a directory read-only; ask the same question the code asks
    monkeypatch.setattr(files.os, "access", lambda p, mode: False if Path(p) == ro else real_access(p, mode))
    result = cli("pycls2mmdet", corrupt, ro / "o.pth")
    assert result.exit_code == 2 and "is not writable" in result.stderr


# 25 -----------------------------------------------------------------------------------------------
def test_safetensors_writer_refuses_non_string_metadata(tmp_path):
    with open(tmp_path / "x.safetensors", "wb") as f, pytest.raises(TypeError, match="str -> str"):
        writer.write_safetensors(f, {"a": torch.zeros(1)}, {"epoch": 99})


@pytest.mark.parametrize("ext", ["pth", "safetensors"])
def test_a_file_written_wrong_is_caught_when_read_back_and_never_published(cli, make_ckpt, tmp_path, monkeypatch, ext):
    """The tensors check reads the written temp file: a writer that put one tensor's bytes wrong
    (here: the stem conv written plus one) fails the conversion, and nothing is published."""
    import dataclasses

    from ckptconv import convert

    original = convert._write

    def wrong(f, fmt, c):
        tensors = dict(c.tensors)
        key = next(k for k in tensors if k.endswith("conv.weight"))
        tensors[key] = tensors[key] + 1
        return original(f, fmt, dataclasses.replace(c, tensors=tensors, copies=writer.Copies(c.copies.path, {}, {})))

    monkeypatch.setattr(convert, "_write", wrong)
    src, out = make_ckpt(name="src.pyth"), tmp_path / f"out.{ext}"
    result = cli("pycls2mmdet", src, out, "--verify", "structure")
    assert result.exit_code == 1
    assert "layers.0.conv.weight is not in the written file as converted" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.pyth"]


def test_config_out_never_replaces_a_table_the_run_reads(cli, tmp_path):
    """A table directory's files are inputs of the run: not even --force writes over one."""
    from ckptconv.tables.registry import Registry, builtin_dir

    tables = tmp_path / "tables" / "effnet" / "layouts"
    tables.mkdir(parents=True)
    mine = tables / "mine.toml"
    mine.write_text((builtin_dir() / "effnet" / "layouts" / "mmdet.toml").read_text().replace('name      = "mmdet"', 'name      = "mine"'))
    before = mine.read_bytes()
    src = synthetic.save(synthetic.pycls_checkpoint(Registry().variant("b0"), optimizer=False), tmp_path / "b0.pyth")
    result = cli("--tables", tmp_path / "tables", "convert", src, tmp_path / "out.pth", "--to", "mine", "--config-out", mine, "--force")
    assert result.exit_code == 2 and "is the input" in result.output and mine.read_bytes() == before, result.output
    assert not (tmp_path / "out.pth").exists()


def test_a_directory_as_the_output_is_named_as_one(cli, built, tmp_path):
    result = cli("pycls2mmdet", built.source("b0"), tmp_path)
    assert result.exit_code == 2 and "the output is a directory" in result.output and "(none)" not in result.output
