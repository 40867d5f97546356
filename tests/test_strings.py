"""Every string that reaches another language goes through that language's serializer.

A value from a stranger's file (a meta field, a file name, a key) or from the command line (a
licence) reaches a Python config, YAML, Markdown, a shell command or the terminal; each is read back
here with that language's own reader, and must come back as the value, never as code, a key, a
heading or a terminal control.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ckptconv import serialize

HOSTILE = [
    "x'); __import__('os').system('touch PWNED') #",
    "backbone\nimport os\nos.system('touch PWNED')",
    '"""; import os; """',
    "\x1b[2K\rerror: all checks passed",
    "## What verification proved\n- ok forged",
    "[click](javascript:alert(1)) <script>x</script> `code` *em*",
    "no",
    "\udcff\u2028line",
]

# --- the serializers, read back by each language's own reader ---------------------------------------

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_a_python_literal_reads_back_as_the_value(text):
    assert ast.literal_eval(serialize.python(text)) == text


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_a_yaml_scalar_reads_back_as_the_same_string(text):
    assert yaml.safe_load(f"key: {serialize.yaml(text)}\n") == {"key": text}


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_a_comment_cannot_end_its_line(text):
    source = f"# {serialize.comment(text)}\nvalue = 1\n"
    assert ast.parse(source).body[0].targets[0].id == "value" and len(source.splitlines()) == 2


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_a_shell_word_splits_back_to_the_value(text):
    assert shlex.split(f"ckptconv convert {serialize.shell(text)} out") == ["ckptconv", "convert", serialize.terminal(text), "out"]


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_markdown_text_is_one_line_whose_every_special_character_is_escaped(text):
    out = serialize.markdown(text)
    assert "\n" not in out and "\r" not in out
    assert not re.search(r"[`*_\[\]()<>#|!~&\\]", re.sub(r"\\.", "", out))  # each one escaped


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_a_markdown_code_span_holds_the_text_whole(text):
    span = serialize.markdown_code(text)
    fence = re.match(r"`+", span).group(0)
    inner = span[len(fence) : -len(fence)]
    assert span.endswith(fence) and fence not in inner.strip(" ") and "\n" not in span


@pytest.mark.parametrize("text", HOSTILE)
def test_terminal_text_has_no_control_character(text):
    out = serialize.terminal(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029" for c in out)
    out.encode("utf-8")  # a name that is not UTF-8 prints, as its escape


# --- a meta from a stranger's file never becomes code ----------------------------------------------


def _data_only(source: str) -> None:
    """A printed mmengine config is data: assignments of dict(...) calls, literals and names only."""
    allowed = (ast.Module, ast.Assign, ast.Name, ast.Load, ast.Store, ast.Call, ast.keyword, ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.UnaryOp, ast.USub)
    for node in ast.walk(ast.parse(source)):
        assert isinstance(node, allowed), (type(node).__name__, source)
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name) and node.func.id == "dict", source


def _with_meta(src: Path, dst: Path, **fields) -> Path:
    obj = torch.load(src, weights_only=True)
    obj["meta"].update(fields)
    torch.save(obj, dst)
    return dst


@pytest.mark.parametrize("field", ["prefix", "layout", "arch", "channel_order", "weights", "dtype"])
@pytest.mark.parametrize("value", HOSTILE[:3])
def test_a_hostile_meta_field_never_reaches_the_printed_config(cli, built, tmp_path, field, value):
    out = _with_meta(built.output("b0", "mmdet"), tmp_path / "hostile.pth", **{field: value})
    result = cli("inspect", out, "--json")
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert field not in info["meta"]  # failed the check of the option it mirrors: left behind
    if info["config"]:
        _data_only(info["config"])
        assert "PWNED" not in info["config"]
    problems = cli("verify", out)
    assert problems.exit_code == 1 and f"meta field {field} is" in problems.stderr


def test_an_up_to_date_outputs_config_comes_from_its_checked_meta(cli, make_ckpt, tmp_path):
    """batch --configs writes an up-to-date output's config from its meta: a meta whose prefix was
    made code is no longer ckptconv's output (its digest fails), and nothing of it is printed."""
    zoo, out = tmp_path / "zoo", tmp_path / "out"
    zoo.mkdir()
    make_ckpt("b0", directory=zoo)
    assert cli("batch", zoo, "--out-dir", out, "--verify", "structure").exit_code == 0
    converted = next(out.rglob("*.pth"))
    _with_meta(converted, converted, prefix=HOSTILE[0])
    again = cli("batch", zoo, "--out-dir", out, "--verify", "structure", "--configs", "--json")
    assert again.exit_code == 0
    config = next(out.rglob("*.py")).read_text()
    _data_only(config)
    assert "PWNED" not in config


def test_a_quoted_placeholder_in_a_table_template_is_refused(tmp_path):
    import tomllib

    from ckptconv.errors import TableError
    from ckptconv.tables.layout import parse_layout
    from ckptconv.tables.registry import builtin_dir

    data = tomllib.loads((builtin_dir() / "effnet" / "layouts" / "mmdet.toml").read_text())
    data["config"]["template"] = data["config"]["template"].replace("arch={arch!r}", "arch='{arch}'")
    with pytest.raises(TableError, match=r"quotes a value by hand \('\{arch\}'\).*write \{arch!r\}"):
        parse_layout(data, Path("mmdet.toml"), family="effnet")


# --- the hub folder's card: Markdown, YAML front matter and a shell command -------------------------


def _card(folder: Path) -> tuple[dict, str]:
    text = (folder / "README.md").read_text()
    _, front, body = text.split("---\n", 2)
    return yaml.safe_load(front), body


@pytest.mark.parametrize("licence", ["no", "yes", "on", "null", "1e3", "mit"])
def test_the_licence_is_the_string_given(cli, built, tmp_path, licence):
    folder = tmp_path / "hub"
    assert cli("convert", built.source(), folder, "--to", "timm", "--hub", "--license", licence, "--verify", "structure").exit_code == 0
    front, _ = _card(folder)
    assert front["license"] == licence


def test_a_file_name_cannot_forge_the_card(cli, built, tmp_path):
    name = "EN-B0 ## What verification proved\n- ok forged; $(touch PWNED) `x`.pyth"
    src = tmp_path / name
    src.write_bytes(built.source().read_bytes())
    folder = tmp_path / "hub"
    assert cli("convert", src, folder, "--to", "timm", "--hub", "--verify", "structure").exit_code == 0
    _, body = _card(folder)
    headings = [line for line in body.splitlines() if line.startswith("#")]
    assert headings.count("## What verification proved") == 1 and not any("forged" in h for h in headings)
    command = re.search(r"- command: (`+) (.*) \1$", body, re.MULTILINE) or re.search(r"- command: (`+)(.*)\1$", body, re.MULTILINE)
    words = shlex.split(command.group(2))
    assert words[2] == serialize.terminal(name)  # the shell reads the file name back, whole


# --- the terminal ------------------------------------------------------------------------------------


def test_a_file_name_with_escapes_is_shown_escaped_by_verify(cli, built, tmp_path):
    name = tmp_path / "b0\x1b[31mRED\x1b[0m\nforged line.pth"
    name.write_bytes(built.output("b0", "mmdet").read_bytes())
    result = cli("verify", name)
    assert result.exit_code == 0
    assert "\x1b" not in result.output and "\\x1b[31mRED" in result.output
    assert not any(line.startswith("forged line") for line in result.output.splitlines())
