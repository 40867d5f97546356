"""MMDetection 3.x: EfficientNet, RegNet, ResNet and ResNeXt backbones, loaded by mmengine."""

from . import Library, Reference
from ._openmmlab import builders

M = "ckptconv.verification.models"
RESNET = Reference(f"{M}.anynet:MMDetResNet", ("stem", "layer{n}"))

LIBRARY = Library(
    name="mmdet",
    title="MMDetection",
    loads=("state_dict",),  # mmengine's load_checkpoint: 'state_dict' if present, else the whole dict
    openmmlab=True,
    builders=builders('mmdet'),
    references={
        "effnet": {"mmdet": Reference(f"{M}.mm:MMDetEfficientNet", ("layers.{i}",)),
                   "mmdet-stages": Reference(f"{M}.mm:MMDetStagesEfficientNet", ("conv1", "layer{n}"))},  # efficientnet2mmdet.py's names
        "regnet": {"mmdet-resnet": RESNET},
        "resnet": {"mmdet-resnet": RESNET},
    },
    runner="ckptconv.inlibrary.openmmlab:mmdet",
)
