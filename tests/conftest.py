"""Shared fixtures: the upstream ground truth in ../shared/fixtures, synthetic pycls checkpoints, the CLI."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CKPTCONV_SHARED", REPO.parent / "shared" / "fixtures"))
ARCHS = ("b0", "b1", "b2", "b3", "b4", "b5")
LAYOUTS = ("mmdet", "mmdet-stages", "mmpretrain", "timm")
MANIFEST = {
    "pycls": "pycls_effnet_{}",
    "mmdet": "mmdet3_efficientnet_{}",
    "mmdet-stages": "mmdet_stages_efficientnet2mmdet_{}",
    "mmpretrain": "mmpretrain_efficientnet_{}",
    "timm": "timm_efficientnet_{}",
}
# Floats are per machine (../shared/fixtures/README.md): another CPU or thread count sums in another
# order, up to ~1e-5 relative. Stored arrays are compared under this tolerance; "bit for bit" is
# asserted only between two computations in one process.
RTOL, ATOL = 1e-4, 1e-5


def close(actual, expected) -> None:
    """``actual`` equals a stored array up to another machine's rounding."""
    import torch

    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=ATOL)


def pytest_configure(config) -> None:
    """``CKPTCONV_TEST_THREADS=1`` runs the suite single-threaded (another machine's summation order).

    The collector runs rarely: this one process holds torch, mmengine and every session fixture,
    and each test builds reference models in bursts of small objects that reference counting frees;
    at Python's default thresholds the collections they trigger took ~14 % of the suite's time.
    (A ckptconv run is short-lived: measured with farm-bench, the same change gains it nothing.)"""
    gc.set_threshold(100_000, 50, 1000)
    threads = os.environ.get("CKPTCONV_TEST_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))


NO_SHARED = (
    f"the upstream fixtures are not at {SHARED} (a user's clone has no ../shared; CI has it). "
    "Set CKPTCONV_SHARED to their directory to run these tests."
)


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared/fixtures, made by the real pycls, mmdet, mmpretrain and timm; skip when absent,
    unless CKPTCONV_REQUIRE_SHARED is set (CI sets it: there, these tests must run)."""
    if not (SHARED / "manifests").is_dir():
        if os.environ.get("CKPTCONV_REQUIRE_SHARED"):
            pytest.fail(NO_SHARED + " CKPTCONV_REQUIRE_SHARED is set, so this is a failure.")
        pytest.skip(NO_SHARED)
    return SHARED


def load_manifest(shared: Path, layout: str, arch: str) -> list[tuple[str, tuple[int, ...], str]]:
    """The real class's keys. The shared mmdet manifests were made with out_indices (0, ..., 6); the
    mmdet layout is the backbone as detectors build it, with out_indices (3, 4, 5), and mmdet builds
    no layer past max(out_indices) (the real mmdet 3.3.0, in tests/data/mmdet_efficientnet_out_indices_345.json),
    so its keys are the manifest's without layers.6."""
    data = json.loads((shared / "manifests" / f"{MANIFEST[layout].format(arch)}.json").read_text())
    keys = [(k, tuple(s), d) for k, s, d in data["keys"]]
    return [key for key in keys if not key[0].startswith("layers.6.")] if layout == "mmdet" else keys


@pytest.fixture(scope="session")
def manifest(shared):
    return lambda layout, arch: load_manifest(shared, layout, arch)


@pytest.fixture(scope="session")
def b0_fixture(shared):
    """The real pycls B0 training checkpoint and what the real models computed from it."""
    import numpy as np
    import torch

    pyth = shared / "pycls" / "EN-B0_dds_8gpu.pyth"
    feats = np.load(shared / "pycls" / "EN-B0_dds_8gpu.features.npz")
    return pyth, {k: torch.from_numpy(feats[k]) for k in feats.files}


@pytest.fixture(scope="session")
def registry():
    from ckptconv.tables.registry import Registry

    return Registry()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def only_error_line(result) -> str:
    """The one line a failed command prints (stderr: ``error: what; how to fix``)."""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


@pytest.fixture
def refused(cli, tmp_path):
    """Run a conversion that must fail: the exit code, one error line holding every needle,
    nothing written beside the output, the input untouched; returns the line."""

    def check(src: Path, code: int, *needles: str, args=(), out: Path | None = None) -> str:
        before = digest(src) if src.is_file() else None
        out = out or tmp_path / "out" / "o.pth"
        out.parent.mkdir(exist_ok=True)
        listing = sorted(p.name for p in out.parent.iterdir())
        result = cli("pycls2mmdet", src, out, *args)
        assert result.exit_code == code, result.output
        lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]  # --trust-pickle warns
        assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
        line = lines[0]
        assert all(needle in line for needle in needles), line
        assert sorted(p.name for p in out.parent.iterdir()) == listing
        if before:
            assert digest(src) == before
        return line

    return check


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def cli(runner):
    """Run ckptconv in-process; returns click's Result (exit_code, stdout, stderr)."""
    from ckptconv.cli import main

    def invoke(*args, **kwargs):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False, **kwargs)

    return invoke


@pytest.fixture(scope="session")
def states(registry):
    """Cached random pycls model_state per (arch, seed)."""
    from ckptconv.verification import synthetic

    cache = {}

    def get(arch: str, seed: int = 0):
        import torch

        if (arch, seed) not in cache:
            with torch.inference_mode(False):  # a test under inference_mode must not cache inference tensors for the rest
                cache[arch, seed] = synthetic.random_state(registry.variant(arch), seed)
        return cache[arch, seed]

    return get


@pytest.fixture
def tmp_path(tmp_path):
    """pytest's tmp_path, emptied as each test ends: checkpoints are large and the disk is shared
    (pytest itself would keep every test's directory until the session ends)."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def _pycls_file(path: Path, registry, states, arch="b0", *, legacy=False, ema=False, errors=None, optimizer=False, cfg=True, **extra) -> Path:
    from ckptconv.verification import synthetic

    variant = registry.variant(arch)
    ckpt = {"epoch": 99, "model_state": dict(states(arch))}
    if ema:
        ckpt["ema_state"] = dict(states(arch, 1000))
    if errors is not None:
        ckpt["test_err"], ckpt["ema_err"] = errors
    if optimizer:
        ckpt["optimizer_state"] = synthetic.optimizer_state(ckpt["model_state"])
    if cfg:
        ckpt["cfg"] = synthetic.cfg_yaml(variant)
    ckpt.update(extra)
    return synthetic.save(ckpt, path, legacy=legacy)


@pytest.fixture
def make_ckpt(tmp_path, registry, states):
    """Write a pycls-format checkpoint as pycls's trainer does; returns its path. ``optimizer=True``
    adds SGD momentum buffers (most of a real training checkpoint's bytes)."""

    def make(arch="b0", name=None, *, directory=None, **options):
        path = (directory or tmp_path) / (name or f"EN-{arch.upper()}_test.pyth")
        return _pycls_file(path, registry, states, arch, **options)

    return make


@pytest.fixture(scope="session")
def built(tmp_path_factory, registry, states):
    """Files built once per session and shared read-only by the tests that only read them:
    ``built.source(arch, **options)`` a pycls checkpoint, ``built.output(arch, layout, ext)`` its
    conversion (made with --verify structure: the numeric end-to-end tests convert their own)."""
    root = tmp_path_factory.mktemp("built")
    cache: dict = {}

    class Built:
        def source(self, arch="b0", **options) -> Path:
            key = ("source", arch, tuple(sorted(options.items())))
            if key not in cache:
                cache[key] = _pycls_file(root / f"EN-{arch.upper()}-{len(cache)}.pyth", registry, states, arch, **options)
            return cache[key]

        def output(self, arch="b0", layout="mmdet", ext="pth", **source_options) -> Path:
            key = ("output", arch, layout, ext, tuple(sorted(source_options.items())))
            if key not in cache:
                from ckptconv.convert import Request, convert

                out = root / f"{arch}-{layout}-{len(cache)}.{ext}"
                convert(Request(source=self.source(arch, **source_options), output=out, layout=layout, verify="structure"))
                cache[key] = out
            return cache[key]

    return Built()


@pytest.fixture(scope="session", autouse=True)
def _remove_session_dirs(tmp_path_factory):
    """Session fixtures' directories (built checkpoints, zoos) outlive pytest's retention policy,
    which empties only each test's own: remove the run's whole temp tree when it ends (the disk is shared)."""
    yield
    shutil.rmtree(tmp_path_factory.getbasetemp(), ignore_errors=True)


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


def groundtruth_recipe(shapes: dict[str, tuple[int, ...]]) -> dict:
    """The ground truth's random weights over pycls's keys in state_dict order: its own
    ``zoo.recipe_state`` (tools/groundtruth/zoo.py, numpy, seed 0), so a test rebuilds them exactly."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "tools" / "groundtruth"))
    try:
        from zoo import recipe_state
    finally:
        sys.path.pop(0)
    return recipe_state(shapes)


ONNX_DATA = REPO / "tests" / "data" / "onnx"


def groundtruth_weights(name: str) -> tuple[str, dict]:
    """(pycls's cfg dump, the final weights) of a model of tests/data/onnx (tools/groundtruth/onnx_pycls.py):
    the recipe over pycls's own state_dict rows with the measured BatchNorm statistics in place,
    checked against the ground truth's ``state_sha256``."""
    import numpy as np
    import torch

    info = json.loads((ONNX_DATA / "models.json").read_text())["models"][name]
    with np.load(ONNX_DATA / f"{name}.weights.npz", allow_pickle=False) as z:
        stats, cfg = {k: z[k] for k in z.files if not k.startswith("__")}, str(z["__cfg__"])
        assert int(z["__recipe_seed__"]) == 0, "zoo.recipe_state draws with seed 0"
        state = {**groundtruth_recipe({key: tuple(shape) for key, shape, _ in info["state_keys"]}), **stats}
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in state.values())).hexdigest()
    assert digest == info["state_sha256"], f"{name}: the rebuilt weights are not the ground truth's"
    return cfg, {k: torch.from_numpy(v) for k, v in state.items()}
