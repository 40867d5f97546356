"""The README's quickstart, as a user runs it: demo, then verify with the right and the wrong config."""

from __future__ import annotations

import os


def test_quickstart_demo_then_verify(cli, tmp_path):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = cli("demo")
        assert result.exit_code == 0, result.output
        files = sorted(p.name for p in (tmp_path / "demo").iterdir())
        assert files == ["EN-B0_demo.pyth", "EN-B0_demo_mmdet.pth", "EN-B0_demo_mmdet_config.py"]
        assert "conv_cfg=dict(type='Conv2d')" in (tmp_path / "demo" / "EN-B0_demo_mmdet_config.py").read_text()
        assert "bit for bit" in result.stdout
        out = "demo/EN-B0_demo_mmdet.pth"
        assert cli("verify", out, "--source", "demo/EN-B0_demo.pyth").exit_code == 0
        wrong = cli("verify", out, "--padding", "same", "--eps", "1e-3")
        assert wrong.exit_code == 1 and "conv_cfg=dict(type='Conv2d')" in wrong.stderr
        again = cli("demo")  # the quickstart succeeds every time it is run
        assert again.exit_code == 0, again.output
        assert "kept demo/EN-B0_demo.pyth" in again.stdout
        assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == files
        (tmp_path / "demo" / "EN-B0_demo_mmdet_config.py").write_text("model = dict()  # the user's own config\n")
        foreign = cli("demo")
        assert foreign.exit_code == 2 and "was not made by the demo" in foreign.stderr
        assert (tmp_path / "demo" / "EN-B0_demo_mmdet_config.py").read_text().startswith("model = dict()")
        assert cli("demo", "--force", "--arch", "b1", "--layout", "mmdet-stages").exit_code == 0
        assert (tmp_path / "demo" / "EN-B1_demo_mmdet-stages.pth").exists()
    finally:
        os.chdir(cwd)
