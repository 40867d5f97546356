"""``custom_imports=dict(imports=['ckptconv.mmengine'], allow_failed_imports=False)``: the import an
MMDetection or mmpretrain config writes. Importing it registers ckptconv's checkpoint schemes
(``pycls-mmdet://`` ...), the ``PyclsResizeCrop`` pipeline step and the ``CkptconvPretrained`` initializer with mmengine; the code lives
in ``ckptconv.openmmlab.loading``."""

from .openmmlab.loading import CkptconvPretrained, PyclsResizeCrop, check_modules, check_preprocessor, load_strictly, weights_for

__all__ = ["CkptconvPretrained", "PyclsResizeCrop", "check_modules", "check_preprocessor", "load_strictly", "weights_for"]
