"""One share of a batch, so that a cluster's array jobs convert a zoo or a sweep with no
coordinator: every job plans the same batch and converts the jobs its share holds. A job belongs
to share ``hash(its output path inside --out-dir) mod N``: shares are disjoint, cover the plan, and
a job keeps its share when inputs are added. torch-free."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

MAX_SHARES = 100_000


@dataclass(frozen=True)
class Shard:
    """Share ``index`` (0-based) of ``count``, and what said so (``--shard`` or the array's variable)."""

    index: int
    count: int
    given_by: str

    def holds(self, key: str) -> bool:
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def record(self) -> dict:
        return {"index": self.index + 1, "count": self.count, "given_by": self.given_by}


def _shard(index: int, count: int, given_by: str) -> Shard:
    if not 1 <= count <= MAX_SHARES or not 0 <= index < count:
        raise UsageError(f"{given_by} gives share {index + 1} of {count}", fix=f"shares are 1 ... N with N at most {MAX_SHARES}, e.g. --shard 3/8")
    return Shard(index, count, given_by)


def _integer(environ: Mapping[str, str], name: str) -> int:
    value = environ[name]
    if not re.fullmatch(r"\d{1,9}", value):
        raise UsageError(f"{name}={value!r} is not a task index or count", fix="pass --shard K/N")
    return int(value)


def resolve(text: str | None, environ: Mapping[str, str] = os.environ) -> Shard | None:
    """``--shard K/N`` (K from 1); else a Slurm array task (SLURM_ARRAY_TASK_ID from
    SLURM_ARRAY_TASK_MIN, of SLURM_ARRAY_TASK_COUNT); else a Kubernetes Indexed Job
    (JOB_COMPLETION_INDEX, from 0, of CKPTCONV_SHARD_COUNT: Kubernetes sets no count); else None."""
    if text is not None:
        m = re.fullmatch(r"(\d{1,6})/(\d{1,6})", text)
        if not m:
            raise UsageError(f"--shard {text!r} is not K/N", fix="e.g. --shard 3/8: the third of eight shares")
        return _shard(int(m.group(1)) - 1, int(m.group(2)), "--shard")
    if "SLURM_ARRAY_TASK_ID" in environ and "SLURM_ARRAY_TASK_COUNT" in environ:
        first = _integer(environ, "SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in environ else 0
        return _shard(_integer(environ, "SLURM_ARRAY_TASK_ID") - first, _integer(environ, "SLURM_ARRAY_TASK_COUNT"), "SLURM_ARRAY_TASK_ID")
    if "JOB_COMPLETION_INDEX" in environ and "CKPTCONV_SHARD_COUNT" in environ:
        return _shard(_integer(environ, "JOB_COMPLETION_INDEX"), _integer(environ, "CKPTCONV_SHARD_COUNT"), "JOB_COMPLETION_INDEX")
    return None


def share(jobs: list, shard: Shard | None, out_dir: Path) -> list:
    """The jobs of the plan this shard converts (all of them without a shard)."""
    if shard is None:
        return jobs
    return [j for j in jobs if shard.holds(os.path.relpath(j.output, out_dir))]
