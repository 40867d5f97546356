"""Running a batch's jobs in worker processes: each imports torch once and converts many files. A
worker that dies (a crash in native code, the OOM killer) costs only the file it was converting."""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from .job import run_job
from .plan import Batch, Job, Outcome


def _init_worker(threads: int, worker: bool = True) -> None:
    from ..signals import import_torch, install_worker
    from ..tables.registry import read_afresh

    if worker:
        install_worker()
    import_torch()
    import torch

    torch.set_num_threads(threads)
    read_afresh()  # a new run: read the tables afresh


def run(
    jobs: list[Job],
    *,
    workers: int,
    on_start: Callable[[Job], None] | None = None,
    on_done: Callable[[Job, Outcome], None] | None = None,
    job_fn: Callable[[Job], Outcome] = run_job,
) -> Batch:
    """Convert every job, ``workers`` at a time; outcomes in job order.

    A worker that dies takes down the pool and whatever was in flight: those jobs are run again one
    at a time, so a file that kills its worker is the only one to fail for it.
    """
    start = time.perf_counter()
    batch = Batch(jobs)
    results: dict[int, Outcome] = {}
    workers = max(1, min(workers, len(jobs)))

    def finish(i: int, outcome: Outcome) -> None:
        results[i] = outcome
        on_done and on_done(jobs[i], outcome)

    if workers == 1 and job_fn is run_job:
        _init_worker(os.cpu_count() or 1, False)
        for i, job in enumerate(jobs):
            on_start and on_start(job)
            finish(i, job_fn(job))
    else:
        queue, suspects = list(enumerate(jobs)), []
        while queue:
            crashed, queue = _pool_pass(queue, workers, job_fn, on_start, finish)
            suspects += crashed
        for i, job in suspects:  # alone now: if it dies again, it is this file
            crashed, _ = _pool_pass([(i, job)], 1, job_fn, on_start, finish)
            if crashed:
                finish(i, Outcome(job.source, job.output, "failed", layout=job.request.layout,
                                  error=f"{job.source}: the worker process died while converting this file (a crash or the OOM killer)"))  # fmt: skip
    batch.outcomes = [results[i] for i in range(len(jobs))]
    batch.seconds = time.perf_counter() - start
    return batch


def _pool_pass(items, workers, job_fn, on_start, finish) -> tuple[list, list]:
    """Run ``items`` ((index, job) pairs) in a process pool until done or until a worker dies.

    Returns the jobs in flight when a worker died, and those not yet started.
    """
    import multiprocessing
    import sys
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    threads = max(1, (os.cpu_count() or 1) // workers)
    # fork is fast and safe while this process has not started torch's thread pools (the CLI never
    # imports torch here); a library caller that has must spawn fresh workers
    method = "fork" if "torch" not in sys.modules and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    queue = list(items)
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(threads, True)) as pool:
        pending: dict[Any, tuple[int, Job]] = {}
        try:
            while queue or pending:
                while queue and len(pending) < workers:
                    i, job = queue.pop(0)
                    on_start and on_start(job)
                    pending[pool.submit(job_fn, job)] = (i, job)
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    i, job = pending.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        return [(i, job), *pending.values()], queue
                    finish(i, outcome)
        except BaseException:
            for future in pending:
                future.cancel()
            for process in list(getattr(pool, "_processes", {}).values()):  # stop the jobs in hand:
                process.terminate()  # SIGTERM; each worker removes its temp file and exits quietly
            raise
    return [], []
