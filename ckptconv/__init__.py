"""ckptconv: convert pycls checkpoints (the whole model zoo) to MMDetection, mmpretrain, timm and
torchvision, and prove the converted weights compute what pycls computed.

Importing the package is cheap: torch is imported only when a function that handles tensors runs.
The API (see ``ckptconv.api``): ``convert_checkpoint``, ``verify_checkpoint``, ``inspect_checkpoint``,
``supported``; every failure is a ``CkptError``.
"""

from .version import __version__
from .api import Converted, convert_checkpoint, inspect_checkpoint, supported, verify_checkpoint
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

__all__ = [
    "__version__", "Converted", "convert_checkpoint", "verify_checkpoint", "inspect_checkpoint", "supported",
    "CkptError", "UsageError", "Refused", "TableError", "FormatError", "UnsafePickleError", "MappingError",
    "VerificationError", "OutputError",
]  # fmt: skip
