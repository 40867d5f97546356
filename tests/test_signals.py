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
import subprocess
import sys
import time
from pathlib import Path

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
