"""The naive route to an ONNX graph ckptconv's ``--to onnx`` is measured against: what a one-off
script does with pycls's model class and torch's exporter.

Full ``torch.load`` (optimizer state and all), the model built from its numbers (ckptconv's pycls
reference model stands in for pycls's own class: the same modules; pycls is not installed here),
``load_state_dict``, ``torch.onnx.export(dynamo=True)`` with a dynamic batch axis, the file saved. No
preprocessing in the graph, no provenance, no check in onnxruntime.
Usage: python benchmarks/naive_onnx.py ARCH IN OUT
"""

import sys

import torch


def main(arch: str, src: str, dst: str) -> None:
    from ckptconv.tables.registry import registry_for
    from ckptconv.verification.models import pycls_model

    state = torch.load(src, map_location="cpu", weights_only=True)["model_state"]
    model = pycls_model(registry_for().variant(arch), state).eval()
    x = torch.zeros(2, 3, 224, 224)
    program = torch.onnx.export(model, (x,), dynamo=True, opset_version=19, dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=1024)}})
    program.save(dst)


if __name__ == "__main__":
    main(*sys.argv[1:4])
