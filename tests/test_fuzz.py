"""Random and mutated bytes never escape as anything but ckptconv's own error type.

Bounded so the suite stays fast and repeatable: 150 random files, 150 mutated zip and 150 mutated
legacy checkpoints through the loader, 40 mutated b0 checkpoints through a whole conversion (490 cases,
derandomized).
"""

from __future__ import annotations

import io

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckptconv.convert import Request, convert
from ckptconv.errors import CkptError
from ckptconv.io.checkpoint import Checkpoint, load

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def _small(legacy: bool) -> bytes:
    buf = io.BytesIO()
    obj = {"epoch": 1, "model_state": {"stem.conv.weight": torch.arange(54.0).reshape(2, 3, 3, 3), "stem.bn.num_batches_tracked": torch.tensor(5)}, "cfg": "EN:\n  STEM_W: 32\n"}
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


SMALL_ZIP, SMALL_LEGACY = _small(False), _small(True)

mutations = st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)), min_size=1, max_size=4)


def mutate(raw: bytes, flips, cut) -> bytes:
    data = bytearray(raw)
    for offset, xor in flips:
        data[offset % len(data)] ^= xor
    return bytes(data[: cut % (len(data) + 1)] if cut is not None else data)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _load_or_ckpt_error(path) -> None:
    try:
        result = load(path)
    except CkptError:
        return
    assert isinstance(result, Checkpoint)
    try:  # a loaded file may still be corrupt in its tensors: that too is our error, or nothing
        for name, sd in result.weight_sets.items():
            result.verify_tensors(name, list(sd))
    except CkptError:
        pass


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes(scratch, data):
    path = scratch / "random.pth"
    path.write_bytes(data)
    _load_or_ckpt_error(path)


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@FUZZ
@given(flips=mutations, cut=st.none() | st.integers(min_value=0))
def test_mutated_checkpoint(scratch, fmt, flips, cut):
    path = scratch / f"{fmt}.pth"
    path.write_bytes(mutate(SMALL_ZIP if fmt == "zip" else SMALL_LEGACY, flips, cut))
    _load_or_ckpt_error(path)


@pytest.fixture(scope="module")
def b0_bytes(registry):
    from ckptconv.verification import synthetic

    buf = io.BytesIO()
    torch.save(synthetic.pycls_checkpoint(registry.variant("b0"), optimizer=False), buf)
    return buf.getvalue()


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(flips=mutations, cut=st.none() | st.integers(min_value=0))
def test_mutated_real_checkpoint_through_convert(scratch, b0_bytes, flips, cut):
    """A whole b0 checkpoint, mutated, converted with verification: converts or fails cleanly."""
    src, out = scratch / "b0.pyth", scratch / "b0.pth"
    src.write_bytes(mutate(b0_bytes, flips, cut))
    out.unlink(missing_ok=True)
    try:
        convert(Request(source=src, output=out, verify="structure"))
    except CkptError:
        assert not out.exists()
    assert not list(scratch.glob(".ckptconv-tmp-*"))
