"""ckptconv: convert pycls checkpoints (the whole model zoo) to MMDetection, mmpretrain, timm and
torchvision, and prove the converted weights compute what pycls computed.

Importing the package is cheap: the API module is imported on first use (the command line's signal
handlers are in place a few milliseconds after the interpreter starts), and torch only when a
function that handles tensors runs.
The API (see ``ckptconv.api``): ``convert_checkpoint``, ``convert_batch``, ``verify_checkpoint``,
``inspect_checkpoint``, ``supported``; every failure is a ``CkptError``.
"""

from .errors import (
    CkptError,
    FormatError,
    MappingError,
    OutputError,
    Refused,
    TableError,
    UnsafePickleError,
    UsageError,
    VerificationError,
)
from .version import __version__

__all__ = [
    "__version__", "Converted", "Batched", "convert_checkpoint", "convert_batch", "verify_checkpoint", "inspect_checkpoint", "supported",
    "CkptError", "UsageError", "Refused", "TableError", "FormatError", "UnsafePickleError", "MappingError",
    "VerificationError", "OutputError",
]

_API = ("Converted", "Batched", "convert_checkpoint", "convert_batch", "verify_checkpoint", "inspect_checkpoint", "supported")


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'ckptconv' has no attribute {name!r}")
