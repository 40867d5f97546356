"""One image at a time through the installed library and through pycls, judged in two halves
(``verification.halves``): the input the library fed its network against pycls's pipeline, and the
library's outputs against pycls's model on that same input; then, end to end, the library's logits
against pycls's on pycls's own input: the top-1 and top-5 they agree on, and each side's accuracy
where the images are labelled. A failure names the image and the step (``steps``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from ..errors import CkptError
from ..model.variants import Variant
from ..tables.pipeline import Pipeline, in_order
from ..verification.halves import INPUT_TOLERANCE, LOGITS_TOLERANCE, Reference, level, normalized, rejudged
from .images import Image, ImageSet, pycls_crop, pycls_decode
from .steps import step

LOGITS = "logits"
WORST = 5  # the images with the largest differences a report lists


@dataclass(frozen=True)
class Ran:
    """What the library did with one image file."""

    decoded: torch.Tensor  # 3 x H x W uint8 RGB: the pixels its loader decoded
    input: torch.Tensor  # 3 x h x w float32: what its network took, channels in the order it takes them
    outputs: dict[str, torch.Tensor]  # pycls point ("logits", "s1", ...) -> its value, batch of 1


class Runner(Protocol):
    library: str  # the distribution: "timm"
    version: str
    how: str  # how the file was loaded, in words

    def run(self, path: Path) -> Ran: ...


@dataclass(frozen=True)
class Side:
    """pycls's side: the model on the file's weights (pycls keys, the file's channel order), the
    order they take, pycls's test sizes and its mean and std."""

    variant: Variant
    state: dict[str, torch.Tensor]
    takes: str
    stats: Pipeline

    @property
    def sizes(self) -> tuple[int, int]:
        return self.variant.test_size, self.variant.im_size

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """pycls's mean and std (0..1 units) in the order the weights take."""
        return in_order(self.stats.mean, self.stats.order, self.takes), in_order(self.stats.std, self.stats.order, self.takes)

    def input(self, bgr: torch.Tensor) -> torch.Tensor:
        """pycls's input for a 3 x H x W uint8 BGR image, channels in the order the weights take."""
        x = pycls_crop(bgr, *self.sizes) / 255.0
        return normalized(x if self.takes == "bgr" else x.flip(0), *self.mean_std())


@dataclass
class Seen:
    """One image's verdict (small: a 50,000-image folder keeps 50,000 of these)."""

    name: str
    input_off: float  # normalized units, max abs
    network_rel: float  # the library against pycls's model on the library's input, worst output
    logits_rel: float | None  # end to end: the library's logits against pycls's on pycls's input
    top1: bool | None  # the same class first
    top5: bool | None  # the same five classes, in any order
    correct: tuple[tuple[bool, bool], tuple[bool, bool]] | None  # (pycls, library) x (top-1, top-5) right, where labelled
    step: str | None = None  # what differs, where the image fails

    @property
    def ok(self) -> bool:
        return self.step is None


@dataclass
class Tally:
    images: list[Seen] = field(default_factory=list)
    points: tuple[str, ...] = ()  # what the library's outputs are, as pycls names them ("logits"; a detector's stages)
    widened: float = 0.0  # pycls's own float32 error where it widened the network half's tolerance

    @property
    def failures(self) -> list[Seen]:
        return [s for s in self.images if not s.ok]


def _top(logits: torch.Tensor, k: int) -> list[int]:
    return logits.flatten().topk(min(k, logits.numel())).indices.tolist()


def _agreement(got: torch.Tensor, want: torch.Tensor, label: int | None) -> tuple[float, bool, bool, Any]:
    d = (got.double() - want.double()).abs().max().item() / max(want.abs().max().item(), 1e-12)
    g5, w5 = _top(got, 5), _top(want, 5)
    correct = ((w5[0] == label, label in w5), (g5[0] == label, label in g5)) if label is not None else None
    return d, g5[0] == w5[0], set(g5) == set(w5), correct


def _network(name: str, ran: Ran, reference: Reference, tally: Tally) -> tuple[float, str | None]:
    """The library's outputs against pycls's model on the library's own input: worst relative, and the failure."""
    x = ran.input[None]
    want = reference(x)
    got = {p: v.detach().numpy() for p, v in ran.outputs.items()}
    levels = [level(name, p, got[p], want[p], LOGITS_TOLERANCE) for p in ran.outputs]
    tally.points = tuple(ran.outputs)
    if not all(lv.ok for lv in levels):
        levels, own = rejudged(levels, got, want, reference, x)
        tally.widened = max(tally.widened, own)
    bad = next((lv for lv in levels if not lv.ok), None)
    worst = max(lv.max_rel for lv in levels)
    if bad is None:
        return worst, None
    return worst, (f"model: on the library's own input its {bad.point} differs from pycls's model by {bad.max_rel:.3g} relative to the largest value "
                   f"(tolerance {bad.tolerance:.3g}): the model it built or the weights it loaded are not pycls's")


@torch.inference_mode()
def see(image: Image, runner: Runner, side: Side, reference: Reference, tally: Tally) -> Seen:
    """One image through both sides, judged."""
    ran = runner.run(image.path)
    bgr = pycls_decode(image.path)
    want = side.input(bgr)
    inp = level(image.name, "input", ran.input.numpy(), want, INPUT_TOLERANCE, relative=False)
    network, failure = _network(image.name, ran, reference, tally)
    if not inp.ok:
        failure = step(ran.input, ran.decoded, bgr.flip(0), side.sizes, side.takes, side.mean_std())
    logits_rel = top1 = top5 = correct = None
    if LOGITS in ran.outputs:
        logits_rel, top1, top5, correct = _agreement(ran.outputs[LOGITS], reference(want[None])[LOGITS], image.label)
    return Seen(image.name, inp.max_abs, network, logits_rel, top1, top5, correct, failure)


class ImageFailed(Exception):
    """The library (or a decoder) raised on an image: the cause is the library's own exception."""

    def __init__(self, image: str):
        super().__init__(image)
        self.image = image


def prove(runner: Runner, side: Side, images: ImageSet, progress: Callable[[int, int], None] | None = None) -> Tally:
    """Every image, streamed: ``progress(done, total)`` after each."""
    reference, tally = Reference(side.variant, side.state), Tally()
    for done, image in enumerate(images, 1):
        try:
            tally.images.append(see(image, runner, side, reference, tally))
        except CkptError:
            raise
        except Exception as e:  # the library's own exception types: what it refused is in its message
            raise ImageFailed(image.name) from e
        if progress is not None:
            progress(done, len(images))
    return tally
