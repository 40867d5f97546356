"""Trust: what verify passes is what the library loads, and nothing is ever destroyed.

Each class of failure found by trying ckptconv as an attacker and as a careless user would, with a
test that reproduces it: a wrong file reported as verified, a file destroyed that the user never
asked to touch, unbounded work from a stranger's bytes, a signal at the wrong moment.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ckptconv.io.zipindex import read_index


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def only_error_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def rewrite_zip(src: Path, dst: Path, change) -> Path:
    """Copy a torch zip record by record, letting ``change(name, data) -> data | None`` rewrite each
    (None: keep); records stay uncompressed unless ``change`` returns (data, compress_type)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            new = change(info.filename, data)
            kind = zipfile.ZIP_STORED
            if isinstance(new, tuple):
                new, kind = new
            zout.writestr(zipfile.ZipInfo(info.filename), new if new is not None else data, compress_type=kind)
    return dst


# --- verified means: the bytes written, in the set the library loads ------------------------------


def big_endian_copy(src: Path, dst: Path) -> Path:
    """The checkpoint as torch.save writes it on a big-endian machine: every value byte-swapped and
    byteorder "big" (torch swaps it back on load)."""
    index = read_index(src)
    dtypes = {}
    for ref in index.tree["model_state"].values():
        dtypes[ref.record] = ref.dtype

    def swap(name: str, data: bytes):
        if name.endswith("/byteorder"):
            return b"big"
        if name in dtypes:
            return np.frombuffer(data, dtype=np.dtype(dtypes[name]).newbyteorder("<")).byteswap().tobytes()
        return None

    return rewrite_zip(src, dst, swap)


def test_a_big_endian_checkpoint_converts_to_the_right_values(cli, built, states, tmp_path):
    """Copying its records raw would write byte-swapped garbage and still pass an in-memory check."""
    src = big_endian_copy(built.source(), tmp_path / "big.pyth")
    assert torch.equal(torch.load(src, weights_only=True)["model_state"]["stem.conv.weight"], states("b0")["stem.conv.weight"])
    out = tmp_path / "o.pth"
    result = cli("pycls2mmdet", src, out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["write"]["copied_from_input"] == 0  # nothing raw from a swapped file
    sd = torch.load(out, weights_only=True)["state_dict"]
    assert torch.equal(sd["layers.0.conv.weight"], states("b0")["stem.conv.weight"].flip(1))  # RGB
    assert torch.equal(sd["layers.5.4.linear_conv.conv.weight"], states("b0")["s7.b1.lin_proj.weight"])
    assert cli("verify", out, "--source", src).exit_code == 0


def _two_sets(path: Path, first: dict, second: dict, names=("state_dict", "state_dict_ema")) -> Path:
    torch.save({names[0]: first, names[1]: second}, path)
    return path


def test_verify_checks_the_set_the_library_loads_and_refuses_sets_that_disagree(cli, built, tmp_path):
    timm = torch.load(built.output("b0", "timm"), weights_only=True)["state_dict"]
    other = {k: v.clone() for k, v in timm.items()}
    other["blocks.2.1.conv_dw.weight"] += 1.0
    agree = _two_sets(tmp_path / "agree.pth", timm, dict(timm))
    assert cli("verify", agree).exit_code == 0
    differ = _two_sets(tmp_path / "differ.pth", timm, other)
    line = only_error_line(cli("verify", differ))
    assert "weight sets state_dict_ema and state_dict disagree (blocks.2.1.conv_dw.weight)" in line  # timm loads the EMA set
    info = json.loads(cli("inspect", differ, "--json").stdout)
    assert info["loaded_by"]["timm"] == "state_dict_ema" and info["loaded_by"]["MMDetection"] == info["loaded_by"]["mmpretrain"] == "state_dict"


def test_a_pycls_set_beside_a_converted_set_must_agree_with_it(cli, built, states, tmp_path):
    mmdet = torch.load(built.output("b0", "mmdet"), weights_only=True)["state_dict"]
    mixed = tmp_path / "mixed.pth"
    torch.save({"state_dict": mmdet, "model_state": states("b0", 1000)}, mixed)  # another model's weights
    line = only_error_line(cli("verify", mixed, "--layout", "mmdet"))
    assert "weight sets state_dict and model disagree" in line and "mmengine" not in line.split(":")[0]


def test_odd_input_sizes_cannot_hide_a_padding_mistake(cli, built):
    """TF "same" padding equals symmetric padding where every strided conv meets an odd size."""
    result = cli("verify", built.output("b0", "mmdet"), "--padding", "same", "--input-size", "33", "47", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)["files"][0]
    assert report["input_size"] == [34, 48] and "padding settings differ only at even sizes" in report["notes"][0]


def test_a_record_pointing_at_another_records_header_is_refused(refuse, built, tmp_path):
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
    refuse(src, 1, "its local header names another record")


# --- never destroy a file -------------------------------------------------------------------------


@pytest.fixture
def refuse(cli, tmp_path):
    """Run a conversion that must fail: exit code, one line naming the cause, nothing written,
    the input untouched."""

    def check(src: Path, code: int, needle: str, *args, out: Path | None = None):
        before = digest(src) if src.is_file() else None
        out = out or tmp_path / "out" / "o.pth"
        out.parent.mkdir(exist_ok=True)
        listing = sorted(p.name for p in out.parent.iterdir())
        result = cli("pycls2mmdet", src, out, *args)
        assert result.exit_code == code, result.output
        assert needle in only_error_line(result)
        assert sorted(p.name for p in out.parent.iterdir()) == listing
        if before:
            assert digest(src) == before

    return check


def test_config_out_naming_the_output_is_refused(refuse, built, tmp_path):
    out = tmp_path / "out" / "o.pth"
    refuse(built.source(), 2, "are the same file", "--config-out", out, out=out)


def test_config_out_naming_the_input_is_refused(refuse, make_ckpt):
    src = make_ckpt()
    refuse(src, 2, "the output is the input", "--config-out", src)


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


# --- untrusted content is bounded ------------------------------------------------------------------


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


def test_a_compressed_record_is_refused_before_it_is_read(refuse, built, tmp_path):
    """torch never compresses; a deflated data.pkl padded to gigabytes would otherwise be inflated."""

    def deflate(name: str, data: bytes):
        return (data + b"\0" * (8 << 20), zipfile.ZIP_DEFLATED) if name.endswith("data.pkl") else None

    src = rewrite_zip(built.source(), tmp_path / "deflated.pyth", deflate)
    assert src.stat().st_size < built.source().stat().st_size + (1 << 20)
    refuse(src, 1, "is compressed; torch never compresses its records")


def test_input_size_is_bounded(refuse, built):
    refuse(built.source(), 2, "--input-size 100000 100000 is out of range", "--input-size", "100000", "100000")


def test_fifos_are_never_opened(refuse, cli, built, tmp_path):
    fifo = tmp_path / "fifo.pyth"
    os.mkfifo(fifo)
    refuse(fifo, 2, "is not a regular file")
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


# --- smaller ----------------------------------------------------------------------------------------


def test_a_blank_model_type_means_unknown(cli, states, tmp_path):
    src = tmp_path / "blank.pyth"
    torch.save({"model_state": states("b1"), "cfg": "MODEL:\n  TYPE: ''\n"}, src)
    result = cli("pycls2mmdet", src, tmp_path / "o.pth", "--json", "--verify", "structure")
    assert result.exit_code == 0 and json.loads(result.stdout)["arch"] == "b1"


@pytest.mark.parametrize("prefix", [".", "backbone.", "a..b", " backbone"])
def test_a_prefix_with_empty_segments_is_a_usage_error(refuse, built, prefix):
    refuse(built.source(), 2, "is not a dotted module path", "--prefix", prefix)


def test_verify_against_a_source_without_the_recorded_set_is_a_failed_provenance(cli, built, make_ckpt, tmp_path):
    out = tmp_path / "ema.pth"
    assert cli("pycls2mmdet", built.source("b0", ema=True), out, "--weights", "ema", "--verify", "structure").exit_code == 0
    result = cli("verify", out, "--source", make_ckpt(), "--json")
    assert result.exit_code == 1  # a failed check, not a usage error
    failed = [c["detail"] for c in json.loads(result.stdout)["files"][0]["checks"] if not c["ok"]]
    assert any("was converted from the ema weights" in d and "has no ema_state" in d for d in failed)


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


# --- signals -----------------------------------------------------------------------------------------


def _start(args: list, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ckptconv", *map(str, args)], stderr=subprocess.PIPE, text=True, **kwargs)


def _holds_signals(pid: int) -> bool:
    """ckptconv's first line has run: the process catches SIGTERM (Python alone catches only SIGINT)."""
    with open(f"/proc/{pid}/status") as f:
        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def _importing_torch(pid: int) -> bool:
    with open(f"/proc/{pid}/maps") as f:
        return "libtorch" in f.read()


MOMENTS = {
    "holding": lambda proc, tmp: _holds_signals(proc.pid),  # the first line of ckptconv: click not yet imported
    "torch importing": lambda proc, tmp: _importing_torch(proc.pid),
    "writing": lambda proc, tmp: any(p.name.startswith(".ckptconv-tmp-") for p in tmp.iterdir()),
}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="the moments are read from /proc (Linux)")
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_ctrl_c_at_any_moment_never_replaces_the_output(built, tmp_path, moment):
    """A signal from ckptconv's first line on ends the run with one line and exit 130: while click
    imports, while torch imports (held until the import ends, never lost), while the temp file is
    written. Each moment is seen from outside (/proc, the temp file), so no delay has to guess it."""
    out = tmp_path / "o.pth"
    out.write_bytes(b"precious")
    proc = _start(["pycls2mmdet", built.source(), out, "--force", "--verify", "structure"])
    reached, deadline = MOMENTS[moment], time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if reached(proc, tmp_path):
                break
        except (OSError, StopIteration):  # /proc of a process that is starting or ending
            pass
        time.sleep(0.001)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:  # it finished first: then it must have published a whole output
        assert moment == "writing" and torch.load(out, weights_only=True)["meta"]["arch"] == "b0"
        return
    assert proc.returncode == 130, err
    assert [ln for ln in err.splitlines() if ln.strip()] == ["error: interrupted; nothing partial was written and no output was replaced"]
    assert out.read_bytes() == b"precious" and sorted(p.name for p in tmp_path.iterdir()) == ["o.pth"]


@pytest.mark.parametrize("nth", [1, 2])
def test_a_signal_as_a_temp_file_is_created_leaves_no_temp_file(built, tmp_path, monkeypatch, nth):
    """The moment between creating a temp file (the output's, the config's) and registering it for
    removal: a signal there is held until it is registered, then removes it like any other."""
    from ckptconv import signals
    from ckptconv.api import convert_checkpoint
    from ckptconv.io import files

    created, create = [], files.TempFile.__init__

    def create_then_signal(self, path):
        create(self, path)
        created.append(self.path)
        if len(created) == nth:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(files.TempFile, "__init__", create_then_signal)
    monkeypatch.setattr(signals, "_state", {**signals._state, "depth": 0, "pending": None, "dropping": False})
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signals.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            convert_checkpoint(built.source(), output=tmp_path / "o.pth", config_out=tmp_path / "o.py", verify="none")
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert len(created) >= nth and not any(p.exists() for p in created)
    assert not (tmp_path / "o.pth").exists() and not (tmp_path / "o.py").exists()


def test_ctrl_c_to_a_batch_process_group_prints_one_line(built, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / f"m{i}.pyth").write_bytes(built.source("b3").read_bytes())
    out = tmp_path / "out"
    proc = _start(["batch", src, "--out-dir", out, "--jobs", "2", "--input-size", "640", "640"], start_new_session=True)
    deadline = time.monotonic() + 60
    while not list(out.glob(".ckptconv-tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: every process of the group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.count("error:") == 1
    assert not list(out.glob(".ckptconv-tmp-*"))


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


@pytest.mark.parametrize("field, value, words", [
    ("eps", "abc", "meta settings.eps is 'abc'"), ("eps", -1.0, "meta settings.eps is -1.0"),
    ("padding", "reflect", "meta settings.padding is 'reflect'"),
])
def test_a_meta_setting_without_meaning_is_named_by_verify(cli, built, tmp_path, field, value, words):
    obj = torch.load(built.output("b0", "mmdet"), weights_only=True)
    obj["meta"]["settings"][field] = value
    torch.save(obj, tmp_path / "odd_meta.pth")
    result = cli("verify", tmp_path / "odd_meta.pth", "--json")
    assert result.exit_code == 1 and words in json.loads(result.stdout)["files"][0]["first_failure"], result.stdout[-400:]


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


def test_a_channel_order_that_contradicts_the_meta_fails_verify(cli, built):
    """The file says what its weights take: asking verify for the other order is an error, not a
    quiet check of a pipeline built for weights the file does not hold."""
    out = built.output("b0", "timm")
    result = cli("verify", out, "--channel-order", "bgr", "--json")
    assert result.exit_code == 1
    assert "meta records channel order rgb but --channel-order bgr was asked" in json.loads(result.stdout)["files"][0]["first_failure"]


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
    import subprocess
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


def test_verify_with_a_directory_as_source_is_a_usage_error_not_a_hang(cli, built, tmp_path):
    result = cli("verify", built.output("b0", "mmdet"), "--source", tmp_path)
    assert result.exit_code == 2 and "is a directory" in result.output
