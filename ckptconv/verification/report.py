"""What a verification found: checks that passed or failed, levels compared, notes. torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import VerificationError


@dataclass
class Level:
    """One compared output: max absolute and relative difference, and whether it passes."""

    name: str
    point: str
    max_abs: float
    max_rel: float
    tolerance: float
    ok: bool
    drift_abs: float | None = None  # against pycls's own arithmetic at full precision (a library's F.silu, fp16 weights)
    drift_rel: float | None = None


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    """Everything a verification found; ``ok`` only when every check passed."""

    path: str
    arch: str
    layout: str
    padding: str
    eps: float
    input_size: tuple[int, int]
    checks: list[Check] = field(default_factory=list)
    levels: list[Level] = field(default_factory=list)  # the numeric check: settings under test, exactly
    pipeline: list[Level] = field(default_factory=list)  # the pipeline check: a photo, within a tolerance
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    paddable: bool = True  # padding is a setting of the model's family (EfficientNets): said where settings are
    not_checked: list[str] = field(default_factory=list)  # checks asked for that could not run (a library not installed): never a pass
    in_library: dict[str, Any] | None = None  # what ``verify --in-library`` measured (ckptconv.inlibrary.verdict)

    def __post_init__(self) -> None:
        """TF "same" padding equals symmetric padding where a strided convolution meets an odd size:
        the numeric check runs at even sizes, where the padding settings under test differ."""
        even = tuple(s + s % 2 for s in self.input_size)
        if even != tuple(self.input_size):
            self.notes.append(f"input {self.input_size[0]}x{self.input_size[1]} checked as {even[0]}x{even[1]}: "
                              "padding settings differ only at even sizes")
            self.input_size = even

    @property
    def settings(self) -> str:
        """The settings under test, as they apply (padding: EfficientNets only)."""
        return (f"padding={self.padding}, " if self.paddable else "") + f"eps={self.eps:g}"

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def status(self) -> str:
        """pass, FAIL, or "not checked": nothing failed, but a check asked for could not run."""
        return "FAIL" if not self.ok else "not checked" if self.not_checked else "pass"

    @property
    def first_failure(self) -> str | None:
        return next((c.detail for c in self.checks if not c.ok), None)

    def add(self, name: str, ok: bool, detail: str) -> Check:
        check = Check(name, ok, detail)
        self.checks.append(check)
        return check

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise VerificationError(self.first_failure or "verification failed", path=self.path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "arch": self.arch,
            "layout": self.layout,
            "padding": self.padding,
            "eps": self.eps,
            "input_size": list(self.input_size),
            "checks": [c.__dict__ for c in self.checks],
            "levels": [lv.__dict__ for lv in self.levels],
            "pipeline": [lv.__dict__ for lv in self.pipeline],
            "first_failure": self.first_failure,
            "notes": self.notes,
            **({"not_checked": self.not_checked} if self.not_checked else {}),
            **({"in_library": self.in_library} if self.in_library is not None else {}),
            "seconds": round(self.seconds, 4),
        }
