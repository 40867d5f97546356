"""``ckptconv.onnx``: pycls models as ONNX graphs, run in the real onnxruntime.

Expectations come from tests/data/onnx (tools/groundtruth/onnx_pycls.py ran pycls 0.1.1's own cfg,
builder, model and ``ImageNet.__getitem__``, and onnxruntime 1.32, on the CPU), never from the code
under test:
- the model: the ``cfg.dump()`` pycls wrote (``<model>.weights.npz`` ``__cfg__``);
- its weights: the README's numpy recipe over pycls's own state_dict rows (``models.json``
  ``state_keys``) with the measured BatchNorm statistics, checked against ``state_sha256``;
- what pycls computed: logits, stage means and sampled stage values for the seeded tensors, and
  logits for the 4 shipped photos and 3 derived images (``photos.json``: their recipes, and each
  decoded BGR image's sha256), with pycls's resize size, crop offset and input;
- the tolerance: the README's "Recommended tolerance" (2e-4 x max |pycls logit|, inputs 1e-3), and
  which images each wrong preprocessing changes (``drift.json`` ``per_image``).
Each model is exported once per module; every graph of it is a front composed onto that export.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'ckptconv[onnx]' (CI installs it)")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed: pip install 'ckptconv[onnx]' (CI installs it)")

import onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from ckptconv.errors import FormatError, Refused, UsageError  # noqa: E402
from ckptconv.io.png import read_rgb  # noqa: E402
from ckptconv.model import structure  # noqa: E402
from ckptconv.onnx import deploy, front, network, provenance, run  # noqa: E402
from ckptconv.options import Geometry  # noqa: E402
from ckptconv.tables.registry import registry_for  # noqa: E402

from .conftest import groundtruth_weights  # noqa: E402

DATA = Path(__file__).parent / "data" / "onnx"
PHOTOS = Path(__file__).parents[1] / "ckptconv" / "data" / "photos"
MODELS = json.loads((DATA / "models.json").read_text())["models"]
PHOTO_DATA = json.loads((DATA / "photos.json").read_text())
DRIFT = json.loads((DATA / "drift.json").read_text())["models"]
LOGITS_REL, INPUT_ABS = 2e-4, 1e-3  # README, "Recommended tolerance"
TESTED = ("b0", "regnetx_200mf", "regnety_200mf", "resnet50", "resnet50_stride1x1", "resnext50", "regnety_200mf_ft10", "regnet_custom")


# --- the ground truth's weights, images and outputs ---------------------------------------------


def weights(name: str) -> tuple[str, dict[str, torch.Tensor]]:
    """(pycls's cfg dump, the final weights): the recipe with the measured statistics in place."""
    return groundtruth_weights(name)


def bgr_image(name: str) -> np.ndarray:
    """An image of photos.json as cv2.imread gives it (H x W x 3, BGR), checked by its sha256."""
    shipped, derived = PHOTO_DATA["shipped"], PHOTO_DATA["derived"]
    source = shipped[name]["file"].rpartition("/")[2] if name in shipped else derived[name]["source"]
    a = np.ascontiguousarray(read_rgb(PHOTOS / source)[:, :, ::-1])
    for op in [] if name in shipped else derived[name]["ops"]:
        a = a[op[1][0] : op[1][1], op[2][0] : op[2][1]] if op[0] == "slice" else np.repeat(a, op[1], axis=op[2])
    a = np.ascontiguousarray(a)
    assert hashlib.sha256(a.tobytes()).hexdigest() == (shipped.get(name) or derived[name])["bgr_sha256"], name
    return a


def images(name: str) -> dict[str, np.ndarray]:
    """The 7 images of the model's sizes (the shipped photos and the derived ones), BGR."""
    info = MODELS[name]
    return {image: bgr_image(image) for image in PHOTO_DATA["sizes"][f"{info['test_im_size']}_{info['train_im_size']}"]}


def as_rgb(images: dict[str, np.ndarray]) -> list[tuple[str, torch.Tensor]]:
    """The images as the checker takes them: (name, 3 x H x W uint8 RGB)."""
    return [(n, torch.from_numpy(np.ascontiguousarray(a[:, :, ::-1].transpose(2, 0, 1)))) for n, a in images.items()]


def tensor_input(batch: int, c: int) -> np.ndarray:
    return np.random.default_rng([11, batch]).standard_normal((batch, 3, c, c)).astype(np.float32)


def within(got: np.ndarray, want: np.ndarray, rel: float = LOGITS_REL) -> float:
    """max |got - want| / max |want|, asserted within ``rel``."""
    d = float(np.abs(got.astype(np.float64) - want).max()) / float(np.abs(want).max())
    assert d <= rel, f"{d:.3g} relative, above {rel:g}"
    return d


@dataclasses.dataclass
class Exported:
    variant: object
    state: dict
    network: onnx.ModelProto  # logits and every stage output
    outputs: object  # the ground truth's npz
    stats: object

    def graph(self, input: str, order: str, pre=None) -> bytes:
        """A stamped graph of this export; ``pre``: another image preprocessing (a wrong one)."""
        d = deploy.Deploy(input=input, channel_order=order, levels=True)
        model = front.compose(front.image_front(pre, self.variant.test_size, self.variant.im_size), self.network) if pre else \
            deploy.with_front(self.network, self.variant, d, self.stats)
        return deploy.serialize(provenance.stamp(model, deploy.provenance(self.variant, d, self.stats, "model", "0" * 64)))


@pytest.fixture(scope="module")
def exported():
    cache: dict[str, Exported] = {}

    def get(name: str) -> Exported:
        if name not in cache:
            cfg, state = weights(name)
            variant = structure.named(structure.from_cfg(cfg), list(registry_for().variants.values()))
            net = network.export_network(variant, state, levels=True)
            cache[name] = Exported(variant, state, net, np.load(DATA / f"{name}.outputs.npz"), deploy.pycls_stats(variant))
        return cache[name]

    return get


def rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want).max()) / float(np.abs(want).max())


def full_input(where: str | None) -> np.ndarray | None:
    """pycls's whole input tensor where the ground truth stored one (``path:key``)."""
    if where is None:
        return None
    path, _, key = where.partition(":")
    with np.load(Path(__file__).parents[1] / path) as z:
        return z[key]


# --- the graphs compute what pycls computed --------------------------------------------------------


@pytest.mark.parametrize("name", TESTED)
def test_tensor_graph_gives_pycls_outputs(exported, name):
    """Batch 1 and 4, BGR and RGB input: pycls's logits (within the tolerance, the same top-1) and
    every stage's shape, per-channel means and sampled values."""
    e, info = exported(name), MODELS[name]
    stages, c = ["stem", *info["stages"]], info["tensor_inputs"]["C"]
    for order in ("bgr", "rgb"):
        sess = run.session(e.graph("tensor", order))
        assert [o.name for o in sess.get_outputs()] == ["logits", *stages]
        for batch in info["tensor_inputs"]["batches"]:
            x = tensor_input(batch, c)
            got = run.outputs(sess, x if order == "bgr" else np.ascontiguousarray(x[:, ::-1]))
            logits = e.outputs[f"tensor_b{batch}__logits"]
            within(got["logits"], logits)
            assert (got["logits"].argmax(1) == logits.argmax(1)).all()
            for s in stages:
                assert list(got[s].shape) == [batch, *info["tensor_inputs"]["stage_shapes"][s]], s
                values = e.outputs[f"tensor_b{batch}__{s}__values"]
                within(got[s].reshape(batch, -1)[:, e.outputs[f"stage__{s}__positions"]], values)
                means = got[s].mean((2, 3), dtype=np.float64) - e.outputs[f"tensor_b{batch}__{s}__mean"]
                assert np.abs(means).max() <= LOGITS_REL * np.abs(values).max(), s


@pytest.mark.parametrize("name", TESTED)
def test_image_graph_gives_pycls_logits(exported, name):
    """7 images (the shipped photos; one upscaled, one downscaled x3.4, one whose short side is
    already TEST.IM_SIZE) as raw BGR pixels: pycls's resize size, crop offset and input at each step,
    and its logits within the tolerance with the same top-1; as RGB pixels, the same logits."""
    e, info = exported(name), MODELS[name]
    crop, sizes = info["train_im_size"], PHOTO_DATA["sizes"][f"{info['test_im_size']}_{info['train_im_size']}"]
    bgr_graph, rgb_graph = run.session(e.graph("image", "bgr"), front.TAPS), run.session(e.graph("image", "rgb"))
    for image, bgr in images(name).items():
        got, want, logits = run.outputs(bgr_graph, bgr), sizes[image], e.outputs[f"photo__{image}__logits"]
        assert list(got[front.RESIZED].shape[-2:]) == want["resized_hw"], image
        y, x = want["crop_yx"]
        assert np.array_equal(got[front.CROPPED], got[front.RESIZED][..., y : y + crop, x : x + crop]), image
        sums = got[front.NORMALIZED][0].sum((1, 2), dtype=np.float64)
        assert np.abs(sums - want["input_channel_sums"]).max() <= INPUT_ABS * crop * crop, image
        pycls = full_input(want["full_input"])
        assert pycls is None or np.abs(got[front.NORMALIZED][0] - pycls).max() <= INPUT_ABS, image
        within(got["logits"][0], logits)
        assert got["logits"][0].argmax() == logits.argmax() == info["photos"][image]["top5"][0], image
        within(run.outputs(rgb_graph, np.ascontiguousarray(bgr[:, :, ::-1]))["logits"][0], logits)


# --- the checker: passes correct graphs, names each wrong step ---------------------------------------


@pytest.mark.parametrize("name, kind, order", [("regnet_custom", "tensor", "rgb"), ("b0", "tensor", "bgr"),
                                               ("regnet_custom", "image", "bgr"), ("regnetx_200mf", "image", "rgb")])
def test_checker_passes_correct_graphs(exported, name, kind, order):
    e = exported(name)
    data = e.graph(kind, order)
    result = run.check_tensor_graph(data, e.variant, e.state) if kind == "tensor" else \
        run.check_image_graph(data, e.variant, e.state, e.stats, as_rgb(images(name)))
    assert result.ok, result.failure
    assert all(lv.ok and lv.max_rel <= LOGITS_REL for lv in result.levels if lv.point == "logits")
    assert len([lv for lv in result.levels if lv.point == "logits"]) == (3 if kind == "tensor" else 7)


def _geometry(**steps):
    return lambda pre: dataclasses.replace(pre, geometry=Geometry(**steps))


# drift.json's wrong preprocessing variants: how a graph is built with it, and the step the check names
WRONG = {
    "channels_reversed": (lambda pre: dataclasses.replace(pre, flip=not pre.flip), "channel order"),
    "mean_std_rgb_order": (lambda pre: dataclasses.replace(pre, mean=pre.mean[::-1], std=pre.std[::-1]), "mean and std"),
    "resize_antialias_onnxruntime": (_geometry(resampler="antialias"), "resize interpolation: "),
    "crop_offset_half_to_even": (_geometry(crop="round"), "crop offset"),
    "resize_uint8": (_geometry(pixels="uint8"), "uint8 pixels"),
}


@pytest.mark.parametrize("name", ["regnetx_200mf", "regnet_custom"])
@pytest.mark.parametrize("variant", sorted(WRONG))
def test_checker_fails_each_wrong_setting_and_names_its_step(exported, name, variant):
    """A graph built with a wrong setting is off pycls's logits exactly on the images the ground truth
    says the setting changes; the check fails there naming the step, and passes on the others."""
    e, (wrong, step) = exported(name), WRONG[variant]
    changed = {i for i, r in DRIFT[name]["preprocessing"][variant]["per_image"].items() if r["input_max_abs"] > INPUT_ABS}
    data, pictures = e.graph("image", "bgr", wrong(deploy.image_preprocess("bgr", e.stats))), images(name)
    sess = run.session(data)
    off = {i for i, bgr in pictures.items() if rel(run.outputs(sess, bgr)["logits"][0], e.outputs[f"photo__{i}__logits"]) > LOGITS_REL}
    assert off == changed
    check = run.check_image_graph(data, e.variant, e.state, e.stats, [p for p in as_rgb(pictures) if p[0] in changed])
    assert not check.ok and step in check.failure, check.failure
    unchanged = [p for p in as_rgb(pictures) if p[0] not in changed]
    assert not unchanged or run.check_image_graph(data, e.variant, e.state, e.stats, unchanged).ok


def test_checker_names_a_wrong_resize_size(exported):
    e = exported("regnet_custom")
    data = e.graph("image", "bgr", _geometry(size="squash")(deploy.image_preprocess("bgr", e.stats)))
    check = run.check_image_graph(data, e.variant, e.state, e.stats)
    assert not check.ok and "resize size: the graph resizes" in check.failure and "to 184x184; pycls to" in check.failure, check.failure


def test_checker_names_a_tensor_graph_in_the_other_channel_order(exported):
    """A BGR network stamped as taking RGB: the check fails and says which order it takes."""
    e = exported("regnet_custom")
    d = deploy.Deploy(input="tensor", channel_order="rgb", levels=True)
    data = provenance.stamp(onnx.ModelProto.FromString(e.network.SerializeToString()), deploy.provenance(e.variant, d, e.stats, "model", ""))
    check = run.check_tensor_graph(data, e.variant, e.state)
    assert not check.ok and "the difference starts at stem" in check.failure and "takes BGR input, not RGB" in check.failure, check.failure


# --- provenance: stamped, read back, and a stranger's file refused -----------------------------------

PROVENANCE = provenance.Provenance(arch="regnetx_200mf", weights="ema", source_sha256="ab" * 32, channel_order="rgb", input="tensor",
                                   resize=256, crop=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def tiny(input_name: str = "input", opset: int = 19) -> onnx.ModelProto:
    """A one-node graph with a tensor graph's input and output names."""
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", 3, "height", "width"])
    graph = helper.make_graph([helper.make_node("Identity", [input_name], ["logits"])], "tiny", [x], [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def with_props(props: dict[str, str], model: onnx.ModelProto | None = None) -> bytes:
    """``model`` with ``props`` as its metadata_props, and the sha256 of its graph (as ckptconv stamps it)."""
    model = model or tiny()
    graph = hashlib.sha256(model.graph.SerializeToString(deterministic=True)).hexdigest()
    helper.set_model_props(model, {provenance.GRAPH_SHA256: graph, **props})
    return model.SerializeToString()


def refusal(data) -> str:
    with pytest.raises(FormatError) as e:
        provenance.read_provenance(data)
    message = str(e.value)
    assert "\n" not in message and len(message) < 400, message
    return message


def test_provenance_reads_back_as_stamped_and_leaves_other_keys_behind():
    model = tiny()
    helper.set_model_props(model, {"note": "x" * 100_000})
    data = provenance.stamp(model, PROVENANCE).SerializeToString()
    assert provenance.read_provenance(data) == {**dataclasses.asdict(PROVENANCE), "opset": 19, "ckptconv_version": PROVENANCE.ckptconv_version}
    assert {p.key for p in onnx.load_model_from_string(data).metadata_props} == {"note", provenance.GRAPH_SHA256, *provenance.RULES}


@pytest.mark.parametrize("key, value, words", [
    ("source_sha256", "g" * 64, "a sha256"), ("weights", "../../etc/passwd", "one of model, ema"), ("arch", "a" * 5000, "a name"),
    ("arch", "evil\x1b[31m", "a name"), ("channel_order", "BGR", "one of rgb, bgr"), ("input", "video", "one of tensor, image"),
    ("resize", "0", "a size"), ("resize", "99999", "a size"), ("crop", "2.5", "a size"), ("mean", "nan,0.4,0.5", "three numbers"),
    ("mean", "0.4,0.5", "three numbers"), ("std", "0,0.2,0.2", "std positive"), ("opset", "19 ", "an opset"),
    ("ckptconv_version", "", "a version"),
])
def test_a_malformed_field_refuses_the_file(key, value, words):
    message = refusal(with_props({**PROVENANCE.props(), key: value}))
    assert f"metadata_props {key} is" in message and words in message and "--to onnx" in message, message


def test_a_file_that_is_no_ckptconv_graph_is_refused():
    assert "not an ONNX model" in refusal(b"\x08\x07garbage" * 10)
    assert "not a ckptconv ONNX graph" in refusal(tiny().SerializeToString())
    assert "lack crop" in refusal(with_props({k: v for k, v in PROVENANCE.props().items() if k != "crop"}))
    assert "changed after ckptconv wrote it" in refusal(with_props({**PROVENANCE.props(), provenance.GRAPH_SHA256: "ab" * 32}))
    assert "graph_sha256 is 'xyz'" in refusal(with_props({**PROVENANCE.props(), provenance.GRAPH_SHA256: "xyz"}))
    assert "metadata_props" in refusal(with_props({**PROVENANCE.props(), **{f"k{i}": "" for i in range(100)}}))
    model = onnx.load_model_from_string(with_props(PROVENANCE.props()))
    model.metadata_props.add(key="arch", value="b0")
    assert "holds 'arch' twice" in refusal(model)


def test_provenance_the_graph_contradicts_is_refused():
    assert "opset is 19 but the graph imports opset 18" in refusal(with_props(PROVENANCE.props(), tiny(opset=18)))
    assert "input is image but the graph's inputs are ['input']" in refusal(with_props({**PROVENANCE.props(), "input": "image"}))
    with pytest.raises(FormatError):  # the writer holds itself to the reader
        provenance.stamp(tiny(input_name="image"), PROVENANCE)


# --- options, size, the whole call -------------------------------------------------------------------


def test_unknown_options_are_refused():
    with pytest.raises(UsageError, match="unknown ONNX input 'video'"):
        deploy.Deploy(input="video").check()
    with pytest.raises(UsageError, match="unknown --channel-order"):
        deploy.Deploy(channel_order="gbr").check()


def test_a_graph_one_file_cannot_hold_is_refused_before_export(monkeypatch):
    cfg, state = weights("regnet_custom")
    variant = structure.named(structure.from_cfg(cfg), list(registry_for().variants.values()))
    monkeypatch.setattr(network, "MAX_BYTES", 1000)
    monkeypatch.setattr(network.torch.onnx, "export", lambda *a, **k: pytest.fail("exported a graph it must refuse"))
    with pytest.raises(Refused, match="at most 2 GiB") as e:
        network.export_network(variant, state)
    assert "\n" not in str(e.value)
    with pytest.raises(Refused, match="at most 2 GiB"):
        deploy.serialize(helper.make_model(helper.make_graph([], "big", [], [], initializer=[helper.make_tensor("w", TensorProto.FLOAT, [400], [0.0] * 400)])))


def test_to_onnx_exports_composes_and_stamps(exported, monkeypatch):
    e, calls = exported("regnet_custom"), []
    monkeypatch.setattr(deploy, "export_network", lambda v, sd, levels: calls.append(levels) or e.network)
    model = deploy.to_onnx(e.variant, e.state, deploy.Deploy(input="image", channel_order="rgb"), weights="ema", source_sha256="cd" * 32)
    assert calls == [False]
    assert [(i.name, i.type.tensor_type.elem_type) for i in model.graph.input] == [("image", TensorProto.UINT8)]
    read = provenance.read_provenance(deploy.serialize(model))
    assert read == {**read, "arch": e.variant.name, "weights": "ema", "source_sha256": "cd" * 32, "input": "image", "channel_order": "rgb",
                    "resize": 184, "crop": 160, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "opset": 19}


# --- the commands: convert, verify, inspect, batch ---------------------------------------------------


@pytest.fixture(scope="module")
def custom_pyth(tmp_path_factory):
    """The custom RegNet as pycls's trainer saves it: the ground truth's weights and cfg dump."""
    cfg, state = weights("regnet_custom")
    path = tmp_path_factory.mktemp("onnx_src") / "regnet_custom.pyth"
    torch.save({"epoch": 9, "model_state": state, "cfg": cfg}, path)
    yield path
    path.unlink()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_convert_to_onnx_gives_a_graph_that_runs_photo_files_to_pycls_logits(cli, custom_pyth, tmp_path, order):
    """``convert --to onnx`` (image input, the default): onnxruntime on the ground truth's 7 images,
    fed as PIL (RGB) or cv2.imread (BGR) gives them, gives the logits pycls's own pipeline and model
    gave, with the same top-1; the file records where it came from; the printed snippet runs."""
    out, snippet = tmp_path / "m.onnx", tmp_path / "run.py"
    result = cli("convert", custom_pyth, out, "--to", "onnx", "--channel-order", order, "--config-out", snippet, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["layout"] == "onnx" and report["verification"]["ok"] and report["channel_order"] == order
    assert [c["name"] for c in report["verification"]["checks"]] == ["provenance", "onnx image graph", "graph file"]
    sess, info = run.session(out.read_bytes()), MODELS["regnet_custom"]
    for image, bgr in images("regnet_custom").items():
        pixels = bgr if order == "bgr" else np.ascontiguousarray(bgr[:, :, ::-1])
        (logits,) = sess.run(["logits"], {"image": pixels})
        within(logits[0], np.load(DATA / "regnet_custom.outputs.npz")[f"photo__{image}__logits"])
        assert logits[0].argmax() == info["photos"][image]["top5"][0], image
    read = provenance.read_provenance(out.read_bytes())
    assert read["source_sha256"] == _sha256(custom_pyth) and read["channel_order"] == order and (read["resize"], read["crop"]) == (184, 160)
    (tmp_path / "photo.jpg").write_bytes((PHOTOS / PHOTO_DATA["shipped"]["chelsea"]["file"].rpartition("/")[2]).read_bytes())
    ran = subprocess.run([sys.executable, str(snippet)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == f"[{info['photos']['chelsea']['top5'][0]}]"


def test_convert_to_onnx_tensor_input_with_stage_outputs(cli, custom_pyth, tmp_path):
    """--onnx-input tensor --levels: pycls's logits and every stage at batch 1 and 4, BGR tensors."""
    out = tmp_path / "t.onnx"
    result = cli("convert", custom_pyth, out, "--to", "onnx", "--onnx-input", "tensor", "--channel-order", "bgr", "--levels")
    assert result.exit_code == 0, result.output
    assert "verified onnx tensor graph: 3 seeded tensors" in result.stdout and "How to run the graph" in result.stdout
    info, truth = MODELS["regnet_custom"], np.load(DATA / "regnet_custom.outputs.npz")
    sess = run.session(out.read_bytes())
    assert [o.name for o in sess.get_outputs()] == ["logits", "stem", *info["stages"]]
    for batch in info["tensor_inputs"]["batches"]:
        got = run.outputs(sess, tensor_input(batch, info["tensor_inputs"]["C"]))
        within(got["logits"], truth[f"tensor_b{batch}__logits"])
        for s in info["stages"]:
            within(got[s].reshape(batch, -1)[:, truth[f"stage__{s}__positions"]], truth[f"tensor_b{batch}__{s}__values"])


def test_verify_and_inspect_read_a_graph_and_catch_what_is_wrong(cli, custom_pyth, tmp_path, states, registry):
    out = tmp_path / "m.onnx"
    assert cli("convert", custom_pyth, out, "--to", "onnx", "-q").exit_code == 0
    ok = cli("verify", out, "--source", custom_pyth)
    assert ok.exit_code == 0 and "ok onnx image graph: 4 photos as RGB pixels" in ok.stdout, ok.output
    shown = cli("inspect", out)
    assert shown.exit_code == 0 and f"source sha256 {_sha256(custom_pyth)}" in shown.stdout and "takes a photo's uint8 pixels (RGB)" in shown.stdout
    bare = cli("verify", out)
    assert bare.exit_code == 2 and "pass --source IN" in bare.stderr and len(bare.stderr.strip().splitlines()) == 1
    fed = cli("verify", out, "--source", custom_pyth, "--channel-order", "bgr")
    assert fed.exit_code == 1 and "you feed BGR, and the graph takes RGB" in fed.stderr
    other = tmp_path / "other.pyth"
    torch.save({"epoch": 1, "model_state": {k: v + 0.01 if v.is_floating_point() else v for k, v in weights("regnet_custom")[1].items()},
                "cfg": weights("regnet_custom")[0]}, other)
    wrong = cli("verify", out, "--source", other)
    assert wrong.exit_code == 1 and "source_sha256" in wrong.stderr and "not converted from this source" in wrong.stderr
    changed = onnx.load_model_from_string(out.read_bytes())
    weight = max(changed.graph.initializer, key=lambda t: len(t.raw_data))
    weight.raw_data = bytes(len(weight.raw_data))  # a convolution's weights zeroed, the metadata_props kept
    out.write_bytes(changed.SerializeToString())
    tampered = cli("verify", out, "--source", custom_pyth)
    assert tampered.exit_code != 0 and "changed after ckptconv wrote it" in tampered.stderr


@pytest.mark.parametrize("args, words", [
    (("--to", "timm"), "OUT ends in .onnx and --to is timm"),
    (("--to", "onnx", "--dtype", "fp16"), "ONNX graphs compute in float32"),
    (("--to", "onnx", "--prefix", "backbone"), "--prefix does not apply"),
    (("--to", "timm", "--levels"), "--onnx-input and --levels shape an ONNX graph"),
    (("--to", "onnx", "--hub"), "--hub writes the folder timm or transformers loads, not onnx"),
])
def test_options_that_cannot_make_a_graph_are_refused_before_anything_is_read(cli, tmp_path, args, words):
    out = tmp_path / "m.onnx"
    result = cli("convert", tmp_path / "absent.pyth", out, *args)
    assert result.exit_code == 2 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_without_the_extra_onnx_exits_2_naming_it_before_reading(cli, tmp_path, monkeypatch, custom_pyth):
    import ckptconv.onnx

    monkeypatch.setattr(ckptconv.onnx, "missing_packages", lambda: ["onnxruntime"])
    for argv in (["convert", tmp_path / "absent.pyth", tmp_path / "m.onnx", "--to", "onnx"],
                 ["batch", custom_pyth, "--out-dir", tmp_path / "out", "--to", "onnx"],
                 ["inspect", tmp_path / "absent.onnx"]):
        result = cli(*argv)
        assert result.exit_code == 2 and "pip install 'ckptconv[onnx]'" in result.stderr and "onnxruntime" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []
    every = cli("batch", custom_pyth, "--out-dir", tmp_path / "out", "--to", "all", "--verify", "structure", "--json")
    assert {f["layout"] for f in json.loads(every.stdout)["files"]} == {"mmdet", "mmdet-stages", "mmpretrain", "timm", "torchvision", "transformers"}


def test_the_docs_snippet_is_what_convert_prints_and_runs(cli, tmp_path, states, registry):
    """docs/onnx.md's snippet is what converting a zoo B0 prints (its path aside), and it runs."""
    from ckptconv.verification import synthetic

    source, out = tmp_path / "EN-B0_dds_8gpu.pyth", tmp_path / "model.onnx"
    synthetic.save({"epoch": 1, "model_state": states("b0"), "cfg": synthetic.cfg_yaml(registry.variant("b0"))}, source)
    result = cli("convert", source, out, "--to", "onnx", "--verify", "structure")
    assert result.exit_code == 0, result.output
    text = (Path(__file__).parents[1] / "docs" / "onnx.md").read_text()
    documented = text.split("```python\n", 1)[1].split("```", 1)[0]
    printed = result.stdout[result.stdout.index("# b0 as one ONNX graph") :]
    assert printed.replace(repr(str(out)), "'/abs/path/model.onnx'").strip() == documented.strip()
    (tmp_path / "photo.jpg").write_bytes((PHOTOS / "chelsea.png").read_bytes())
    ran = subprocess.run([sys.executable, "-c", printed], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and ran.stdout.startswith("["), ran.stderr


def test_a_model_whose_float32_strays_is_judged_against_float64_and_says_so(cli, tmp_path, states, registry):
    """Random BN statistics (not measured) make B3's activations grow until pycls's own float32 is
    far from the exact values on some photo: the correct graph passes, judged against float64, and
    the check says what that proves (the input the graph makes is still judged as for any model)."""
    from ckptconv.verification import synthetic

    source, out = tmp_path / "EN-B3_dds_8gpu.pyth", tmp_path / "b3.onnx"
    synthetic.save({"epoch": 1, "model_state": states("b3"), "cfg": synthetic.cfg_yaml(registry.variant("b3"))}, source)
    result = cli("convert", source, out, "--to", "onnx", "--json")
    assert result.exit_code == 0, result.output
    (check,) = [c for c in json.loads(result.stdout)["verification"]["checks"] if c["name"] == "onnx image graph"]
    assert "of the exact (float64) values" in check["detail"] and "which proves nothing finer" in check["detail"], check["detail"]
