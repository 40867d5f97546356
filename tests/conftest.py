"""Shared fixtures: the upstream ground truth in ../shared/fixtures, synthetic pycls checkpoints, the CLI."""

from __future__ import annotations

import json
import os
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
    """``CKPTCONV_TEST_THREADS=1`` runs the suite single-threaded (another machine's summation order)."""
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
    data = json.loads((shared / "manifests" / f"{MANIFEST[layout].format(arch)}.json").read_text())
    return [(k, tuple(s), d) for k, s, d in data["keys"]]


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
    from ckptconv.registry import Registry

    return Registry()


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
    from ckptconv import synthetic

    cache = {}

    def get(arch: str, seed: int = 0):
        if (arch, seed) not in cache:
            cache[arch, seed] = synthetic.random_state(registry.variant(arch), seed)
        return cache[arch, seed]

    return get


@pytest.fixture
def make_ckpt(tmp_path, registry, states):
    """Write a pycls-format checkpoint; returns its path. Options as synthetic.pycls_checkpoint."""
    from ckptconv import synthetic

    def make(arch="b0", name=None, *, legacy=False, ema=False, errors=None, optimizer=True, cfg=True, directory=None, **extra):
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
        path = (directory or tmp_path) / (name or f"EN-{arch.upper()}_test.pyth")
        return synthetic.save(ckpt, path, legacy=legacy)

    return make
