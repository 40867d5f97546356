"""Lean by behaviour, not by timing: what a conversion reads, maps and keeps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
from pathlib import Path
from ckptconv.io import files
from ckptconv.convert import Request, convert

src, out, mode = sys.argv[1:4]
seen = {}
commit = files.PendingWrite.commit

def probe(self, **kw):
    # while the checkpoint is still mapped: how much of its mapping is resident in this process?
    rss, inside = 0, False
    for line in open("/proc/self/smaps"):
        if line[0] in "0123456789abcdef" and "-" in line.split()[0]:
            inside = line.rstrip().endswith(src)
        elif inside and line.startswith("Rss:"):
            rss += int(line.split()[1]) * 1024
    seen["mapped_resident"] = rss
    return commit(self, **kw)

files.PendingWrite.commit = probe
convert(Request(source=Path(src), output=Path(out), verify=mode))
print(json.dumps(seen))
"""


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc/self/smaps to see resident pages")
@pytest.mark.parametrize("mode", ["structure", "numeric"])
def test_unconverted_tensors_are_never_read_into_memory(make_ckpt, states, tmp_path, mode):
    """A training checkpoint is mostly optimizer state and a second weight set: memory-mapped
    loading never pages them in. Structural conversion pages in nothing at all (tensors go file
    to file); numeric verification pages in the weights it runs, and only those."""
    src = make_ckpt("b2", ema=True, optimizer=True)  # model + EMA + SGD momentum: three times the weights
    weights = sum(t.numel() * t.element_size() for t in states("b2").values())
    assert src.stat().st_size > 2.8 * weights
    run = subprocess.run([sys.executable, "-c", PROBE, str(src), str(tmp_path / "o.pth"), mode], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    resident = json.loads(run.stdout)["mapped_resident"]
    if mode == "structure":
        assert resident < 0.02 * weights
    else:
        assert resident < 1.1 * weights


def test_verification_models_are_not_initialised(registry, monkeypatch):
    """Reference models are built on the meta device and take the weights by assignment."""
    import torch

    from ckptconv.verification import models, synthetic

    sd = synthetic.random_state(registry.variant("b0"))
    calls = []
    for name in ("kaiming_uniform_", "uniform_", "normal_"):
        monkeypatch.setattr(torch.nn.init, name, lambda t, *a, **k: calls.append(t.shape))
    model = models.pycls_model(registry.variant("b0"), sd)
    assert calls == []  # no initialiser ran: no memory, no random numbers
    assert all(not p.is_meta for p in model.parameters())
    assert model.stem.conv.weight.data_ptr() == sd["stem.conv.weight"].data_ptr()  # assigned, not copied


@pytest.mark.parametrize("arch", ["b0", "b2"])
def test_each_tensor_knows_its_own_record(make_ckpt, arch):
    """An EMA set shaped exactly like the model repeats every record size; the record of each
    tensor of either set comes from data.pkl itself, so a conversion copies the right set."""
    import zlib

    import torch

    from ckptconv.io.checkpoint import load

    ckpt = load(make_ckpt(arch, ema=True))
    for name in ("model", "ema"):
        sd = ckpt.weight_sets[name]
        spans = ckpt.spans(name)
        assert set(spans) == set(sd)
        for key, t in sd.items():
            data = t.contiguous().reshape(-1).view(torch.uint8).numpy()
            assert spans[key].crc == zlib.crc32(data)
