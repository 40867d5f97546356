"""A transformers model folder: what ``AutoModelForImageClassification.from_pretrained(DIR)`` loads
strictly, and what the Hugging Face Hub serves once the folder is uploaded as it is.

The folder holds exactly four files, written and published whole by ``io/folder.py`` as the timm
folder is (``ckptconv/hub.py``): ``config.json`` (RegNetConfig's or ResNetConfig's numbers, the
classes, as ``save_pretrained`` writes them), ``model.safetensors`` (every ``state_dict()`` key,
``num_batches_tracked`` included, with ckptconv's meta), ``preprocessor_config.json`` (the
ConvNextImageProcessor settings closest to pycls's test-time input, which AutoImageProcessor
needs) and ``README.md`` (a model card: where the weights came from, what verification proved, and
how far the processor is from pycls's input on ckptconv's photos).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .hub import front_matter, proved, source_and_preprocessing
from .io.labels import read_labels
from .libraries.transformers import CLASSES
from .serialize import comment, markdown, python
from .tables.pipeline import crop_pct, needed
from .version import __version__

if TYPE_CHECKING:
    from .conversion import Conversion
    from .verification.report import Report

PROCESSOR = "ConvNextImageProcessor"  # AutoImageProcessor's class for model_type regnet and resnet
BILINEAR = 2  # PIL.Image.BILINEAR: the resample the processor config names


def class_names(c: Conversion) -> tuple[str, ...]:
    """The model's class names: --labels FILE's, one per class, else transformers' defaults (LABEL_i)."""
    classes = c.variant.num_classes
    if c.request.labels is None:
        return tuple(f"LABEL_{i}" for i in range(classes))
    names = read_labels(c.request.labels)
    if len(names) != classes:
        raise UsageError(f"--labels names {len(names)} classes and {c.variant.name} has {classes}", fix="give one name per class of this checkpoint, in class order",
                         path=str(c.request.labels))
    return names


def config_json(c: Conversion) -> dict[str, Any]:
    """config.json: the model class, its config's numbers, the dtype and the classes (--labels's names,
    else transformers' defaults, LABEL_i, as save_pretrained writes them), keys sorted as save_pretrained sorts them."""
    v = c.variant
    model, _, model_type, fields = CLASSES[v.family]
    labels = {str(i): name for i, name in enumerate(class_names(c))}
    out: dict[str, Any] = {"architectures": [model], **fields(v), "dtype": c.dtype, "id2label": labels,
                           "label2id": {name: int(i) for i, name in labels.items()}, "model_type": model_type, "num_channels": 3}
    if model_type == "resnet":  # ResNetConfig is also a backbone config: save_pretrained writes its stages
        out |= {"out_features": [f"stage{v.stages}"], "out_indices": [v.stages], "stage_names": ["stem", *(f"stage{n}" for n in range(1, v.stages + 1))]}
    return dict(sorted(out.items()))


def preprocessor_json(c: Conversion) -> dict[str, Any]:
    """preprocessor_config.json: ConvNextImageProcessor resizing the short side to
    int(crop / crop_pct) = pycls's TEST.IM_SIZE, cropping TRAIN.IM_SIZE, /255, pycls's mean and std
    in RGB order (the weights take RGB). It antialiases, resizes uint8 and floors the crop offset:
    the model card says how far that is from pycls's input."""
    v, pre = c.variant, needed(c.target.pipeline, c.colours.target, c.colours.stats)
    return {"crop_pct": crop_pct(v.im_size, v.test_size), "do_normalize": True, "do_rescale": True, "do_resize": True,
            "image_mean": [round(m, 4) for m in pre.mean], "image_processor_type": PROCESSOR, "image_std": [round(s, 4) for s in pre.std],
            "resample": BILINEAR, "rescale_factor": 1 / 255, "size": {"shortest_edge": v.im_size}}


def processor_note(residual: float | None) -> str:
    """How far the processor is from pycls's input, measured on ckptconv's photos."""
    if residual is None:
        return ""
    return (f"AutoImageProcessor ({PROCESSOR}) with this preprocessor_config.json gives inputs up to {residual:.3g} normalized units "
            "from pycls's on ckptconv's photos (it antialiases, resizes uint8 pixels and floors the crop offset), enough to change "
            "top-1: ckptconv.transforms.PyclsResizeCrop gives pycls's input")


def usage(c: Conversion, folder: str, residual: float | None = None) -> str:
    """The Python that loads the folder and gives the model pycls's exact input (the printed config)."""
    from .tables.render import torch_transform

    pre = needed(c.target.pipeline, c.colours.target, c.colours.stats)
    note = f"# {comment(processor_note(residual))}.\n" if residual is not None else ""
    model = CLASSES[c.variant.family][0]
    return (f"# transformers model folder for pycls {comment(c.variant.title)} weights converted by ckptconv {__version__}; they take RGB input.\n"
            f"# config.json builds {model}; from_pretrained loads model.safetensors with no missing or unexpected key.\n" + note +
            "import torch\n"
            "from PIL import Image\n"
            "from torchvision import transforms\n"
            "from transformers import AutoModelForImageClassification\n\n"
            f"model = AutoModelForImageClassification.from_pretrained({python(folder)}).eval()\n"
            + torch_transform(c.variant, pre) +
            "# with torch.no_grad(): logits = model(pixel_values=preprocess(Image.open(path).convert('RGB'))[None]).logits\n")


def model_card(c: Conversion, config: dict[str, Any], report: Report | None, residual: float | None) -> str:
    """README.md: front matter the Hub reads, then where the weights came from, the preprocessing and
    what verification proved."""
    v, pre = c.variant, preprocessor_json(c)
    front = front_matter(c, "transformers")
    note = markdown(processor_note(residual)) + "." if residual is not None else ""
    return "\n".join(front) + f"""
# {markdown(v.title)} (pycls), for transformers

Weights trained with [pycls](https://github.com/facebookresearch/pycls), converted for transformers'
`{config['architectures'][0]}` (`{config['model_type']}`) by ckptconv {__version__}.

```python
{usage(c, "PATH_TO_THIS_FOLDER", residual)}# or from_pretrained('ORG/NAME') once the folder is uploaded
```

{source_and_preprocessing(c, pre['image_mean'], pre['image_std'])}
preprocessor_config.json states the closest {PROCESSOR} settings. {note}

{proved(report)}
"""


def check(c: Conversion) -> None:
    """Before anything is written: --labels names one class per class (the table's library refused
    what RegNetConfig/ResNetConfig cannot hold)."""
    class_names(c)


def files(c: Conversion, report: Report | None, residual: float | None) -> dict[str, dict[str, Any] | str]:
    """The folder's files besides model.safetensors: name -> a JSON object or the card's text."""
    from .io.folder import CARD, CONFIG, PREPROCESSOR

    config = config_json(c)
    return {CONFIG: config, PREPROCESSOR: preprocessor_json(c), CARD: model_card(c, config, report, residual)}
