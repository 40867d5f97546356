"""A stranger's file is hostile input in every part: whatever its bytes, pickle, meta, names or
size, it ends in one clear error line and the documented exit code, with bounded work, no output,
and the input untouched. Code in a pickle never runs."""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import stat
import struct
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
from ckptconv.io.checkpoint import load

from .conftest import only_error_line, rewrite_zip


class Canary:
    """Unpickling this runs code: it writes a file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (exec, (CANARY_CODE.format(path=self.path),))


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


CANARY_CODE = "open({path!r}, 'w').write('pwned')"


def test_a_record_pointing_at_another_records_header_is_refused(refused, built, tmp_path):
    """A central directory entry aimed at another record's local header would hand one tensor
    another's bytes, CRC and all."""
    raw = bytearray(built.source().read_bytes())
    with zipfile.ZipFile(built.source()) as zf:
        offsets = {i.filename.rsplit("/", 1)[-1]: i.header_offset for i in zf.infolist()}
    pos, patched = raw.find(b"PK\x01\x02"), 0
    while pos >= 0:  # the central directory entry of record data/0 now points at data/1's header
        n = struct.unpack("<H", raw[pos + 28 : pos + 30])[0]
        if raw[pos + 46 : pos + 46 + n].endswith(b"/data/0"):
            raw[pos + 42 : pos + 46] = struct.pack("<I", offsets["1"])
            patched += 1
        pos = raw.find(b"PK\x01\x02", pos + 4)
    assert patched == 1
    src = tmp_path / "crafted.pyth"
    src.write_bytes(bytes(raw))
    refused(src, 1, "its local header names another record")


def test_meta_with_shared_references_and_deep_nesting_is_never_walked(cli, states, tmp_path):
    shared: list = [0]
    for _ in range(60):  # 2**60 paths through 60 objects
        shared = [shared, shared]
    deep: list = []
    for _ in range(20_000):
        deep = [deep]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    try:
        torch.save({"epoch": shared, "model_state": states("b0"), "meta": {"arch": deep, "epoch": shared}, "cfg": deep}, tmp_path / "odd.pyth")
    finally:
        sys.setrecursionlimit(limit)
    start = time.perf_counter()
    assert cli("pycls2mmdet", tmp_path / "odd.pyth", tmp_path / "o.pth", "--verify", "structure").exit_code == 0
    assert cli("inspect", tmp_path / "odd.pyth").exit_code == 0
    assert time.perf_counter() - start < 30  # not a hang: each is a second or two
    assert torch.load(tmp_path / "o.pth", weights_only=True)["meta"]["epoch"] is None


def test_a_compressed_record_is_refused_before_it_is_read(refused, built, tmp_path):
    """torch never compresses; a deflated data.pkl padded to gigabytes would otherwise be inflated."""

    def deflate(name: str, data: bytes):
        return (data + b"\0" * (8 << 20), zipfile.ZIP_DEFLATED) if name.endswith("data.pkl") else None

    src = rewrite_zip(built.source(), tmp_path / "deflated.pyth", deflate)
    assert src.stat().st_size < built.source().stat().st_size + (1 << 20)
    refused(src, 1, "is compressed; torch never compresses its records")


def test_input_size_is_bounded(refused, built):
    refused(built.source(), 2, "--input-size 100000 100000 is out of range", args=("--input-size", "100000", "100000"))


def test_fifos_are_never_opened(refused, cli, built, tmp_path):
    fifo = tmp_path / "fifo.pyth"
    os.mkfifo(fifo)
    refused(fifo, 2, "is not a regular file")
    out_fifo = tmp_path / "out" / "o.pth"
    out_fifo.parent.mkdir(exist_ok=True)
    os.mkfifo(out_fifo)
    result = cli("pycls2mmdet", built.source(), out_fifo, "--force")
    assert result.exit_code == 2 and "the output is not a regular file" in only_error_line(result)
    assert stat.S_ISFIFO(os.stat(out_fifo).st_mode)


@pytest.mark.parametrize(
    "entry, needle",
    [
        ({"source": 5}, "entry 1.source is 5; expected a string"),
        ({"source": "x.pyth", "weights": ["ema"]}, "entry 1.weights is ['ema']; expected a string"),
        ({"source": "x.pyth", "dtype": "fp64"}, "entry 1.dtype is 'fp64'; expected one of keep"),
        ({"source": "x.pyth", "colour": "red"}, "entry 1 has unknown field(s) ['colour']"),
    ],
)
def test_manifest_fields_are_typed(cli, tmp_path, entry, needle):
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"checkpoints": [entry]}))
    result = cli("batch", manifest, "--out-dir", tmp_path / "out")
    assert result.exit_code == 2 and needle in only_error_line(result)


@pytest.mark.parametrize("report", [{"files": 3}, {"files": [{"status": "converted", "output": 7}]}, "[" * 50_000])
def test_a_malformed_batch_report_is_a_usage_error(cli, tmp_path, report):
    path = tmp_path / "r.json"
    path.write_text(report if isinstance(report, str) else json.dumps(report))
    result = cli("verify", path)
    assert result.exit_code == 2
    only_error_line(result)


def test_a_malformed_safetensors_header_is_one_error(cli, tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": "big", "data_offsets": [0, 4]}}).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    result = cli("inspect", path)
    assert result.exit_code == 1 and "safetensors entry 'w' is malformed" in only_error_line(result)


def test_a_meta_of_the_wrong_types_fails_identity(cli, built, tmp_path):
    obj = torch.load(built.output("b0", "mmdet"), weights_only=True)
    obj["meta"].update(arch=["b0"], settings={"eps": "abc"})
    out = tmp_path / "odd-meta.pth"
    torch.save(obj, out)
    line = only_error_line(cli("verify", out))
    assert "meta field arch is a list; expected a string" in line


def test_one_bad_file_in_a_directory_is_reported_and_the_rest_verified(cli, built, tmp_path):
    d = tmp_path / "outs"
    d.mkdir()
    (d / "good.pth").write_bytes(built.output("b0", "mmdet").read_bytes())
    (d / "bad.pth").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    report = tmp_path / "r.json"
    result = cli("verify", d, "--report", report, "--json")
    assert result.exit_code == 1
    files = {Path(f["path"]).name: f for f in json.loads(report.read_text())["files"]}
    assert files["good.pth"]["ok"] and not files["bad.pth"]["ok"]


def test_names_with_newlines_and_escapes_cannot_forge_log_lines(cli, states, tmp_path):
    sd = {**states("b0"), "evil\nerror: all checks passed\x1b[2K": torch.zeros(1)}
    src = tmp_path / "evil.pyth"
    torch.save({"model_state": sd}, src)
    result = cli("pycls2mmdet", src, tmp_path / "o.pth", "--arch", "b0")
    line = only_error_line(result)
    assert "\\nerror: all checks passed\\x1b[2K" in line and "\x1b" not in result.stderr


def test_a_blank_model_type_means_unknown(cli, states, tmp_path):
    src = tmp_path / "blank.pyth"
    torch.save({"model_state": states("b1"), "cfg": "MODEL:\n  TYPE: ''\n"}, src)
    result = cli("pycls2mmdet", src, tmp_path / "o.pth", "--json", "--verify", "structure")
    assert result.exit_code == 0 and json.loads(result.stdout)["arch"] == "b1"


@pytest.mark.parametrize("prefix", [".", "backbone.", "a..b", " backbone"])
def test_a_prefix_with_empty_segments_is_a_usage_error(refused, built, prefix):
    refused(built.source(), 2, "is not a dotted module path", args=("--prefix", prefix))


@pytest.mark.parametrize("value, words", [(float("inf"), "holds NaN or Inf"), (-1.0, "holds negative variances")])
def test_statistics_no_training_writes_are_refused_naming_the_key(cli, built, tmp_path, value, words):
    """A running_var of +inf or below 0 computes garbage with no error anywhere: convert refuses it
    (with --no-verify too, writing nothing), and verify fails a file that holds one."""
    state = torch.load(built.source("b0"), weights_only=True)
    state["model_state"]["s2.b1.exp_bn.running_var"][3] = value
    src = tmp_path / "odd.pyth"
    torch.save(state, src)
    refused = cli("pycls2mmdet", src, tmp_path / "out.pth", "--no-verify")
    assert refused.exit_code == 1 and f"s2.b1.exp_bn.running_var {words}" in refused.stderr and not (tmp_path / "out.pth").exists()
    good = torch.load(built.output("b0", "mmdet"), weights_only=True)
    good["state_dict"]["layers.2.0.expand_conv.bn.running_var"][3] = value
    torch.save(good, tmp_path / "tampered.pth")
    failed = cli("verify", tmp_path / "tampered.pth", "--json")
    assert failed.exit_code == 1 and words in json.loads(failed.stdout)["files"][0]["first_failure"]


def test_a_fifo_among_the_tables_is_refused_not_waited_on(cli, tmp_path):
    layouts = tmp_path / "tables" / "effnet" / "layouts"
    layouts.mkdir(parents=True)
    os.mkfifo(layouts / "x.toml")
    result = cli("--tables", tmp_path / "tables", "mappings")
    assert result.exit_code == 2 and "x.toml: is not a regular file" in result.output


def test_the_api_names_a_missing_source_instead_of_a_typeerror():
    import ckptconv
    from ckptconv.errors import UsageError

    with pytest.raises(UsageError, match="needs a source"):
        ckptconv.convert_checkpoint(None)


def test_a_storage_that_runs_past_its_record_is_refused(cli, built, tmp_path):
    """A crafted zip whose record is shorter than the storage the pickle declares: torch reads the
    missing bytes from the next record or past the end with no error. ckptconv refuses the file."""
    import zipfile

    source = zipfile.ZipFile(built.source("b0"))
    shortened = next(n for n in source.namelist() if "/data/" in n and source.getinfo(n).file_size > 64)
    crafted = tmp_path / "crafted.pyth"
    with zipfile.ZipFile(crafted, "w", compression=zipfile.ZIP_STORED) as out:
        for name in source.namelist():
            data = source.read(name)
            out.writestr(zipfile.ZipInfo(name), data[:-16] if name == shortened else data)
    for args in (("inspect", crafted), ("pycls2mmdet", crafted, tmp_path / "o.pth", "--no-verify")):
        result = cli(*args)
        assert result.exit_code == 1 and "its storage claims" in result.output and "the file is crafted or corrupt" in result.output, result.output
    assert not (tmp_path / "o.pth").exists()


def test_the_api_copies_when_asked_so_a_shrinking_source_cannot_kill_the_caller(built, tmp_path):
    """Without output, the state dict shares the mapped source's memory; copy=True owns its memory,
    so truncating the source afterwards cannot SIGBUS the caller (checked in a child process)."""
    import sys

    src = tmp_path / "b0.pyth"
    shutil.copy(built.source("b0"), src)
    code = (
        "import os, ckptconv, torch\n"
        f"c = ckptconv.convert_checkpoint({str(src)!r}, 'mmdet', verify='structure', copy=True)\n"
        f"os.truncate({str(src)!r}, 1000)\n"
        "print(float(sum(t.float().abs().sum() for t in c.state_dict.values())) > 0)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "True", (run.returncode, run.stderr[-300:])


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
