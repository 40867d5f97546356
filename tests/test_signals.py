"""SIGTERM at every moment of a write: a run ends with exit 143 and nothing partial (no temp file, no
output replaced, nothing published after it said so), or, once its outputs are published, exit 0.

Each moment is a step of the writers (a temp made, data written, read back, published, a folder
synced), reached in a child process that sends SIGTERM to the run itself when the step is reached:
the test waits on that moment, never on a clock. The batch's moments are reached in its workers and
the signal goes to the batch's parent, as ``timeout`` and CI cancellation send it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ckptconv.io import files, writer

# the writers' steps, as (module, function, after): each is a moment as it begins, and the
# publishing ones (after=True) a moment as they end too (the outputs are then published)
STEPS = [
    ("ckptconv.io.files", "TempFile.__init__", False), ("ckptconv.io.files.PendingWrite", "write", False),
    ("ckptconv.convert", "_read_back", False), ("ckptconv.io.files.PendingWrite", "commit", True), ("ckptconv.io.files", "fsync_dir", False),
    ("ckptconv.io.folder.PendingFolder", "write", False), ("ckptconv.io.folder.PendingFolder", "commit", True),
]

CHILD = r"""
import importlib, os, signal, sys
target, who, marker, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
count = [0]

def moment():
    count[0] += 1
    if count[0] == target:
        open(marker, "w").close()
        os.kill(os.getpid() if who == "self" else os.getppid(), signal.SIGTERM)

def wrap(real, after):
    def step(*args, **kwargs):
        moment()
        result = real(*args, **kwargs)
        if after:
            moment()
        return result
    return step

def patch_steps():
    for where, name, after in STEPS:
        owner_path, _, attr = (where + "." + name).rpartition(".")
        module_path, _, cls = owner_path.rpartition(".") if owner_path.split(".")[-1][:1].isupper() else (owner_path, "", "")
        owner = importlib.import_module(module_path)
        owner = getattr(owner, cls) if cls else owner
        setattr(owner, attr, wrap(getattr(owner, attr), after))

if who == "self":
    patch_steps()
else:  # the moments are the workers': patched in each worker as it starts (the parent never imports torch)
    import ckptconv.signals as s
    real_install = s.install_worker
    def install_worker():
        real_install()
        patch_steps()
    s.install_worker = install_worker
sys.argv = ["ckptconv", *argv]
from ckptconv.signals import install
install()
from ckptconv.cli import run
run()
"""


def run_child(target: int, who: str, marker: Path, argv: list[str], cwd: Path) -> tuple[int, str]:
    script = f"STEPS = {STEPS!r}\n" + CHILD
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", script, str(target), who, str(marker), *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stderr


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".ckptconv-tmp-*"))


def settle(root: Path) -> list[str]:
    """What temp files exist once every process of the run is gone (a worker outliving its parent
    would still be writing)."""
    time.sleep(0.5)
    return leftovers(root)


def one_moment(tmp_path: Path, k: int, who: str, prepare, check) -> bool:
    """SIGTERM at moment ``k`` of a run in its own folder (``prepare(folder)`` gives its argv);
    False when the run ended before reaching it (then it must have succeeded)."""
    folder = tmp_path / f"moment-{k}"
    folder.mkdir()
    marker = folder / "signalled"
    code, stderr = run_child(k, who, marker, prepare(folder), folder)
    if not marker.exists():
        assert code == 0, f"the run without a signal failed: {code}: {stderr}"
        return False
    assert code in (0, 143), (k, code, stderr[-2000:])
    assert settle(folder) == [], (k, code, leftovers(folder))
    check(folder, k, code)
    return True


def every_moment(tmp_path: Path, who: str, prepare, check, at_once: int = 2) -> int:
    """SIGTERM at each moment of the run in turn, ``at_once`` moments side by side, until a run
    reaches none; returns the number of moments."""
    from concurrent.futures import ThreadPoolExecutor

    k = 1
    with ThreadPoolExecutor(at_once) as pool:
        while True:
            reached = list(pool.map(lambda j: one_moment(tmp_path, j, who, prepare, check), range(k, k + at_once)))
            if not all(reached):
                return k - 1 + reached.index(False)
            k += at_once
            assert k < 200


def test_sigterm_at_every_moment_of_a_conversion_leaves_nothing_partial(tmp_path, built):
    """A hub folder and its config file: the folder writer's moments and the file writer's."""
    source = built.source("regnetx_200mf")

    def prepare(folder: Path) -> list[str]:
        (folder / "src.pyth").write_bytes(source.read_bytes())
        return ["convert", "src.pyth", "hub", "--to", "timm", "--hub", "--verify", "structure", "--config-out", "snippet.py"]

    def check(folder: Path, k: int, code: int) -> None:
        published = [(folder / "hub").exists(), (folder / "snippet.py").exists()]
        assert published == ([False, False] if code == 143 else [True, True]), (k, code)  # both, or neither

    assert every_moment(tmp_path, "self", prepare, check) >= 6


def test_sigterm_to_a_batch_at_every_moment_of_its_workers_writes_leaves_nothing_partial(tmp_path, built):
    source = built.source("regnetx_200mf")

    def prepare(folder: Path) -> list[str]:
        (folder / "zoo").mkdir()
        for name in ("a", "b"):
            (folder / "zoo" / f"{name}.pyth").write_bytes(source.read_bytes())
        return ["batch", "zoo", "--out-dir", "out", "--to", "timm", "--verify", "structure", "-j", "2", "--report", "report.json"]

    def check(folder: Path, k: int, code: int) -> None:
        written = sorted(p.name for p in (folder / "out").rglob("*.pth")) if (folder / "out").exists() else []
        if code == 0:
            assert json.loads((folder / "report.json").read_text())["ok"] and written == ["a.pth", "b.pth"], k
        else:  # what was converted before the signal is complete, and no report claims anything
            assert not (folder / "report.json").exists() and set(written) <= {"a.pth", "b.pth"}, k

    assert every_moment(tmp_path, "parent", prepare, check, at_once=1) >= 4


def test_a_batch_killed_outright_leaves_no_worker_writing_and_no_temp(tmp_path, built):
    """SIGKILL gives the parent no chance to stop its workers: each gets SIGTERM from the kernel as
    its parent dies, removes its temp file and exits. Nothing is published after the kill."""
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    for name in ("a", "b"):  # two files, two workers (one file would be converted in the parent itself)
        (zoo / f"{name}.pyth").write_bytes(built.source("regnetx_200mf").read_bytes())
    out = tmp_path / "out"
    script = f"""
import os, sys, time
import ckptconv.signals as s
real = s.install_worker
def install_worker():
    real()
    import ckptconv.convert as c
    def hang(*args, **kwargs):  # the temp file is written: the worker reads it back, slowly
        open({str(tmp_path)!r} + f"/worker-{{os.getpid()}}", "w").close()
        time.sleep(60)
    c._read_back = hang
s.install_worker = install_worker
sys.argv = ["ckptconv", "batch", {str(zoo)!r}, "--out-dir", {str(out)!r}, "--to", "timm", "-j", "2"]
from ckptconv.cli import run
run()
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(tmp_path.glob("worker-*")):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    workers = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
    assert leftovers(tmp_path) != []  # a worker's temp file, mid-run
    proc.kill()
    proc.wait()
    while any(_alive(pid) for pid in workers):  # a worker is gone once its SIGTERM is handled
        assert time.time() < deadline
        time.sleep(0.05)
    assert leftovers(tmp_path) == [] and not list(out.rglob("*.pth"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"  # not a zombie


def _start(args: list, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ckptconv", *map(str, args)], stderr=subprocess.PIPE, text=True, **kwargs)


MOMENTS = {
    "holding": lambda proc, tmp: _holds_signals(proc.pid),  # the first line of ckptconv: click not yet imported
    "torch importing": lambda proc, tmp: _importing_torch(proc.pid),
    "writing": lambda proc, tmp: any(p.name.startswith(".ckptconv-tmp-") for p in tmp.iterdir()),
}


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.05)


SIGTERM_RACE = """
import os, sys, time
from pathlib import Path
from ckptconv import signals
from ckptconv.batch import plan, pool
from ckptconv.options import Request

marks = Path(sys.argv[1])

def job_fn(job):
    with signals.job():  # as run_job marks a worker busy
        if job.source == "fast":
            return plan.Outcome(job.source, None, "converted")
        (marks / "slow-started").touch()
        try:
            time.sleep(60)
        except signals.Terminated:
            time.sleep(1)  # the job's clean-up; a second SIGTERM (the parent's) may come meanwhile
            raise

if __name__ == "__main__":
    signals.install()
    jobs = [plan.Job(Request(source=Path(name), output=Path(name + ".pth"))) for name in ("fast", "slow")]
    try:
        pool.run(jobs, workers=2, job_fn=job_fn, on_done=lambda job, o: (marks / "fast-done").touch())
    except KeyboardInterrupt as e:
        sys.exit(signals.exit_code(e))
"""


def _holds_signals(pid: int) -> bool:
    """ckptconv's first line has run: the process catches SIGTERM (Python alone catches only SIGINT)."""
    with open(f"/proc/{pid}/status") as f:
        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def _importing_torch(pid: int) -> bool:
    with open(f"/proc/{pid}/maps") as f:
        return "libtorch" in f.read()


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


def test_sigterm_to_a_batch_with_an_idle_worker_ends_it(tmp_path):
    """SIGTERM to the whole group (docker stop, CI cancellation) while one worker is idle: it dies
    waiting on the job queue, holding that queue's lock. The busy worker, its job ended by the
    same signal, must not go back to that queue (it would wait forever, and so would the parent)."""
    script = tmp_path / "race.py"
    script.write_text(SIGTERM_RACE)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], start_new_session=True, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ((tmp_path / "fast-done").exists() and (tmp_path / "slow-started").exists()) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # the idle worker is now blocked on the job queue
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError("the batch never ended after SIGTERM") from None
    assert proc.returncode == 143, err
