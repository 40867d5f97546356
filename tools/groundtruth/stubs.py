"""Stand-in modules the ground-truth scripts install before they import MMDetection.

Plain Python, standard library only, so that every environment can import it. The scripts run as
``python tools/groundtruth/<script>.py``, which puts this folder first on ``sys.path``: ``import
stubs`` finds this file.

- ``stub_mmcv_ext()``: mmdet 3.3.0 imports mmcv's compiled ops (``mmcv._ext``), which mmcv-lite
  does not ship. The stub lets the import succeed; any op called on it raises. Nothing the scripts
  measure calls one (the backbones, classifiers and transforms they build are plain torch).
- ``stub_torchvision()``: for an environment without torchvision (requirements/mm.txt: the CPU
  torch 2.13.0 has no torchvision build beside it). mmdet and mmpretrain import torchvision at
  import time; every ``torchvision`` module becomes an empty package whose attributes are a class
  that raises when instantiated. Nothing measured there uses torchvision.
- ``hide_multimodal_from_mmpretrain()``: mmpretrain 1.2.0 imports its multimodal models (BLIP,
  CLIP, ...) whenever transformers >= 4.28 is installed, and that import fails on transformers 5
  (the gt environment has transformers 5.25.0 for transformers_pycls.py): ``import
  mmpretrain.models`` raises ``TypeError: NoneType takes no arguments``. mmpretrain then takes the
  path it takes without transformers, the one the committed data were made with (placeholders are
  registered instead); no script measures a multimodal model.

All must run before the first ``import mmdet`` / ``import mmpretrain.models`` of the process.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types


def stub_mmcv_ext() -> None:
    """Register a ``mmcv._ext`` module whose every op raises (unless a real one is already loaded)."""
    ext = types.ModuleType("mmcv._ext")

    def _ext_getattr(name):
        if name.startswith("__"):
            raise AttributeError(name)

        def missing(*args, **kwargs):
            raise RuntimeError(f"mmcv._ext.{name} is a stub (mmcv-lite has no compiled ops)")
        return missing

    ext.__getattr__ = _ext_getattr
    sys.modules.setdefault("mmcv._ext", ext)


class _AnyAttr(type):
    """A class whose every attribute is the class itself (``torchvision.ops.nms`` and the like)."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return cls


class _Placeholder(metaclass=_AnyAttr):
    def __init__(self, *args, **kwargs):
        raise RuntimeError("torchvision is a stub here")


class _TorchvisionFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers every import of ``torchvision`` or ``torchvision.*`` with an empty package."""

    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []

        def getattr_(attr):
            if attr.startswith("__"):
                raise AttributeError(attr)
            return _Placeholder
        module.__getattr__ = getattr_
        return module

    def exec_module(self, module):
        pass


def stub_torchvision() -> None:
    """Put the torchvision stand-in first on ``sys.meta_path`` (it shadows a real torchvision)."""
    sys.meta_path.insert(0, _TorchvisionFinder())


def hide_multimodal_from_mmpretrain() -> None:
    """mmpretrain as without transformers: its multimodal models are not imported (see above)."""
    from mmpretrain.utils import dependency

    dependency.WITH_MULTIMODAL = False
