"""Every writer gives the file writer's guarantees: a full disk is one line and nothing left, a temp a
killed run left is removed by the next run once no process holds it, what it publishes is fsynced
first, a symlink at the output is replaced as a link, and what is replaced is checked again as it
is replaced. Parametrized over the writers: a .pth file and a hub folder.

And what a run checked at the start still holds at the end: the sha256 a meta records is the sha256
of the file the tensors were read from.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ckptconv.io import files
from ckptconv.io import folder as folder_io

WRITERS = {
    "file": ("o.pth", ["--to", "timm"]),
    "folder": ("hub", ["--to", "timm", "--hub"]),
}


def one_error_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def convert(cli, src: Path, out: Path, writer: str, *more):
    return cli("convert", src, out, *WRITERS[writer][1], "--verify", "structure", *more)


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("where", ["write", "fsync"])
def test_a_full_disk_is_one_line_and_leaves_nothing(cli, built, tmp_path, monkeypatch, writer, where):
    src, out = built.source("regnetx_200mf"), tmp_path / WRITERS[writer][0]
    full = OSError(errno.ENOSPC, "No space left on device")
    if where == "fsync":  # the data fit, the flush to the disk does not
        real_fsync = os.fsync

        def fsync(fd):
            if os.path.isfile(f"/proc/self/fd/{fd}") and os.fstat(fd).st_size > 0:
                raise full
            return real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
    else:  # the disk fills after the first tensor
        import ckptconv.io.writer as w

        real_write, written = w._pwrite_all, []

        def pwrite(fd, data, offset):
            if written:
                raise full
            written.append(fd)
            return real_write(fd, data, offset)

        monkeypatch.setattr(w, "_pwrite_all", pwrite)
    result = convert(cli, src, out, writer)
    assert result.exit_code == 1 and "the disk is full; nothing was written" in one_error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("writer", WRITERS)
def test_a_killed_runs_temp_is_removed_by_the_next_run_once_no_one_holds_it(cli, built, tmp_path, writer):
    src, out, ready = built.source("regnetx_200mf"), tmp_path / WRITERS[writer][0], tmp_path.parent / f"{tmp_path.name}-ready"
    script = f"""
import time
import ckptconv.hub as h
import ckptconv.io.writer as w
def hang(*args, **kwargs):
    open({str(ready)!r}, "w").close()
    time.sleep(60)
w.write_pth = w.write_safetensors = hang
from ckptconv.cli import main
main(["convert", {str(src)!r}, {str(out)!r}, *{WRITERS[writer][1]!r}, "--verify", "structure"], prog_name="ckptconv")
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not ready.exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    temps = list(tmp_path.glob(".ckptconv-tmp-*"))
    assert len(temps) == 1 and temps[0].is_dir() == (writer == "folder")
    assert files.clean_stale_temps(tmp_path) == []  # held by its live writer, however old
    os.utime(temps[0], (time.time() - 120, time.time() - 120))
    assert files.clean_stale_temps(tmp_path) == []
    proc.kill()
    proc.wait()
    ready.unlink()
    assert convert(cli, src, tmp_path / f"next{Path(WRITERS[writer][0]).suffix}", writer).exit_code == 0
    assert not temps[0].exists()  # nobody holds it: the next run into this folder removed it


@pytest.mark.parametrize("writer", WRITERS)
def test_everything_published_is_fsynced_before_it_is_renamed(cli, built, tmp_path, monkeypatch, writer):
    events: list[str] = []
    real_fsync, real_rename, real_replace, real_link = os.fsync, os.rename, os.replace, os.link

    def fsync(fd):
        events.append(f"fsync {os.readlink(f'/proc/self/fd/{fd}')}")
        return real_fsync(fd)

    def moved(kind, real):
        def move(a, b, *args, **kwargs):
            events.append(f"{kind} {a} -> {b}")
            return real(a, b, *args, **kwargs)

        return move

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", moved("rename", real_rename))
    monkeypatch.setattr(os, "replace", moved("rename", real_replace))
    monkeypatch.setattr(os, "link", moved("rename", real_link))
    out = tmp_path / WRITERS[writer][0]
    assert convert(cli, built.source("regnetx_200mf"), out, writer).exit_code == 0
    publish = next(i for i, e in enumerate(events) if e.startswith("rename") and e.endswith(f"-> {out}"))
    temp = events[publish].split(" ")[1]
    synced = {e.split(" ", 1)[1] for e in events[:publish] if e.startswith("fsync")}
    written = [temp] if writer == "file" else [temp] + [f"{temp}/{name}" for name in folder_io.FILES]
    assert set(written) <= synced, (written, synced)
    assert any(e == f"fsync {tmp_path}" for e in events[publish:])  # and the folder that holds it, after


@pytest.mark.parametrize("writer", WRITERS)
def test_force_through_a_symlink_replaces_the_link_and_leaves_nothing_aside(cli, built, tmp_path, writer):
    src, name = built.source("regnetx_200mf"), WRITERS[writer][0]
    real = tmp_path / "elsewhere" / name
    real.parent.mkdir()
    assert convert(cli, src, real, writer).exit_code == 0
    before = sorted(p.name for p in real.iterdir()) if real.is_dir() else real.read_bytes()
    link = tmp_path / "out" / name
    link.parent.mkdir()
    link.symlink_to(real)
    assert convert(cli, src, link, writer, "--force").exit_code == 0
    assert not link.is_symlink() and link.exists()
    assert (sorted(p.name for p in real.iterdir()) if real.is_dir() else real.read_bytes()) == before  # what it pointed at: untouched
    assert sorted(p.name for p in link.parent.iterdir()) == [name]  # no -old- entry, no temp


def test_files_that_appear_in_a_folder_while_it_is_replaced_are_never_deleted(cli, built, tmp_path, monkeypatch):
    from ckptconv import convert as conversion

    src, out = built.source("regnetx_200mf"), tmp_path / "hub"
    assert convert(cli, src, out, "folder").exit_code == 0
    real_check = conversion._still_the_source

    def meanwhile(c):
        (out / "notes.txt").write_text("mine\n")  # the user saves a file into the folder during the run
        real_check(c)

    monkeypatch.setattr(conversion, "_still_the_source", meanwhile)
    result = convert(cli, src, out, "folder", "--force")
    assert result.exit_code == 2 and "the folder gained files while converting (notes.txt)" in one_error_line(result)
    assert (out / "notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub"]


# --- checked at the start, true at the end ------------------------------------------------------------


def _replace_with(src: Path, other: Path) -> None:
    fresh = src.with_name("fresh.pyth")
    fresh.write_bytes(other.read_bytes())
    os.replace(fresh, src)


def test_a_source_replaced_between_its_hash_and_its_read_is_never_recorded(built, tmp_path, monkeypatch):
    """A batch hashes a source, then its worker reads it: replaced between the two, the sha256 would
    name other bytes than the tensors. The conversion refuses, and nothing is written."""
    from concurrent.futures import Future

    import ckptconv.io.hashing as hashing
    from ckptconv.api import convert_checkpoint
    from ckptconv.errors import FormatError

    src = tmp_path / "run.pyth"
    src.write_bytes(built.source("regnetx_200mf").read_bytes())

    def hash_then_replace(path):
        done = Future()
        done.set_result(hashing.hash_file(path))
        _replace_with(Path(path), built.source("regnetx_200mf", epoch=5))
        return done

    monkeypatch.setattr(hashing, "start_hash", hash_then_replace)
    with pytest.raises(FormatError, match="changed while ckptconv read it"):
        convert_checkpoint(src, "timm", output=tmp_path / "o.pth", verify="structure")
    assert not (tmp_path / "o.pth").exists()


def test_a_source_replaced_after_it_was_read_is_recorded_as_the_file_read(built, tmp_path, monkeypatch):
    """Every read goes through the one open file: a rename afterwards changes nothing converted."""
    import ckptconv.convert as conversion
    import ckptconv.io.hashing as hashing
    from ckptconv.api import convert_checkpoint

    src = tmp_path / "run.pyth"
    src.write_bytes(built.source("regnetx_200mf").read_bytes())
    want = hashing.hash_file(src).sha256
    real_prepare = conversion.prepare

    def replaced_meanwhile(request, **kwargs):
        prepared = real_prepare(request, **kwargs)
        _replace_with(src, built.source("regnetx_200mf", epoch=5))
        return prepared

    monkeypatch.setattr(conversion, "prepare", replaced_meanwhile)
    converted = convert_checkpoint(src, "timm", output=tmp_path / "o.pth", verify="structure")
    assert converted.meta["source_sha256"] == want != hashing.hash_file(src).sha256


def test_a_file_name_that_is_not_utf8_reads_writes_and_verifies(cli, built, tmp_path):
    """A name of bytes that are not UTF-8 (a surrogate escape in Python) was called corrupt."""
    src = Path(os.fsdecode(bytes(tmp_path) + b"/EN-B0-\xff.pyth"))
    out = Path(os.fsdecode(bytes(tmp_path) + b"/out-\xfe.pth"))
    src.write_bytes(built.source("b0").read_bytes())
    result = cli("convert", src, out, "--to", "timm", "--verify", "structure")
    assert result.exit_code == 0, result.output
    assert "\\udcff" in result.output  # shown escaped, never raw
    assert cli("verify", out, "--source", src).exit_code == 0
