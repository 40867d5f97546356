"""ckptconv's exception types. The CLI turns each into one line and the exit code it carries.

Every message says what went wrong, why, and how to fix it:
``CkptError("s5.b3.dwise.weight: shape (672, 1, 5, 5) but b0 expects (480, 1, 5, 5)",
fix="pass --arch b1")`` renders as ``s5.b3.dwise.weight: shape ... (480, 1, 5, 5); pass --arch b1``.
"""

from __future__ import annotations

EXIT_FAILURE = 1  # conversion or verification failed
EXIT_USAGE = 2  # the command line, a table or the file system is not usable as given
EXIT_UNCHECKED = 3  # nothing failed, but a check asked for could not run (verify --in-library: the library is not installed)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


class CkptError(Exception):
    """Base class: a failure ckptconv explains itself. ``str(err)`` is the one-line message."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, fix: str | None = None, path: str | None = None):
        self.message = message
        self.fix = fix
        self.path = path
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"{text}; {self.fix}" if self.fix else text


class UsageError(CkptError):
    """The command line asks for something impossible (bad option, output exists, no such table)."""

    exit_code = EXIT_USAGE


class Refused(UsageError):
    """The target cannot hold this model (RegNetY's SE in MMDetection's RegNet, a ResNet in an
    EfficientNet-only layout): refused before anything is read further or written, naming the
    alternative. A batch over several targets lists such pairs without failing."""


class NoLayout(Refused):
    """The model's family has no layout of that name (mmdet-stages for a RegNet). In a batch over
    several targets such a pair is no cell at all: it is skipped, not refused."""


class TableError(UsageError):
    """A mapping table or variant file is malformed."""


class FormatError(CkptError):
    """The input is not a checkpoint ckptconv can read: unknown format, truncated, corrupt."""


class UnsafePickleError(FormatError):
    """The checkpoint's pickle references a global that weights-only loading does not allow."""

    def __init__(self, message: str, *, global_name: str | None = None, **kwargs):
        self.global_name = global_name
        super().__init__(message, **kwargs)


class MappingError(CkptError):
    """The state dict does not fit the table: unmatched key, missing key, wrong shape, collision."""


class VerificationError(CkptError):
    """Converted weights do not compute, or do not hold, what the source held."""


class OutputError(CkptError):
    """Writing the output failed (disk full, permissions); nothing partial is left behind."""


def io_error(e: OSError, what: str, path) -> OutputError:
    """An OSError while writing, as the one line a run ends with."""
    import errno

    why = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
    return OutputError(f"{what} failed: {why}; nothing was written", fix="free space or choose another output", path=str(path))
