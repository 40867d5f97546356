"""``verify --in-library``: the converted file loaded in the library installed, as its users load it,
and held to pycls on photos.

Expectations come from outside the code under test:
- the weights and what pycls 0.1.1 computed on the shipped photos (tests/data/onnx: the ground
  truth's recipe with measured BatchNorm statistics, and pycls's own logits per photo), so a
  labelled folder whose classes are pycls's top-1 gives pycls's accuracy of 100% by construction;
- the libraries themselves: the real timm, torchvision, mmdet, mmpretrain, transformers and
  onnxruntime, at the versions the ground truth pins, in their own environment
  (``CKPTCONV_LIBRARIES_PYTHON``: .ci/run makes it from tools/groundtruth/requirements/gt*.txt),
  where ckptconv runs from this checkout (tests/helpers/in_library_main.py);
- the wrong settings: a printed snippet or config changed by hand in one known way each.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from .conftest import ONNX_DATA, REPO, groundtruth_weights, only_error_line

PHOTOS = REPO / "ckptconv" / "data" / "photos"
SHIPPED = sorted(p.stem for p in PHOTOS.glob("*.png"))
LIBRARIES_PYTHON = os.environ.get("CKPTCONV_LIBRARIES_PYTHON")
NO_LIBRARIES = ("the libraries' environment is not set up (CKPTCONV_LIBRARIES_PYTHON: a Python with the ground truth's pins, "
                "tools/groundtruth/requirements/gt*.txt; .ci/run makes it)")


def pycls_top1(name: str) -> dict[str, int]:
    """pycls 0.1.1's top-1 class of each shipped photo (the ground truth's logits)."""
    with np.load(ONNX_DATA / f"{name}.outputs.npz") as z:
        return {photo: int(z[f"photo__{photo}__logits"].argmax()) for photo in SHIPPED}


@pytest.fixture(scope="module")
def gt(tmp_path_factory):
    """name -> a pycls checkpoint of the ground truth's weights, as pycls's trainer writes one."""
    root, made = tmp_path_factory.mktemp("gt"), {}

    def get(name: str) -> Path:
        if name not in made:
            cfg, state = groundtruth_weights(name)
            made[name] = root / f"{name}.pyth"
            torch.save({"epoch": 0, "model_state": state, "cfg": cfg, "test_err": 23.5, "ema_err": 24.0}, made[name])
        return made[name]

    yield get
    import shutil

    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """The shipped photos in class folders named after pycls's top-1 for RegNetX-200MF, and a labels
    file naming all 1000 classes: pycls's accuracy on it is 100%, top-1 and top-5."""
    root = tmp_path_factory.mktemp("labelled")
    names = [f"class_{i:04d}" for i in range(1000)]
    for photo, cls in pycls_top1("regnetx_200mf").items():
        (root / "images" / names[cls]).mkdir(parents=True, exist_ok=True)
        (root / "images" / names[cls] / f"{photo}.png").write_bytes((PHOTOS / f"{photo}.png").read_bytes())
    (root / "labels.txt").write_text("\n".join(names) + "\n")
    yield root / "images", root / "labels.txt"
    import shutil

    shutil.rmtree(root, ignore_errors=True)


def convert(cli, src: Path, out: Path, to: str, *args) -> str:
    """Convert and return the printed code or config."""
    result = cli("convert", src, out, "--to", to, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout).get("config") or ""


# --- what needs no library: usage, the "not checked" result, the steps named -------------------


@pytest.mark.parametrize("args, words", [
    (["--images", "IMAGES"], "--images goes with --in-library"),
    (["--in-library", "--labels", "LABELS"], "--labels names the classes of --images DIR"),
    (["--in-library", "--images", "EMPTY"], "no images"),
    (["--in-library", "--images", "IMAGES", "--labels", "SHORT"], "is not in --labels"),
    (["--in-library", "--images", "LABELS"], "not a folder"),
])
def test_bad_image_options_exit_2_before_anything_runs(cli, tmp_path, states, args, words):
    (tmp_path / "images" / "cat").mkdir(parents=True)
    (tmp_path / "images" / "cat" / "a.png").write_bytes((PHOTOS / "chelsea.png").read_bytes())
    (tmp_path / "empty").mkdir()
    (tmp_path / "labels.txt").write_text("dog\n")
    paths = {"IMAGES": tmp_path / "images", "EMPTY": tmp_path / "empty", "LABELS": tmp_path / "labels.txt", "SHORT": tmp_path / "labels.txt"}
    listing = sorted(p.name for p in tmp_path.rglob("*"))
    result = cli("verify", tmp_path / "missing.pth", *[paths.get(a, a) for a in args])
    assert result.exit_code == 2
    assert words in only_error_line(result)
    assert sorted(p.name for p in tmp_path.rglob("*")) == listing


def test_a_library_not_installed_is_not_checked_never_passed_and_exits_3(cli, gt, tmp_path, monkeypatch):
    convert(cli, gt("regnetx_200mf"), tmp_path / "rx.pth", "timm")
    monkeypatch.setattr("ckptconv.inlibrary.installed", lambda package: None)
    result = cli("verify", tmp_path / "rx.pth", "--in-library", "--json")
    assert result.exit_code == 3, result.output
    out = json.loads(result.stdout)
    assert out["not_checked"] == 1 and out["files"][0]["not_checked"] == ["in-library: not checked: timm is not installed (pip install timm, then verify again)"]
    assert "in_library" not in out["files"][0] and not any(c["name"] == "in-library" for c in out["files"][0]["checks"])
    plain = cli("verify", tmp_path / "rx.pth", "--in-library")
    assert plain.exit_code == 3 and "timm is not installed" in plain.stderr and "verified" not in plain.stdout


def test_loading_code_that_imports_a_missing_package_is_not_checked(cli, gt, tmp_path, monkeypatch):
    convert(cli, gt("regnetx_200mf"), tmp_path / "rx.pth", "torchvision")
    monkeypatch.setitem(__import__("sys").modules, "torchvision", None)  # import torchvision raises ModuleNotFoundError
    monkeypatch.setattr("ckptconv.inlibrary.installed", lambda package: "0.0.0")
    result = cli("verify", tmp_path / "rx.pth", "--in-library", "--json")
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["files"][0]["not_checked"] == [
        "in-library: not checked: torchvision is not installed, and the code that loads the file imports it (pip install torchvision)"]


def _photo_input(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A shipped photo (3 x H x W uint8 RGB) and pycls's crop of it (float32 0..255, RGB) at 256/224."""
    from ckptconv.io.png import read_rgb
    from ckptconv.transforms import resize_crop

    rgb = torch.from_numpy(read_rgb(PHOTOS / f"{name}.png")).permute(2, 0, 1).contiguous()
    return rgb, resize_crop(rgb, 256, 224)


RGB_MEAN, RGB_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _norm(x: torch.Tensor, mean, std) -> torch.Tensor:
    return (x / 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


@pytest.mark.parametrize("wrong, words", [
    ("flip", "channel order: the pipeline feeds BGR; these weights take RGB"),
    ("mean", "mean and std: the pipeline normalizes with mean [0.5, 0.5, 0.5], std [0.5, 0.5, 0.5]"),
    ("stock", "resize and crop: its resize antialiases"),
    ("rotated", "decode: the library decodes a"),
    ("decoder", "decode: the library's pixels differ from cv2.imread's (pycls's) by up to 3 levels"),
])
def test_the_step_that_makes_another_input_is_named(wrong, words):
    import torch.nn.functional as F

    from ckptconv.inlibrary.steps import step

    rgb, crop = _photo_input("chelsea")
    decoded, got = rgb, _norm(crop, RGB_MEAN, RGB_STD)
    if wrong == "flip":
        got = got.flip(0)
    elif wrong == "mean":
        got = _norm(crop, (0.5,) * 3, (0.5,) * 3)
    elif wrong == "stock":  # torchvision's Resize(256) (antialiased, uint8) and CenterCrop(224)
        h, w = rgb.shape[-2:]
        size = (256, int(256 * w / h)) if h <= w else (int(256 * h / w), 256)
        small = F.interpolate(rgb[None].float(), size=size, mode="bilinear", antialias=True)[0].round().clamp(0, 255)
        y, x = round((size[0] - 224) / 2), round((size[1] - 224) / 2)
        got = _norm(small[:, y : y + 224, x : x + 224], RGB_MEAN, RGB_STD)
    elif wrong == "rotated":
        decoded = rgb.transpose(1, 2)
    elif wrong == "decoder":
        decoded = (rgb.int() + 3).clamp(0, 255).to(torch.uint8)
    assert step(got, decoded, rgb, (256, 224), "rgb", (RGB_MEAN, RGB_STD)).startswith(words)


# --- onnxruntime, which the test environment has -------------------------------------------------


def test_an_onnx_graph_in_onnxruntime_on_a_labelled_folder(cli, gt, labelled, tmp_path):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'ckptconv[onnx]' (CI installs it)")
    images, labels = labelled
    convert(cli, gt("regnetx_200mf"), tmp_path / "rx.onnx", "onnx")
    result = cli("verify", tmp_path / "rx.onnx", "--source", gt("regnetx_200mf"), "--in-library", "--images", images, "--labels", labels, "--json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)["files"][0]["in_library"]
    from importlib.metadata import version

    assert (got["library"], got["version"], got["images"], got["passed"]) == ("onnxruntime", version("onnxruntime"), len(SHIPPED), len(SHIPPED))
    assert got["top1_agree"] == got["top5_agree"] == len(SHIPPED)
    assert got["accuracy"] == {"pycls": {"top1": 1.0, "top5": 1.0}, "library": {"top1": 1.0, "top5": 1.0}}
    assert sorted(w["image"] for w in got["largest"]) == sorted(f"{p.parent.name}/{p.name}" for p in images.rglob("*.png"))
    assert got["recorded"] == {"weights": "model", "field": "test_err", "top1_err": 23.5}  # the source's own, beside the accuracy


# --- the libraries' environment ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def libraries():
    """Run ckptconv in the libraries' environment: (args, cwd) -> (exit code, stdout, stderr)."""
    if not LIBRARIES_PYTHON:
        if os.environ.get("CKPTCONV_REQUIRE_LIBRARIES"):
            pytest.fail(NO_LIBRARIES + "; CKPTCONV_REQUIRE_LIBRARIES is set, so this is a failure.")
        pytest.skip(NO_LIBRARIES)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}

    def run(*args) -> subprocess.CompletedProcess:
        return subprocess.run([LIBRARIES_PYTHON, str(REPO / "tests" / "helpers" / "in_library_main.py"), *map(str, args)],
                              capture_output=True, text=True, env=env, timeout=900)

    versions = subprocess.run([LIBRARIES_PYTHON, "-c", "import json, importlib.metadata as m; print(json.dumps({p: m.version(p) for p in "
                               "('timm', 'torchvision', 'mmdet', 'mmpretrain', 'transformers', 'onnxruntime')}))"],
                              capture_output=True, text=True, check=True)
    run.versions = json.loads(versions.stdout)
    return run


def test_every_library_loads_its_file_as_printed_and_computes_pycls_on_a_labelled_folder(cli, gt, labelled, libraries, tmp_path):
    images, labels = labelled
    files = {to: tmp_path / (f"rx.{to}" + ("" if to == "transformers" else ".pth")) for to in ("timm", "torchvision", "mmdet", "mmpretrain", "transformers")}
    for to, out in files.items():
        convert(cli, gt("regnetx_200mf"), out, to)
    bgr = tmp_path / "rx.timm-bgr.pth"  # weights that take BGR: the printed transform reverses PIL's RGB before Normalize
    convert(cli, gt("regnetx_200mf"), bgr, "timm", "--channel-order", "bgr")
    done = libraries("verify", *files.values(), bgr, "--in-library", "--images", images, "--labels", labels, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    results = {r["layout"]: r for r in json.loads(done.stdout)["files"] if r["path"] != str(bgr)}
    assert next(r for r in json.loads(done.stdout)["files"] if r["path"] == str(bgr))["in_library"]["passed"] == len(SHIPPED)
    for to in files:
        got = results[to]["in_library"]
        assert (got["library"], got["version"], got["passed"]) == (to, libraries.versions[to], len(SHIPPED)), got
        assert got["recorded"] == {"weights": "model", "field": "test_err", "top1_err": 23.5}  # what the checkpoint recorded, beside the accuracy
        if to == "mmdet":  # a backbone: its stages, no logits
            assert got["top1_agree"] is None and got["accuracy"] is None
        else:
            assert got["top1_agree"] == got["top5_agree"] == len(SHIPPED)
            assert got["accuracy"] == {"pycls": {"top1": 1.0, "top5": 1.0}, "library": {"top1": 1.0, "top5": 1.0}}, to


@pytest.mark.parametrize("name, targets", [
    ("b0", ("timm", "mmdet")),  # the torch-like path, and the detector (its padding and eps)
    ("resnet50", ("timm", "torchvision", "mmdet", "mmpretrain", "transformers")),
])
def test_every_family_loads_as_printed_on_the_shipped_photos(cli, gt, libraries, tmp_path, name, targets):
    files = [tmp_path / (f"{name}.{to}" + ("" if to == "transformers" else ".pth")) for to in targets]
    for out in files:
        convert(cli, gt(name), out, out.name.split(".")[1])
    done = libraries("verify", *files, "--in-library", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout)["files"]
    assert sorted(r["in_library"]["library"] for r in results) == sorted(targets)
    for r in results:
        assert r["in_library"]["passed"] == len(SHIPPED) and r["in_library"]["from"] == "the shipped photos", r


def _changed(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


def test_wrong_loading_code_configs_and_channel_orders_fail_with_the_step_named(cli, gt, libraries, tmp_path):
    """Each --config is the printed one with one thing changed by hand; each run names that step."""
    tv = convert(cli, gt("regnetx_200mf"), tmp_path / "rx.torchvision.pth", "torchvision")
    mp = convert(cli, gt("regnetx_200mf"), tmp_path / "rx.mmpretrain.pth", "mmpretrain")
    md = convert(cli, gt("regnetx_200mf"), tmp_path / "rx.mmdet.pth", "mmdet")
    base = subprocess.run([LIBRARIES_PYTHON, "-c", "import mmdet, pathlib; print(pathlib.Path(mmdet.__file__).parent / '.mim/configs/regnet/mask-rcnn_regnetx-3.2GF_fpn_1x_coco.py')"],
                          capture_output=True, text=True, check=True).stdout.strip()
    cases = {
        "stock.py": (tmp_path / "rx.torchvision.pth", _changed(tv, "    PyclsResizeCrop(resize=256, crop=224),", "    transforms.Resize(256), transforms.CenterCrop(224), transforms.ConvertImageDtype(torch.float32),"),
                     "resize and crop: its resize antialiases"),
        "bgr.py": (tmp_path / "rx.torchvision.pth", _changed(tv, "\n])", "\n    lambda x: x.flip(0),\n])"), "channel order: the pipeline feeds BGR; these weights take RGB"),
        "eps.py": (tmp_path / "rx.torchvision.pth", tv + "for m in model.modules():\n    if isinstance(m, torch.nn.BatchNorm2d):\n        m.eps = 1e-3\n",
                   "model: on the library's own input its logits differs from pycls's model"),
        "to_rgb.py": (tmp_path / "rx.mmpretrain.pth", _changed(mp, "to_rgb=True", "to_rgb=False"), "channel order: the pipeline feeds BGR; these weights take RGB"),
        "mean.py": (tmp_path / "rx.mmdet.pth", f"_base_ = [{base!r}]\n" + _changed(md, "mean=[123.675, 116.28, 103.53]", "mean=[103.53, 116.28, 123.675]"),
                    "mean and std: the pipeline normalizes with mean [0.406, 0.456, 0.485]"),
    }
    for name, (weights, text, words) in cases.items():
        (tmp_path / name).write_text(text)
        done = libraries("verify", weights, "--in-library", "--config", tmp_path / name)
        assert done.returncode == 1, (name, done.stdout, done.stderr)
        line = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
        assert len(line) == 1 and words in line[0] and str(tmp_path / name) in line[0], (name, line)


def test_image_sets_flat_and_by_class(tmp_path):
    from ckptconv.inlibrary.images import image_set

    (tmp_path / "flat").mkdir()
    for name in ("b.png", "a.JPG", "notes.txt"):
        (tmp_path / "flat" / name).write_bytes(b"x")
    flat = image_set(tmp_path / "flat")
    assert [(i.name, i.label) for i in flat] == [("a.JPG", None), ("b.png", None)] and not flat.labelled
    for cls, name in (("n02", "x.png"), ("n01", "y.png"), ("n01", "z.jpeg")):
        (tmp_path / "tree" / cls).mkdir(parents=True, exist_ok=True)
        (tmp_path / "tree" / cls / name).write_bytes(b"x")
    tree = image_set(tmp_path / "tree")  # class i: the i-th folder name, sorted, as pycls's ImageNet numbers them
    assert [(i.name, i.label) for i in tree] == [("n01/y.png", 0), ("n01/z.jpeg", 0), ("n02/x.png", 1)] and tree.classes == ("n01", "n02")
    (tmp_path / "labels.txt").write_text("n02\nother\nn01\n")
    named = image_set(tmp_path / "tree", tmp_path / "labels.txt")
    assert [(i.name, i.label) for i in named] == [("n01/y.png", 2), ("n01/z.jpeg", 2), ("n02/x.png", 0)]


def test_a_version_measured_to_compute_otherwise_fails_naming_it(cli, gt, tmp_path, monkeypatch):
    """What the version table says of a version is the verdict, before anything runs in it."""
    convert(cli, gt("regnetx_200mf"), tmp_path / "rx.pth", "timm")
    monkeypatch.setattr("ckptconv.inlibrary.installed", lambda package: "0.0.1")
    monkeypatch.setattr("ckptconv.inlibrary._measured", lambda: {"timm": {"0.0.1": "builds another RegNet"}})
    result = cli("verify", tmp_path / "rx.pth", "--in-library")
    assert result.exit_code == 1
    assert "timm 0.0.1 computes otherwise than pycls on these files (measured: builds another RegNet); docs/versions.md" in only_error_line(result)


def test_a_failure_in_a_version_outside_the_table_says_so():
    from ckptconv.inlibrary.images import shipped
    from ckptconv.inlibrary.proof import Seen, Tally
    from ckptconv.inlibrary.verdict import judge
    from ckptconv.verification.report import Report

    class Lib:
        library, version, how = "timm", "9.9.9", "as printed"

    report = Report("f.pth", "b0", "timm", "symmetric", 1e-5, (64, 96))
    tally = Tally([Seen("chelsea.png", 0.0, 0.5, 0.5, False, False, None, "model: ...")])
    judge(report, Lib(), tally, shipped(), "cv2", unmeasured=True)
    assert not report.ok and report.first_failure.endswith("(timm 9.9.9 is not among the versions the ground truth measured: docs/versions.md)")


def test_a_file_that_fails_the_checks_is_not_run_in_its_library(cli, gt, tmp_path, monkeypatch):
    """The library would be judged on weights already known bad: the file fails (exit 1), and the
    in-library check says it did not run."""
    convert(cli, gt("regnetx_200mf"), tmp_path / "rx.pth", "timm")
    monkeypatch.setattr("ckptconv.inlibrary.installed", lambda package: pytest.fail("the library was looked for"))
    result = cli("verify", tmp_path / "rx.pth", "--eps", "1e-3", "--in-library", "--json")
    assert result.exit_code == 1
    (report,) = json.loads(result.stdout)["files"]
    assert not report["ok"] and report["not_checked"] == ["in-library: not run: the file failed the checks above"] and "in_library" not in report
