"""Tables are validated when they load: a typo or a hostile table is one TableError, never a
traceback (or a hang) later. Bounded and derandomized: the built-in tables, mutated."""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckptconv.errors import TableError
from ckptconv.model.variants import parse_variant
from ckptconv.tables import engine
from ckptconv.tables.layout import parse_layout
from ckptconv.tables.registry import Registry, builtin_dir

FUZZ = settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
LAYOUT_FILES = sorted((builtin_dir() / "effnet" / "layouts").glob("*.toml"))
VARIANT_FILES = sorted((builtin_dir() / "effnet" / "variants").glob("*.toml"))
HUB = Registry().pycls_layout("effnet")
VARIANTS = list(Registry().variants.values())

odd_values = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**12), max_value=10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.just("{nope}"), st.just("s9"), st.just("abc"), st.lists(st.integers(-3, 10**6), max_size=9),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3), st.just(10**6), st.just(math.inf),
)


def _paths(node, prefix=()):
    """Every (path, value) in a parsed TOML document, containers included."""
    yield prefix, node
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield from _paths(v, (*prefix, k))


def _mutate(doc, choice: int, value, how: int):
    doc = copy.deepcopy(doc)
    paths = [p for p, _ in _paths(doc) if p]
    path = paths[choice % len(paths)]
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if how == 0 or not isinstance(parent, dict):
        parent[path[-1]] = value
    elif how == 1:
        del parent[path[-1]]
    else:
        parent[f"{path[-1]}_typo"] = parent.pop(path[-1])
    return doc


def _use_layout(data, path: Path) -> None:
    layout = parse_layout(data, path, family="effnet")
    for variant in VARIANTS:
        engine.table_map(layout, variant)
        engine.plan(variant, layout, HUB)


def _use_variant(data, path: Path) -> None:
    variant = parse_variant(data, str(path), stem=path.stem)
    for layout in Registry().layouts_by_family["effnet"].values():
        engine.table_map(layout, variant)


@pytest.mark.parametrize("path", LAYOUT_FILES, ids=lambda p: p.stem)
@FUZZ
@given(choice=st.integers(min_value=0), value=odd_values, how=st.integers(0, 2))
def test_mutated_layout_tables_fail_only_with_table_errors(path, choice, value, how):
    doc = _mutate(tomllib.loads(path.read_text()), choice, value, how)
    try:
        _use_layout(doc, path)
    except TableError as e:
        assert "\n" not in str(e)


@pytest.mark.parametrize("path", VARIANT_FILES[:2], ids=lambda p: p.stem)
@FUZZ
@given(choice=st.integers(min_value=0), value=odd_values, how=st.integers(0, 2))
def test_mutated_variant_files_fail_only_with_table_errors(path, choice, value, how):
    doc = _mutate(tomllib.loads(path.read_text()), choice, value, how)
    try:
        _use_variant(doc, path)
    except TableError as e:
        assert "\n" not in str(e)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_table_text_fails_only_with_table_errors(tmp_path_factory, data):
    source = data.draw(st.sampled_from(LAYOUT_FILES))
    raw = bytearray(source.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    tables = tmp_path_factory.mktemp("t")
    (tables / "effnet" / "layouts").mkdir(parents=True)
    (tables / "effnet" / "layouts" / source.name).write_bytes(bytes(raw))
    try:
        registry = Registry((tables,))
        for layout in registry.layouts_by_family["effnet"].values():
            for variant in VARIANTS:
                engine.table_map(layout, variant)
    except TableError:
        pass


@pytest.mark.parametrize(
    "section, change, message",
    [
        ("levels", {"layers.4": "q9"}, "'q9' is not a pycls point"),
        ("levels", {"layers.4": "s9"}, "[levels] 'layers.4' = 's9': the table maps 7 stages"),
        ("levels", {"layers.x": "s5"}, "'layers.x' is not an output of the mmdet reference"),
        ("settings", {"eps": 1e-3}, "[settings] has unknown field(s) ['eps']"),  # BN eps is the model's (its cfg's BN.EPS)
        ("settings", {"padding": "reflect"}, "expected one of symmetric, same"),
        ("layout", {"reference": "detectron2"}, "[layout].reference is 'detectron2'"),
        ("config", {"template": "x = {nope}"}, "unknown placeholder(s) ['nope']"),
        ("config", {"out_indices": [3, 4, 40]}, "[config].out_indices has 40, but 'layers.40' is no level of [levels]"),
        ("index", {"stage_layer": [1, 2, 3]}, "[levels] 'layers.4' = 's5': the table maps 3 stages"),
    ],
)
def test_each_section_is_checked_when_the_table_loads(section, change, message):
    path = builtin_dir() / "effnet" / "layouts" / "mmdet.toml"
    doc = tomllib.loads(path.read_text())
    doc.setdefault(section, {}).update(change)
    with pytest.raises(TableError) as err:
        parse_layout(doc, path)
    assert message in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"depths": [1, 2, 2, 3, 3, 4, 10**6]}, "[en].depths.6 is 1000000; expected an integer from 1 to 64"),
        ({"se_r": math.nan}, "[en].se_r is nan"),
        ({"widths": "wide"}, "[en].widths is 'wide'; expected a list of 7"),
        ({"strides": [1, 2, 2, 2, 1, 2, 3]}, "[en].strides.6 is 3"),
    ],
)
def test_variant_numbers_are_bounded(change, message):
    path = builtin_dir() / "effnet" / "variants" / "b0.toml"
    doc = tomllib.loads(path.read_text())
    doc["en"].update(change)
    with pytest.raises(TableError) as err:
        parse_variant(doc, path)
    assert message in str(err.value)


def test_a_table_bigger_than_a_table_is_refused(tmp_path):
    (tmp_path / "effnet" / "layouts").mkdir(parents=True)
    (tmp_path / "effnet" / "layouts" / "huge.toml").write_text("x = 1\n" + "#" * (2 << 20))
    with pytest.raises(TableError, match="a table is at most"):
        _ = Registry((tmp_path,)).layouts_by_family
