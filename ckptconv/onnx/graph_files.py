"""An ``.onnx`` file on disk, from anyone: read it bounded, ``inspect`` it, ``verify`` it against the
pycls checkpoint it was converted from.

A graph holds pycls's weights folded into its convolutions (the exporter folds each BatchNorm), so
they cannot be read back as pycls's: ``verify`` needs ``--source``. It converts the source again as
the graph's provenance says (weight set, input, channel order), requires that provenance to be the
one this conversion would stamp (the source's sha256, the model, the preprocessing), and runs the
graph in onnxruntime against ckptconv's pycls reference, as ``convert --to onnx`` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..io.files import check_regular
from ..options import ONNX, WEIGHTS, Expectations, Request
from ..verification.report import Report
from . import MAX_BYTES
from .provenance import load, read_provenance

# verify's options that describe a library's config: an ONNX graph of ckptconv's does its own preprocessing
NOT_FOR_GRAPHS = {"padding": "--padding", "eps": "--eps", "flip": "--bgr-to-rgb", "mean": "--mean", "std": "--std", "geometry": "--transforms stock"}


def read_graph(path: Path) -> bytes:
    """The file's bytes: a regular file one ONNX protobuf can be (at most 2 GiB)."""
    size = check_regular(path).st_size
    if size > MAX_BYTES:
        raise UsageError(f"the file is {size / (1 << 30):.1f} GiB; ckptconv's ONNX graphs are one protobuf of at most 2 GiB", path=str(path))
    try:
        return path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read ({e.strerror})", path=str(path)) from None


def inspect_graph(path: Path) -> dict[str, Any]:
    """What ``inspect`` says of an ONNX file: its inputs, outputs and opset, and ckptconv's provenance."""
    data = read_graph(path)
    model = load(data)
    shape = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    return {"path": str(path), "format": "onnx", "file_bytes": len(data), "kind": "onnx graph",
            "inputs": {v.name: shape(v) for v in model.graph.input}, "outputs": [v.name for v in model.graph.output],
            "opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None),
            "provenance": read_provenance(data)}


def _check_options(opts: Expectations) -> None:
    given = [flag for name, flag in NOT_FOR_GRAPHS.items() if getattr(opts, name) is not None]
    if given:
        raise UsageError(f"{', '.join(given)} describe a library's config, and FILE is an ONNX graph, which does its own preprocessing",
                         fix="leave them out: verify checks the graph as its metadata_props say it is fed")
    if opts.layout not in (None, ONNX):
        raise UsageError(f"--layout {opts.layout}, and FILE is an ONNX graph", fix="leave --layout out, or pass --layout onnx")
    if opts.source is None:
        raise UsageError("an ONNX graph holds pycls's weights folded into its convolutions: verify checks it against the checkpoint it came from",
                         fix="pass --source IN, the pycls checkpoint it was converted from")


def _request(opts: Expectations, read: dict[str, Any]) -> Request:
    """The conversion that would make this graph, as its provenance says (the model: --arch, else the source's)."""
    weights = opts.weights or (read["weights"] if read["weights"] in WEIGHTS else "best")
    return Request(source=Path(opts.source), layout=ONNX, weights=weights, arch=opts.arch, channel_order=read["channel_order"],
                   onnx_input=read["input"], input_size=opts.input_size, trust_pickle=opts.trust_pickle, tables=opts.tables)


def _provenance(report: Report, read: dict[str, Any], want: dict[str, Any], opts: Expectations) -> None:
    differ = [f"{k} {read[k]!r} (the source gives {want[k]!r})" for k in want if k != "ckptconv_version" and read[k] != want[k]]
    report.add("provenance", not differ, "the graph's metadata_props are what converting the source stamps: its sha256, model, weight set and preprocessing"
               if not differ else f"the graph's metadata_props say {'; '.join(differ)}: it was not converted from this source as recorded; convert it again")
    if opts.channel_order is not None and opts.channel_order != read["channel_order"]:
        report.add("channel order", False, f"you feed {opts.channel_order.upper()}, and the graph takes {read['channel_order'].upper()} "
                   f"(its metadata_props); feed {read['channel_order'].upper()} or convert again with --channel-order {opts.channel_order}")


def verify_graph(path: Path, opts: Expectations, then: Callable[..., None] | None = None) -> Report:
    """``verify FILE.onnx --source IN``: provenance, then the graph in onnxruntime against pycls's
    reference; then ``then(report, model, provenance, conversion)`` (``verify --in-library``)."""
    from ..convert import prepare
    from ..io.hashing import start_hash
    from ..preflight import require_onnx
    from .target import check_numerics, provenance_of

    start = time.perf_counter()
    require_onnx("verifying an ONNX graph")
    _check_options(opts)
    model = load(read_graph(Path(path)))
    read = read_provenance(model)
    c = prepare(_request(opts, read), source_hash=start_hash(Path(opts.source)))
    report = Report(str(path), c.variant.name, ONNX, "symmetric", c.variant.eps, tuple(opts.input_size), paddable=False)
    _provenance(report, read, provenance_of(c), opts)
    check_numerics(report, model, c, read["input"])
    if then is not None:
        then(report, model, read, c)
    report.seconds = time.perf_counter() - start
    return report

