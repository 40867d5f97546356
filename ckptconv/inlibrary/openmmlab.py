"""mmpretrain and mmdet, run as their users run them: a config read by mmengine (the fragment ckptconv
printed for the file, or ``--config CFG``, ``_base_`` included), the model built by the library's
registry, its weights loaded by its own initializer (``init_weights()``: the config's ``init_cfg``),
images loaded by the config's own ``LoadImageFromFile`` and normalized by its data preprocessor.

- mmpretrain: the config's test pipeline, the data preprocessor, ``model(inputs, mode='tensor')``:
  the classifier's logits.
- mmdet: a detector resizes to its own scale, which pycls never saw, so the backbone is compared
  on pycls's resize and crop of the decoded image, through the config's data preprocessor (its
  channel order, mean and std; any padding to a multiple is cut off again): every stage it outputs.
  The printed fragment's backbone is built alone; ``--config`` builds the whole detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

from ..errors import UsageError
from ..serialize import python
from ..transforms import resize_crop
from .proof import LOGITS, Ran
from .target import Target


def _stock(target: Target) -> Path | None:
    """The stock config the printed fragment is a child of (the table's ``[config] base``), as the installed library ships it."""
    base = target.layout.config.get("base")
    if not base or target.config is not None:
        return None
    from importlib.util import find_spec

    spec = find_spec(target.library)
    found = Path(spec.origin).parent / ".mim" / "configs" / base if spec and spec.origin else None
    if found is None or not found.is_file():
        raise UsageError(f"{target.library} installed here ships no {base} (the config the printed fragment is a child of)",
                         fix="verify with --config CFG: your detector config, with the printed fragment pasted in")
    return found


def _config(target: Target):
    from mmengine.config import Config
    from mmengine.logging import MMLogger

    if not MMLogger.check_instance_created("ckptconv-in-library"):  # the current logger: init_weights' hundreds of INFO lines stay unsaid
        MMLogger.get_instance("ckptconv-in-library", log_level="WARNING")
    stock = _stock(target)
    if target.config is not None:
        cfg = Config.fromfile(str(target.config))
    else:  # the printed fragment as users paste it: a child of the stock config it names
        cfg = Config.fromstring((f"_base_ = [{python(str(stock))}]\n" if stock else "") + target.printed, ".py")
    _drop_delete(cfg._cfg_dict)
    if cfg.get("custom_imports"):
        from mmengine.utils import import_modules_from_strings

        import_modules_from_strings(**cfg.custom_imports)
    return cfg


def _drop_delete(node: Any) -> None:
    """A printed fragment's ``_delete_`` marks say how to merge it over a base; built alone, they go."""
    if isinstance(node, dict):
        node.pop("_delete_", None)
        for value in node.values():
            _drop_delete(value)


def _how(target: Target, what: str) -> str:
    return f"{what}, from {'your config ' + str(target.config) if target.config is not None else 'the config ckptconv prints for it'}"


def _bgr_loaded(pipeline, path: Path) -> torch.Tensor:
    """The config's first step (``LoadImageFromFile``) on the file: 3 x H x W uint8 BGR."""
    image = pipeline.transforms[0](dict(img_path=str(path)))["img"]
    return torch.from_numpy(image.copy()).permute(2, 0, 1).contiguous()


@dataclass
class Classifier:
    library: str
    version: str
    how: str
    model: Any
    pipeline: Any

    def run(self, path: Path) -> Ran:
        from mmengine.dataset import pseudo_collate

        results = self.pipeline.transforms[0](dict(img_path=str(path)))  # LoadImageFromFile: the file decoded once
        bgr = torch.from_numpy(results["img"].copy()).permute(2, 0, 1).contiguous()
        for step in self.pipeline.transforms[1:]:
            results = step(results)
        x = self.model.data_preprocessor(pseudo_collate([results]), False)["inputs"].float()
        return Ran(bgr.flip(0), x[0], {LOGITS: self.model(x, mode="tensor").float()})


def _pipeline_of(cfg) -> list | None:
    return cfg.get("test_pipeline") or cfg.get("test_dataloader", {}).get("dataset", {}).get("pipeline")


def _test_pipeline(cfg) -> list:
    found = _pipeline_of(cfg)
    if not found:
        raise UsageError("the config has no test pipeline (test_pipeline, or test_dataloader.dataset.pipeline)", fix="give the config your test pipeline")
    return found


def mmpretrain(target: Target) -> Classifier:
    from mmengine.dataset import Compose
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    cfg = _config(target)
    model_cfg = cfg.model
    if cfg.get("data_preprocessor") and "data_preprocessor" not in model_cfg:
        model_cfg["data_preprocessor"] = cfg.data_preprocessor  # as mmengine's Runner merges it
    model = MODELS.build(model_cfg)
    model.init_weights()
    model.eval()
    return Classifier("mmpretrain", version("mmpretrain"), _how(target, "MODELS.build(model), init_weights()"), model, Compose(_test_pipeline(cfg)))


@dataclass
class Backbone:
    library: str
    version: str
    how: str
    backbone: Any
    preprocessor: Any
    loader: Any
    points: tuple[str, ...]  # the pycls point of each output, in order
    sizes: tuple[int, int]

    def run(self, path: Path) -> Ran:
        bgr = _bgr_loaded(self.loader, path)
        crop = resize_crop(bgr, *self.sizes)
        x = self.preprocessor(dict(inputs=[crop], data_samples=None), False)["inputs"].float()
        x = x[..., : crop.shape[-2], : crop.shape[-1]]  # a detector pads to a multiple: pycls never saw the padding
        outs = self.backbone(x)
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        return Ran(bgr.flip(0), x[0], {p: o.float() for p, o in zip(self.points, outs)})


def _points(target: Target, backbone) -> tuple[str, ...]:
    levels, indices = target.layout.levels_for(target.variant), target.layout.out_levels(target.variant)
    return tuple(levels[indices[i]] for i in getattr(backbone, "out_indices", ()))


def mmdet(target: Target) -> Backbone:
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.dataset import Compose

    register_all_modules(init_default_scope=True)
    cfg = _config(target)
    if target.config is not None or _stock(target) is not None:
        detector = MODELS.build(cfg.model)
        detector.init_weights()
        base = "" if target.config is not None else f" pasted over {target.layout.config['base']}"
        backbone, preprocessor, what = detector.backbone, detector.data_preprocessor, f"MODELS.build(model), init_weights(): the detector{base}"
    else:
        backbone = MODELS.build(cfg.model.backbone)
        backbone.init_weights()
        preprocessor = MODELS.build(dict(type="DetDataPreprocessor", **cfg.model.get("data_preprocessor", {})))
        what = "MODELS.build(model.backbone), init_weights(): the backbone"
    pipeline = _pipeline_of(cfg) or [dict(type="LoadImageFromFile")]
    sizes = (target.variant.test_size, target.variant.im_size)
    backbone.eval()  # mmdet's ResNet.train() returns nothing: eval() is called for its effect
    preprocessor.eval()
    return Backbone("mmdet", version("mmdet"), _how(target, what), backbone, preprocessor, Compose(pipeline[:1]), _points(target, backbone), sizes)
