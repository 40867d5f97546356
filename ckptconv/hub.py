"""A timm model folder: what ``timm.create_model('local-dir:DIR', pretrained=True)`` loads, and what
``hf-hub:org/name`` loads once the folder is uploaded as it is.

The folder holds exactly three files (written and published by ``io/folder.py``): ``config.json``
(timm's architecture name, the model's arguments, and a ``pretrained_cfg`` with pycls's
preprocessing), ``model.safetensors`` (the timm
layout's tensors with ckptconv's meta) and ``README.md`` (a model card: YAML front matter, where the
weights came from, what verification proved, the preprocessing and how far timm's own transforms
are from it).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import Refused
from .serialize import markdown, markdown_code, shell, yaml
from .tables.pipeline import crop_pct, needed
from .version import __version__

if TYPE_CHECKING:  # the types only, for readers: a Conversion holds torch tensors
    from .conversion import Conversion
    from .verification.report import Report


DATASETS = {"imagenet": "imagenet-1k", "cifar10": "cifar10"}  # pycls's TRAIN.DATASET -> the Hub's dataset id


# timm builds a RegNet of any numbers from a registered name with the RegNetCfg fields as
# arguments (RegNet.__init__: cfg = replace(cfg, **kwargs)); regnetx_002's cfg differs from
# RegNetCfg's defaults only in fields every ckptconv RegNetCfg sets (depth, w0, wa, wm, group_size)
REGNET_BASE = "regnetx_002"


def _literals(call: ast.Call) -> dict[str, Any]:
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords}


def _created(c: Conversion) -> tuple[str, dict[str, Any]]:
    """timm's registered name and the arguments config.json gives it: a ``timm.create_model`` call
    as it is, a ``RegNet(RegNetCfg(...))`` as REGNET_BASE with the cfg's fields. Refused when timm
    builds the model otherwise (an EfficientNet's block list, a BN eps reset)."""
    from .tables.render import eps_reset

    built = c.target.built(c.variant)
    call = ast.parse(built.text, mode="eval").body if built is not None else None
    fix = "write a .pth or .safetensors file instead: the printed snippet builds the model and loads it"
    if eps_reset(c.target, c.variant):
        raise Refused(f"timm builds {c.variant.name} with another BN eps than its weights need ({c.variant.eps:g}), which config.json cannot set", fix=fix)
    try:
        if isinstance(call, ast.Call) and built.name and not call.args[1:]:
            return built.name, _literals(call)
        if isinstance(call, ast.Call) and ast.unparse(call.func) == "timm.models.regnet.RegNet" and len(call.args) == 1:
            cfg = call.args[0]
            if isinstance(cfg, ast.Call) and ast.unparse(cfg.func) == "timm.models.regnet.RegNetCfg" and not cfg.args:
                return REGNET_BASE, {**_literals(cfg), **_literals(call)}
    except ValueError:  # an argument that is code, not a value
        pass
    raise Refused(f"timm builds {c.variant.name} from its class with arguments config.json cannot hold", fix=fix)


def _key(c: Conversion, pycls_key: str) -> str:
    """The timm name of a pycls tensor's module (``stem.conv.weight`` -> ``conv_stem``)."""
    entry = next(e for e in c.plan.mapped if e.pycls == pycls_key)
    return entry.target.rsplit(".", 1)[0]


def stock_note(residual: float | None) -> str:
    """Where timm users look (config.json's ``pretrained_cfg.notes``, the printed snippet): how far
    timm's own transforms are from pycls's input, measured on ckptconv's photos."""
    if residual is None:
        return ""
    return (f"timm's resolve_data_config + create_transform with this pretrained_cfg give inputs up to {residual:.3g} normalized "
            "units from pycls's on ckptconv's photos (they antialias, resize uint8 pixels and round the crop offset half to even), "
            "enough to change top-1: ckptconv.transforms.PyclsResizeCrop gives pycls's input")


def timm_config(c: Conversion, residual: float | None = None) -> dict[str, Any]:
    """config.json: what timm builds and the preprocessing pycls tested with (RGB weights), and
    (``residual``) how far timm's own transforms are from it."""
    name, args = _created(c)
    v, classifier = c.variant, _key(c, "head.fc.weight")
    pre = needed(c.target.pipeline, c.colours.target, c.colours.stats)
    pretrained = {
        "input_size": [3, v.im_size, v.im_size], "interpolation": "bilinear", "crop_pct": crop_pct(v.im_size, v.test_size),
        "crop_mode": "center", "mean": [round(m, 4) for m in pre.mean], "std": [round(s, 4) for s in pre.std],
        "num_classes": v.num_classes, "first_conv": _key(c, "stem.conv.weight"), "classifier": classifier,
    }
    config = {"architecture": name, "num_classes": v.num_classes, "num_features": int(c.tensors[classifier + ".weight"].shape[1]), "global_pool": "avg"}
    args.pop("num_classes", None)  # config.json's num_classes says it
    if residual is not None:
        pretrained["notes"] = [stock_note(residual)]  # PretrainedCfg.notes: a tuple of strings timm keeps with the model
    return {**config, **({"model_args": args} if args else {}), "pretrained_cfg": pretrained}


def usage(c: Conversion, folder: str, residual: float | None = None) -> str:
    """The Python that loads the folder and gives the model pycls's input (the printed config)."""
    from .serialize import comment
    from .tables.render import torch_transform

    pre = needed(c.target.pipeline, c.colours.target, c.colours.stats)
    note = f"# {comment(stock_note(residual))}.\n" if residual is not None else ""
    return (f"# timm model folder for pycls {comment(c.variant.title)} weights converted by ckptconv {__version__}; they take RGB input.\n"
            "# config.json names the model and its preprocessing; timm loads model.safetensors strictly.\n" + note +
            "import timm\n"
            "from torchvision import transforms\n\n"
            f"model = timm.create_model({'local-dir:' + folder!r}, pretrained=True).eval()\n"
            + torch_transform(c.variant, pre))


def dataset(c: Conversion) -> str | None:
    """The Hub's id of the dataset pycls trained on (its cfg's TRAIN.DATASET), if known."""
    from .errors import CkptError
    from .model.structure import read

    try:
        cfg = read(c.checkpoint.cfg, "the checkpoint's cfg")
    except CkptError:  # the model came from --cfg or the tensors: the dataset is not known
        return None
    dataset = cfg["TRAIN"]["DATASET"] if cfg is not None else None
    return DATASETS.get(dataset.lower()) if isinstance(dataset, str) else None


def front_matter(c: Conversion, library: str) -> list[str]:
    """A model card's YAML front matter, as the Hub reads it, every value through the YAML serializer."""
    data, license = dataset(c), c.request.license
    return ["---", f"library_name: {library}", f"license: {yaml(license or 'unknown')}", "pipeline_tag: image-classification",
            "tags:", "- image-classification", f"- {library}", "- pycls", "- ckptconv", *(["datasets:", f"- {yaml(data)}"] if data else []), "---"]


def source_and_preprocessing(c: Conversion, mean, std) -> str:
    """A model card's Source section and the start of its Preprocessing section (``mean``, ``std``: RGB order)."""
    v, meta = c.variant, c.meta
    return f"""## Source

- file: {markdown_code(meta['source'])} ({meta['source_format']}), sha256 `{meta['source_sha256']}`
- weight set: {meta['weights']}; epoch: {meta.get('epoch')}; model: {markdown(v.name)} (from {markdown(c.arch_from)})
- command: {markdown_code(command(c))}

## Preprocessing

pycls tests at: the short side resized to {v.test_size} (OpenCV bilinear on float32, no antialiasing), a
centre crop of {v.im_size} at offset ceil((L - {v.im_size}) / 2), /255, mean {mean} and std {std}
in RGB order (the weights take RGB: the stem's input channels were reversed from pycls's BGR)."""


def proved(report: Report | None) -> str:
    """A model card's last section: every check the conversion ran, in Markdown."""
    checks = report.to_dict()["checks"] if report is not None else []
    lines = "\n".join(f"- {'ok' if ch['ok'] else 'FAILED'} {markdown(ch['name'])}: {markdown(ch['detail'])}" for ch in checks)
    return "## What verification proved\n\n" + (lines or "- nothing: verification was skipped (--no-verify)")


def model_card(c: Conversion, config: dict[str, Any], report: Report | None, residual: float | None) -> str:
    """README.md: front matter the Hub reads, then where the weights came from, the preprocessing and
    what verification proved."""
    v, pre = c.variant, config["pretrained_cfg"]
    front = front_matter(c, "timm")
    timm_note = markdown(stock_note(residual)) + "." if residual is not None else ""
    return "\n".join(front) + f"""
# {markdown(v.title)} (pycls), for timm

Weights trained with [pycls](https://github.com/facebookresearch/pycls), converted for timm's
`{config['architecture']}` by ckptconv {__version__}.

```python
{usage(c, "PATH_TO_THIS_FOLDER", residual)}# or timm.create_model('hf-hub:ORG/NAME', pretrained=True) once the folder is uploaded
```

{source_and_preprocessing(c, pre['mean'], pre['std'])}
config.json's `pretrained_cfg` states these sizes for timm's tools. {timm_note}

{proved(report)}
"""


def check(c: Conversion) -> None:
    """Refused when timm cannot build the model from config.json (before the checks run)."""
    timm_config(c)


def files(c: Conversion, report: Report | None, residual: float | None) -> dict[str, dict[str, Any] | str]:
    """The folder's files besides model.safetensors: name -> a JSON object or the card's text."""
    from .io.folder import CARD, CONFIG

    config = timm_config(c, residual)
    return {CONFIG: config, CARD: model_card(c, config, report, residual)}


def command(c: Conversion) -> str:
    """The command line that makes this folder again (file names as given, options that matter); a
    batch's folder names the batch, whose report holds the rest."""
    r = c.request
    to = ["--to", r.layout, *(["--hub"] if r.hub else [])]  # a layout name and a flag: checked values
    if r.made_by == "batch":
        return f"ckptconv batch ... {' '.join(to)} (this folder is its output for {shell(r.source.name)}; its --report names every option)"
    parts = ["ckptconv", "convert", shell(r.source.name), shell(Path(r.output).name) if r.output else "DIR", *to]
    parts += ["--license", r.license] if r.license else []
    parts += ["--arch", r.arch] if r.arch else []
    parts += ["--weights", r.weights] if r.weights != "best" else []
    parts += ["--dtype", r.dtype] if r.dtype != "keep" else []
    return " ".join(parts)  # every value is a checked option (a licence, a model name, a choice)
