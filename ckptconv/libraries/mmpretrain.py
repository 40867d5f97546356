"""mmpretrain 1.x: ImageClassifier with EfficientNet, RegNet, ResNet and ResNeXt backbones, loaded by mmengine."""

from . import Library, Reference
from ._openmmlab import builders

M = "ckptconv.verification.models"
RESNET = Reference(f"{M}.anynet:MMPretrainResNet", ("backbone.stem", "backbone.layer{n}", "logits"))

LIBRARY = Library(
    name="mmpretrain",
    title="mmpretrain",
    loads=("state_dict",),  # mmengine's load_checkpoint
    openmmlab=True,
    builders=builders('mmpretrain'),
    references={
        "effnet": {"mmpretrain": Reference(f"{M}.mm:MMPretrainClassifier", ("backbone.layers.{i}", "logits"))},
        "regnet": {"mmpretrain-resnet": RESNET},
        "resnet": {"mmpretrain-resnet": RESNET},
    },
    runner="ckptconv.inlibrary.openmmlab:mmpretrain",
)
