"""Every bad input ends in one clear error, the documented exit code, no output, and the input untouched.

Numbered as in the reliability issue; 8, 15, 22-24 are covered in test_convert, test_batch and
test_verify next to the features they guard.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ckptconv.errors import FormatError, UnsafePickleError
from ckptconv.io import files, writer
from ckptconv.io.checkpoint import load

CANARY_CODE = "open({path!r}, 'w').write('pwned')"


class Canary:
    """Unpickling this runs code: it writes a file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (exec, (CANARY_CODE.format(path=self.path),))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def refused(cli, tmp_path):
    """Run a conversion that must fail: check exit code, message, no output, input untouched."""

    def check(src: Path, code: int, *needles: str, args=()):
        before = digest(src) if src.is_file() else None
        out = tmp_path / "out" / "o.pth"
        out.parent.mkdir(exist_ok=True)
        result = cli("pycls2mmdet", src, out, *args)
        assert result.exit_code == code, result.output
        lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1, result.stderr
        for needle in needles:
            assert needle in lines[0], lines[0]
        assert list(out.parent.iterdir()) == []
        if before:
            assert digest(src) == before
        return lines[0]

    return check


# 1 ------------------------------------------------------------------------------------------------
def test_code_running_pickle_is_refused_and_never_runs(refused, states, tmp_path):
    canary = tmp_path / "canary"
    src = tmp_path / "evil.pyth"
    torch.save({"model_state": states("b0"), "cfg": Canary(canary)}, src)
    refused(src, 1, "refused to unpickle global exec", "--trust-pickle", str(src))
    assert not canary.exists()


# 2 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "extra, name",
    [(argparse.Namespace(lr=0.1), "argparse.Namespace"), (np.float64(0.25), "numpy")],
)
def test_benign_global_is_refused_unless_trusted(refused, cli, states, tmp_path, extra, name):
    src = tmp_path / "args.pyth"
    torch.save({"model_state": states("b0"), "args": extra}, src)
    refused(src, 1, f"refused to unpickle global {name}")
    result = cli("pycls2mmdet", src, tmp_path / "trusted.pth", "--trust-pickle")
    assert result.exit_code == 0
    assert "--trust-pickle: unpickling whatever the file asks for" in result.stderr


# 3 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cut", ["half", "last22"])
def test_truncated_zip_is_named_truncated_or_corrupt(refused, make_ckpt, tmp_path, cut):
    good = make_ckpt("b0").read_bytes()
    src = tmp_path / "cut.pyth"
    src.write_bytes(good[: len(good) // 2] if cut == "half" else good[:-22])
    refused(src, 1, "truncated or corrupt", str(src))


# 4 ------------------------------------------------------------------------------------------------
def _record_span(path: Path, suffix: str) -> tuple[int, int]:
    """(offset, size) of a zip record's stored bytes."""
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(suffix))
    raw = path.read_bytes()
    start = info.header_offset
    name_len, extra_len = int.from_bytes(raw[start + 26 : start + 28], "little"), int.from_bytes(raw[start + 28 : start + 30], "little")
    return start + 30 + name_len + extra_len, info.compress_size


def _flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x40
    path.write_bytes(bytes(raw))


def test_flipped_byte_in_the_pickle_is_an_error(refused, make_ckpt):
    src = make_ckpt("b0", optimizer=False)
    start, size = _record_span(src, "/data.pkl")
    _flip(src, start + size // 2)
    refused(src, 1, "truncated or corrupt zip checkpoint", "CRC")


def test_flipped_byte_in_a_kept_tensor_is_an_error(refused, make_ckpt, states):
    src = make_ckpt("b0", optimizer=False)
    # the record of stem.conv.weight: the storage whose bytes equal it
    want = states("b0")["stem.conv.weight"].numpy().tobytes()
    raw = src.read_bytes()
    offset = raw.index(want)
    _flip(src, offset + 17)
    refused(src, 1, "tensor stem.conv.weight: its bytes fail the zip's CRC-32 check")


def test_flipped_byte_in_the_optimizer_state_is_never_read(cli, make_ckpt, tmp_path):
    """Memory-mapped loading never touches tensors it does not convert: a corrupt momentum buffer
    (which torch.load would not notice either) does not stop the conversion."""
    src = make_ckpt("b0", optimizer=True)
    with zipfile.ZipFile(src) as zf:
        records = [i for i in zf.infolist() if "/data/" in i.filename]
    last = max(records, key=lambda i: i.header_offset)  # storages are saved in pickling order: optimizer last
    start, size = _record_span(src, last.filename)
    _flip(src, start + size // 2)
    assert cli("pycls2mmdet", src, tmp_path / "o.pth").exit_code == 0


# 5 ------------------------------------------------------------------------------------------------
def test_empty_file(refused, tmp_path):
    src = tmp_path / "empty.pyth"
    src.write_bytes(b"")
    refused(src, 1, "the file is empty (0 bytes)")


def test_text_file(refused, tmp_path):
    src = tmp_path / "notes.pth"
    src.write_text("these are not weights\n")
    refused(src, 1, "not a checkpoint", "b'these ar'")


def test_directory(refused, tmp_path):
    d = tmp_path / "ckpts.pth"
    d.mkdir()
    refused(d, 2, "is a directory")


def test_safetensors_named_pth_is_recognised(cli, refused, states, tmp_path):
    from safetensors.torch import save_file

    good = tmp_path / "weights.pth"
    save_file(states("b0"), str(good))
    assert cli("pycls2mmdet", good, tmp_path / "o.pth", "--json").exit_code == 0
    other = tmp_path / "bert.pth"
    save_file({"encoder.layer.0.weight": torch.zeros(3)}, str(other))
    refused(other, 1, "this is not a model ckptconv converts")


# 6 ------------------------------------------------------------------------------------------------
def test_legacy_format_loads(cli, make_ckpt, tmp_path):
    src = make_ckpt("b1", legacy=True)
    assert src.read_bytes()[:2] == b"\x80\x02"
    assert load(src).format == "legacy"
    assert cli("pycls2mmdet", src, tmp_path / "o.pth").exit_code == 0


def test_ancient_tar_format_is_refused(refused, tmp_path):
    src = tmp_path / "ancient.pth"
    with tarfile.open(src, "w") as tar:
        for name in ("sys_info", "pickle", "storages", "tensors"):
            data = b"\x80\x02}q\x00."
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    refused(src, 1, "tar format of torch < 0.4")


# 7 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "obj, needle",
    [
        ([torch.zeros(2)], "the top level is a list"),
        (torch.zeros(2), "the top level is a Tensor"),
        ({"epoch": 3, "note": "hi", "weights": [1, 2]}, "no state dict found; the top level holds epoch, note, weights"),
    ],
)
def test_no_state_dict_lists_what_is_there(refused, tmp_path, obj, needle):
    src = tmp_path / "odd.pth"
    torch.save(obj, src)
    refused(src, 1, needle)


# 9, 10, 13 ----------------------------------------------------------------------------------------
def test_unmapped_source_key_is_named(refused, states, tmp_path):
    sd = {**states("b0"), "s1.b1.extra_gate.weight": torch.zeros(4)}
    src = tmp_path / "extra.pyth"
    torch.save({"model_state": sd}, src)
    refused(src, 1, "s1.b1.extra_gate.weight: no rule of table mmdet@2 matches this key", args=("--arch", "b0"))


def test_unfilled_target_key_is_named(refused, states, tmp_path):
    sd = dict(states("b0"))
    del sd["s6.b2.se.f_ex.2.weight"]
    src = tmp_path / "missing.pyth"
    torch.save({"model_state": sd}, src)
    refused(src, 1, "s6.b2.se.f_ex.2.weight: missing from the checkpoint", "layers.5.1.se.conv2.conv.weight would be left unfilled", args=("--arch", "b0"))


def test_wrong_shape_names_key_shapes_and_the_variant_that_fits(refused, states, tmp_path):
    sd = dict(states("b0"))
    sd["stem.conv.weight"] = torch.zeros(48, 3, 3, 3)
    sd["stem.bn.weight"] = torch.zeros(48)
    src = tmp_path / "odd.pyth"
    torch.save({"model_state": sd}, src)
    refused(src, 1, "stem.conv.weight: shape (48, 3, 3, 3) but b0 expects (32, 3, 3, 3)", "pass --arch b4", args=("--arch", "b0"))


# 11 -----------------------------------------------------------------------------------------------
def test_two_sources_on_one_target_is_an_error(cli, make_ckpt, tmp_path):
    from ckptconv.tables.registry import builtin_dir

    text = (builtin_dir() / "effnet" / "layouts" / "mmdet.toml").read_text().replace('name      = "mmdet"', 'name      = "clash"')
    text = text.replace('"bn"      = "bn"', '"bn"      = "conv"')  # stem.bn.weight -> layers.0.conv.weight too
    (tmp_path / "t" / "effnet" / "layouts").mkdir(parents=True)
    (tmp_path / "t" / "effnet" / "layouts" / "clash.toml").write_text(text)
    out = tmp_path / "o.pth"
    result = cli("--tables", tmp_path / "t", "pycls2mmdet", make_ckpt("b0"), out, "--layout", "clash")
    assert result.exit_code == 2
    assert "maps both stem.conv.weight and stem.bn.weight to layers.0.conv.weight" in result.stderr
    assert not out.exists()


# 12 -----------------------------------------------------------------------------------------------
def test_mixed_module_prefixes_are_an_error(refused, states, tmp_path):
    sd = {(f"module.{k}" if i % 2 else k): v for i, (k, v) in enumerate(states("b0").items())}
    src = tmp_path / "mixed.pth"
    torch.save({"state_dict": sd}, src)
    refused(src, 1, "mixed key prefixes", "start with 'module.'")


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


# 18 -----------------------------------------------------------------------------------------------
def test_ctrl_c_during_the_write_leaves_nothing(cli, make_ckpt, tmp_path, monkeypatch):
    src, out = make_ckpt("b0"), tmp_path / "o.pth"

    def interrupted(f, *args):
        f.write(b"x" * 4096)
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "write_pth", interrupted)
    result = cli("pycls2mmdet", src, out)
    assert result.exit_code == 130 and "interrupted" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["EN-B0_test.pyth"]


@pytest.mark.parametrize(
    "signum, code, line",
    [(signal.SIGINT, 130, "error: interrupted; nothing partial was written and no output was replaced"),
     (signal.SIGTERM, 143, "error: terminated (SIGTERM); nothing partial was written and no output was replaced")],
    ids=["SIGINT", "SIGTERM"],
)
def test_a_signal_mid_write_exits_with_its_code_and_leaves_nothing(make_ckpt, tmp_path, signum, code, line):
    """Ctrl-C, or the SIGTERM that timeout, CI cancellation and docker stop send, while the output is
    being written: held until the write ends (torch would turn it into another error mid-write),
    then the run ends with one line, the temp file removed, the old output intact."""
    src, out, ready = make_ckpt("b0"), tmp_path / "o.pth", tmp_path / "ready"
    out.write_bytes(b"previous output")
    script = f"""
import sys, time
import ckptconv.io.writer as w
real = w.write_pth
def slow(f, *args):
    f.write(b"x" * 4096); f.flush()
    open({str(ready)!r}, "w").close()
    time.sleep(1)
    return real(f, *args)
w.write_pth = slow
sys.argv = ["ckptconv", "pycls2mmdet", {str(src)!r}, {str(out)!r}, "--force", "--verify", "structure"]
from ckptconv.__main__ import main
main()
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    _wait_for(ready, proc)
    assert list(tmp_path.glob(".ckptconv-tmp-*"))  # it is mid-write
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert [ln for ln in err.splitlines() if ln.strip()] == [line]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["EN-B0_test.pyth", "o.pth", "ready"]
    assert out.read_bytes() == b"previous output"


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.05)


# 19 -----------------------------------------------------------------------------------------------
def test_killed_process_leaves_old_output_and_a_temp_the_next_run_removes(cli, make_ckpt, tmp_path):
    src, out, ready = make_ckpt("b0"), tmp_path / "o.pth", tmp_path / "ready"
    out.write_bytes(b"previous output")
    script = f"""
import time
import ckptconv.io.writer as w
def hang(f, *args):
    f.write(b"x" * 4096); f.flush()
    open({str(ready)!r}, "w").close()
    time.sleep(60)
w.write_pth = hang
from ckptconv.cli import main
main(["pycls2mmdet", {str(src)!r}, {str(out)!r}, "--force"], prog_name="ckptconv")
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    _wait_for(ready, proc)
    proc.kill()
    proc.wait()
    leftovers = list(tmp_path.glob(".ckptconv-tmp-*"))
    assert len(leftovers) == 1 and leftovers[0].name.startswith(f".ckptconv-tmp-{proc.pid}-")
    assert out.read_bytes() == b"previous output"
    assert cli("pycls2mmdet", src, tmp_path / "next.pth").exit_code == 0
    assert leftovers[0].exists()  # a minute old at most: it could be one being created right now
    os.utime(leftovers[0], (time.time() - 120, time.time() - 120))
    assert cli("pycls2mmdet", src, tmp_path / "third.pth").exit_code == 0
    assert not list(tmp_path.glob(".ckptconv-tmp-*"))  # no process holds its lock: removed


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


def test_loader_errors_are_ckptconv_errors(tmp_path):
    bad = tmp_path / "b.pth"
    bad.write_bytes(b"PK\x03\x04" + os.urandom(64))
    with pytest.raises(FormatError):
        load(bad)
    evil = tmp_path / "e.pth"
    torch.save({"x": Canary(tmp_path / "c")}, evil)
    with pytest.raises(UnsafePickleError) as err:
        load(evil)
    assert err.value.global_name.endswith("exec")


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
    from ckptconv.verification import synthetic

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
