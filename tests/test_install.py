"""The package as users install it: a wheel that carries the tables, and a CLI that starts fast."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("ckptconv-*.whl")
    return path


def test_wheel_carries_every_table(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    tables = {p.relative_to(REPO).as_posix() for p in (REPO / "mappings").rglob("*.toml")}
    assert tables, "no tables in the source tree"
    assert {f"ckptconv/{t}" for t in tables} <= names
    photos = {p.relative_to(REPO).as_posix() for p in (REPO / "ckptconv" / "data" / "photos").glob("*.png")}
    assert len(photos) >= 3 and photos <= names  # the pipeline check's photos
    assert any(n.endswith("entry_points.txt") for n in names)


def test_non_editable_install_finds_the_tables_and_converts(wheel, tmp_path, make_ckpt):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    work = tmp_path / "elsewhere"  # not the source tree: its mappings/ must not be what is found
    work.mkdir()
    code = "import ckptconv, ckptconv.tables.registry as r; print(ckptconv.__file__); print(r.builtin_dir())"
    where = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, check=True)
    module, tables = where.stdout.split()
    assert module.startswith(str(site)) and tables == str(site / "ckptconv" / "mappings")
    listing = subprocess.run(
        [sys.executable, "-m", "ckptconv", "mappings", "--json"], cwd=work, env=env, capture_output=True, text=True, check=True
    )
    data = json.loads(listing.stdout)
    assert {(t["family"], t["layout"]) for t in data["layouts"]} >= {("effnet", "mmdet-stages"), ("regnet", "torchvision"), ("resnet", "timm")}
    zoo = json.loads((Path(__file__).parent / "data" / "zoo.json").read_text())["models"]
    assert {v["arch"] for v in data["variants"]} == set(zoo)  # all 36 models of pycls's zoo ship
    src = make_ckpt("b0")
    run = subprocess.run(
        [sys.executable, "-m", "ckptconv", "pycls2mmdet", str(src), str(work / "o.pth"), "--json"],
        cwd=work, env=env, capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["verification"]["ok"]


def test_installed_console_script_finds_the_tables(tmp_path):
    """The ``ckptconv`` script of the environment (non-editable in CI) lists the tables from anywhere."""
    script = shutil.which("ckptconv") or str(Path(sys.executable).parent / "ckptconv")
    if not Path(script).exists():
        pytest.skip("ckptconv is not installed in this environment (pip install . installs it)")
    out = subprocess.run([script, "mappings", "--json"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "mmdet" in {t["layout"] for t in json.loads(out.stdout)["layouts"]}


STARTUP = """
import sys
from ckptconv.cli import main
try:
    main(sys.argv[1:], prog_name="ckptconv")
except SystemExit as e:
    assert e.code in (0, None), e.code
print("torch" in sys.modules, "rich" in sys.modules, file=sys.stderr)
"""


def test_entry_point_exits_with_the_commands_code(tmp_path):
    """``python -m ckptconv`` (and the console script) skip teardown but keep exit codes and output."""
    ok = subprocess.run([sys.executable, "-m", "ckptconv", "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("ckptconv, version")
    usage = subprocess.run([sys.executable, "-m", "ckptconv", "pycls2mmdet", str(tmp_path / "x.pyth"), str(tmp_path / "o.txt")], capture_output=True, text=True)
    assert usage.returncode == 2 and "cannot tell the output format" in usage.stderr
    bad = subprocess.run([sys.executable, "-m", "ckptconv", "--no-such-option"], capture_output=True, text=True)
    assert bad.returncode == 2 and "No such option" in bad.stderr


@pytest.mark.parametrize(
    "args, rich_ok",
    [(["--help"], False), (["--version"], False), (["mappings"], True), (["mappings", "show", "timm", "--arch", "b5"], True)],
)
def test_fast_commands_never_import_torch(args, rich_ok):
    run = subprocess.run([sys.executable, "-c", STARTUP, *args], cwd=REPO, capture_output=True, text=True, check=True)
    torch_loaded, rich_loaded = run.stderr.split()[-2:]
    assert torch_loaded == "False"
    assert rich_ok or rich_loaded == "False"
