"""Every code block of README.md and docs/ is run as written by a test, or says why it is not: a
block a user copies is a promise. New blocks fail test_every_docs_block_is_run_or_says_why_not
until they are given a test (here or elsewhere) or a reason."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
INSTALL = "not run: the install commands; .ci/run runs them on a clean clone, then the suite"
# (document, the block's first line) -> the test that runs it, or "not run: why"
COVERED = {
    ("README.md", "pip install torch==2.13.0 && pip install ."): INSTALL,
    ("README.md", "pip install torch==2.13.0 && pip install . && ckptconv demo"): "test_first_hour.py::test_the_readme_quickstart_runs_as_written_twice",
    ("README.md", "ckptconv pycls2mmdet EN-B3_dds_8gpu.pyth effnet-b3_mmdet.pth --config-out effnet_b3.py  # arch detected: b3"):
        "test_docs.py::test_the_readme_commands_on_your_own_checkpoints",
    ("README.md", "# For pycls EfficientNet-B3 weights converted by ckptconv 0.1.0; they take RGB input."): "test_first_hour.py::test_the_readme_config_is_what_a_user_sees",
    ("README.md", "pip install torch==2.13.0 && pip install '.[test]' && python -m pytest -q"): INSTALL,
    ("docs/api.md", "import ckptconv"): "test_docs.py::test_the_api_example",
    ("docs/ci.md", "# .github/workflows/checkpoints.yml"): "test_first_hour.py::test_the_ci_recipe_passes_a_directory_of_mixed_targets",
    ("docs/ci.md", "      - run: ckptconv batch pycls-zoo/ --to all --out-dir checkpoints/ --report checkpoints/report.json"): "test_docs.py::test_the_zoo_commands",
    ("docs/ci.md", "      - run: pip install torch==2.13.0 && pip install 'ckptconv[mmengine]'"):
        "not run: it verifies the user's own detector config; verify --config over mmdet's stock configs is "
        "test_mmengine.py::test_verify_config_passes_the_effnet_fragment_over_mmdets_own_effnet_config",
    ("docs/ci.md", "# .pre-commit-config.yaml"): "test_docs.py::test_the_pre_commit_hook",
    ("docs/commands.md", '# zoo.toml (or zoo.json: {"checkpoints": [{"source": ..., ...}]}); relative sources are relative to it'):
        "test_first_hour.py::test_the_docs_batch_manifest_runs_as_written",
    ("docs/commands.md", "ckptconv batch pycls-zoo/ --to all --out-dir converted/ --report converted/report.json"): "test_docs.py::test_the_zoo_commands",
    ("docs/commands.md", "#SBATCH --array=1-8"): "test_docs.py::test_the_slurm_array_and_its_merge",
    ("docs/configs.md", "# timm model for pycls EfficientNet-B3 weights converted by ckptconv 0.1.0; they take RGB input."):
        "test_first_hour.py::test_the_readme_config_is_what_a_user_sees",
    ("docs/configs.md", "# torchvision model for pycls RegNetY-800MF weights converted by ckptconv 0.1.0; they take RGB input."):
        "test_first_hour.py::test_the_readme_config_is_what_a_user_sees",
    ("docs/configs.md", "from mmengine.runner import CheckpointLoader"): "test_docs.py::test_the_safetensors_scheme",
    ("docs/configs.md", "_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']  # or a path: ['./my_detector.py']"):
        "not run: mmdet is not installed where the suite runs; every fragment as a child of each stock config is "
        "test_mmengine.py::test_every_printed_fragment_merges_as_a_child_of_each_stock_config_of_its_family",
    ("docs/configs.md", "custom_imports = dict(imports=['ckptconv.mmengine'], allow_failed_imports=False)"):
        "test_mmengine.py::test_the_docs_convert_on_load_lines_replace_the_stock_init_cfg",
    ("docs/development.md", "pip install torch==2.13.0 && pip install . && ckptconv demo"): "test_first_hour.py::test_the_readme_quickstart_runs_as_written_twice",
    ("docs/development.md", "pip install torch==2.13.0 && pip install '.[test]' && python -m pytest -q"): INSTALL,
    ("docs/tables.md", "[mapping]"): "test_docs.py::test_the_table_excerpt_is_the_table",
    ("docs/onnx.md", "pip install 'ckptconv[onnx]'   # onnx, onnxscript (torch's exporter needs it), onnxruntime"): INSTALL,
    ("docs/storage.md", "pip install 'ckptconv[s3]'   # fsspec and s3fs"): INSTALL,
    ("docs/onnx.md", "# b0 as one ONNX graph (opset 19), pycls's logits from onnxruntime."):
        "test_onnx.py::test_the_docs_snippet_is_what_convert_prints_and_runs",
    ("docs/onnx.md", "ckptconv verify model.onnx --source IN.pyth   # provenance + the same runs in onnxruntime"):
        "test_onnx.py::test_verify_and_inspect_read_a_graph_and_catch_what_is_wrong",
}


def blocks() -> list[tuple[str, str, str]]:
    """(document, language, text) of every fenced code block of README.md and docs/*.md."""
    out = []
    for doc in ["README.md", *sorted(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md"))]:
        for m in re.finditer(r"^```(\w+)\n(.*?)^```", (REPO / doc).read_text(), re.MULTILINE | re.DOTALL):
            out.append((doc, m.group(1), m.group(2)))
    return out


def block(doc: str, first: str) -> str:
    (text,) = [t for d, _, t in blocks() if d == doc and t.splitlines()[0] == first]
    return text


def test_every_docs_block_is_run_or_says_why_not():
    found = {(doc, text.splitlines()[0]) for doc, _, text in blocks()}
    assert found - set(COVERED) == set(), "a docs block with no test: run it in a test and add it to COVERED"
    assert set(COVERED) - found == set(), "COVERED names a block the docs no longer have"
    for where in COVERED.values():
        if not where.startswith("not run: "):
            file, name = where.split("::")
            assert f"def {name}(" in (TESTS / file).read_text(), where


def _commands(text: str) -> list[tuple[str, str]]:
    """(command, comment) of each ``ckptconv`` line of a bash block."""
    out = []
    for line in text.splitlines():
        command, _, comment = line.partition("#")
        if command.strip().startswith("ckptconv "):
            out.append((command.strip(), comment.strip()))
    return out


def _run(line: str, env: dict[str, str] | None = None) -> int:
    """A ``ckptconv ...`` line through the CLI in this process, as a shell would split it."""
    from click.testing import CliRunner

    from ckptconv.cli import main

    result = CliRunner().invoke(main, shlex.split(line)[1:], env=env, catch_exceptions=False)
    return result.exit_code


def test_the_readme_commands_on_your_own_checkpoints(built, tmp_path, monkeypatch):
    """Each line, as written and in order, exits as its comment says: 0, or 1 where it says FAILS."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(built.source("b3"), tmp_path / "EN-B3_dds_8gpu.pyth")
    lines = _commands(block("README.md", "ckptconv pycls2mmdet EN-B3_dds_8gpu.pyth effnet-b3_mmdet.pth --config-out effnet_b3.py  # arch detected: b3"))
    assert len(lines) == 3
    for command, comment in lines:
        assert _run(command) == (1 if "FAILS, exit 1" in comment else 0), command
    assert (tmp_path / "effnet_b3.py").is_file()


def test_the_api_example(built, registry, tmp_path, monkeypatch):
    """docs/api.md's example, executed, with ``backbone`` mmdet's EfficientNet-B3 (ckptconv's plain
    torch reference of it, built independently of the tables)."""
    from ckptconv.verification import models

    monkeypatch.chdir(tmp_path)
    shutil.copy(built.source("b3"), tmp_path / "EN-B3_dds_8gpu.pyth")
    shutil.copy(built.source("regnety_800mf"), tmp_path / "RegNetY-800MF_dds_8gpu.pyth")
    scope = {"backbone": models.build("mmdet", registry.variant("b3"), models.Build(device="cpu", out_indices=(3, 4, 5)))}
    exec(block("docs/api.md", "import ckptconv"), scope)  # noqa: S102 - our own docs
    assert scope["report"].ok and scope["converted"].arch == "b3" and "type='EfficientNet'" in scope["converted"].config
    assert (tmp_path / "regnety-800mf_timm.pth").is_file() and scope["info"]["path"].endswith("RegNetY-800MF_dds_8gpu.pyth")


def test_the_zoo_commands(built, tmp_path, monkeypatch):
    """docs/commands.md's zoo batch and docs/ci.md's batch-then-verify steps, as written, on a zoo."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pycls-zoo").mkdir()
    shutil.copy(built.source("b0"), tmp_path / "pycls-zoo" / "EN-B0_dds_8gpu.pyth")
    ((zoo_line, _),) = _commands(block("docs/commands.md", "ckptconv batch pycls-zoo/ --to all --out-dir converted/ --report converted/report.json"))
    assert _run(zoo_line) == 0 and json.loads((tmp_path / "converted" / "report.json").read_text())["ok"]
    steps = [ln.split("run: ", 1)[1] for ln in block("docs/ci.md", "      - run: ckptconv batch pycls-zoo/ --to all --out-dir checkpoints/ --report checkpoints/report.json").splitlines()]
    assert [_run(step) for step in steps] == [0, 0] and json.loads((tmp_path / "verify-report.json").read_text())["ok"]


def test_the_slurm_array_and_its_merge(built, tmp_path, monkeypatch):
    """The #SBATCH block: its batch line run as each of the 8 array tasks (SLURM's variables set as
    Slurm sets them), then its merge line: one complete report."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep").mkdir()
    for i, arch in enumerate(("b0", "regnetx_200mf")):
        shutil.copy(built.source(arch), tmp_path / "sweep" / f"run{i}.pyth")
    text = block("docs/commands.md", "#SBATCH --array=1-8")
    assert "--array=1-8" in text
    batch_line = next(ln for ln in text.splitlines() if ln.startswith("ckptconv batch"))
    merge_line = text.split("# then, once: ", 1)[1].splitlines()[0]
    for task in range(1, 9):
        env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "1"}
        assert _run(os.path.expandvars(batch_line.replace("$SLURM_ARRAY_TASK_ID", str(task))), env=env) == 0
    reports = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "converted").glob("report-*.json"))
    assert len(reports) == 8
    assert _run(merge_line.replace("converted/report-*.json", " ".join(reports))) == 0
    merged = json.loads((tmp_path / "converted" / "report.json").read_text())
    assert merged["ok"] and len(merged["files"]) == 2


def test_the_pre_commit_hook(built, tmp_path):
    """docs/ci.md's hook: its files pattern picks converted checkpoints (not pycls's .pyth), and its
    entry, given them as pre-commit gives files, passes good ones and fails one with a key missing."""
    import torch

    hook = yaml.safe_load(block("docs/ci.md", "# .pre-commit-config.yaml"))["repos"][0]["hooks"][0]
    pattern = re.compile(hook["files"])
    assert pattern.search("a/b0_mmdet.pth") and pattern.search("x.safetensors") and not pattern.search("EN-B0_dds_8gpu.pyth")
    good = built.output("b0", "mmdet")
    assert _run(f"{hook['entry']} {good} {built.output('b0', 'timm', 'safetensors')}") == 0
    bad = tmp_path / "bad.pth"
    ckpt = torch.load(good, weights_only=True)
    del ckpt["state_dict"]["layers.0.bn.running_var"]
    torch.save(ckpt, bad)
    assert _run(f"{hook['entry']} {bad}") == 1


def test_the_safetensors_scheme(built, tmp_path):
    """docs/configs.md's scheme for an older torch, registered as written, loads a converted
    safetensors file with every tensor."""
    from mmengine.runner import CheckpointLoader
    from safetensors.torch import load_file

    exec(block("docs/configs.md", "from mmengine.runner import CheckpointLoader"), {})  # noqa: S102 - our own docs
    path = built.output("b0", "mmdet", "safetensors")
    loaded = CheckpointLoader.load_checkpoint(f"safetensors://{path}")
    assert set(loaded["state_dict"]) == set(load_file(str(path)))


def test_the_table_excerpt_is_the_table():
    """docs/tables.md's rules are lines of the table they come from (the mmdet EfficientNet layout)."""
    table = (REPO / "mappings" / "effnet" / "layouts" / "mmdet.toml").read_text()
    lines = [ln.strip() for ln in block("docs/tables.md", "[mapping]").splitlines() if ln.strip() and ln.strip() not in ("...", "]")]
    assert lines and all(" ".join(ln.split()) in " ".join(table.split()) for ln in lines), [ln for ln in lines if " ".join(ln.split()) not in " ".join(table.split())]


def _commands_of(group, prefix=""):
    import click

    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands_of(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def test_every_option_of_every_command_is_in_the_command_reference():
    """docs/commands.md names every command and every option each takes (click's own list of them)."""
    import click

    from ckptconv.cli import main

    text = (REPO / "docs" / "commands.md").read_text()
    missing = []
    for name, command in _commands_of(main):
        if f"ckptconv {name}" not in text:
            missing.append(f"ckptconv {name}")
        for param in command.params:
            if isinstance(param, click.Option):
                names = [o for o in param.opts + param.secondary_opts if o.startswith("--") and o != "--help"]
                if names and not any(f"`{o}" in text for o in names):
                    missing.append(f"ckptconv {name} {names[0]}")
    assert missing == []


def _documented_sections(heading: str) -> dict[str, set[str] | None]:
    """docs/tables.md's table after ``heading``: section -> its keys column (None: any key)."""
    text = (REPO / "docs/tables.md").read_text()
    rows = text[text.index(heading) :].split("\n\n")[1].splitlines()[2:]
    out = {}
    for row in rows:
        section, keys = (cell.strip() for cell in row.strip("|").split("|")[:2])
        out[section.strip("`")] = None if keys == "any" else set(re.findall(r"`([a-z_0-9]+)`", keys))
    return out


def _doc_name(where: str) -> str:
    """A parser's place as tables.md names the section: rules[3] -> rules, [[refuse]] 2 -> [[refuse]],
    [pipeline].stock -> [pipeline.stock], [libraries].timm -> [libraries.<library>]."""
    where = re.sub(r"\[\d+\]$| \d+$", "", where)
    where = re.sub(r"^\[libraries\]\..*", "[libraries.<library>]", where)
    return re.sub(r"^\[([a-z_]+)\]\.([a-z_]+)$", r"[\1.\2]", where)


def _accepted_keys(parse, files) -> dict[str, set[str]]:
    """The keys the parser declares per section (``Fields.only``) while it reads ``files``."""
    import tomllib

    from ckptconv.fields import Fields

    seen: dict[str, set[str]] = {}
    real = Fields.only

    def only(self, allowed):
        seen.setdefault(_doc_name(self.where), set()).update(allowed)
        return real(self, allowed)

    Fields.only = only
    try:
        for path in files:
            parse(tomllib.loads(path.read_text()), path)
    finally:
        Fields.only = real
    return seen


def test_tables_md_documents_exactly_the_sections_and_keys_the_parser_accepts():
    """Docs that no test reads drift: tables.md once documented a [verify] section and an eps
    under [settings] that the parser refuses. Its keys columns are held to the keys the parser
    takes while reading every built-in table and variant file, and its sections to those."""
    from ckptconv.model.variants import parse_variant
    from ckptconv.tables.layout import parse_layout

    mappings = REPO / "mappings"
    layouts = _accepted_keys(lambda data, p: parse_layout(data, p, "", p.parts[-3]), sorted(mappings.glob("*/layouts/*.toml")))
    variants = _accepted_keys(lambda data, p: parse_variant(data, str(p)), sorted(mappings.glob("*/variants/*.toml")))
    for heading, accepted in (("A layout table's sections", layouts), ("A variant file's sections:", variants)):
        documented = _documented_sections(heading)
        assert {re.match(r"\[+([a-z_]+)", s).group(1) for s in documented} == accepted.pop(""), heading  # the file's sections
        assert {s: k for s, k in documented.items() if k is not None} == accepted, heading
        assert not {s for s, k in documented.items() if k is None} & set(accepted), heading  # free-form: any key
