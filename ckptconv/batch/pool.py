"""Running a batch's jobs in worker processes: each imports torch once and converts many files. A
worker that dies (a crash in native code, the OOM killer) costs only the file it was converting."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .job import current, has_output, run_job, source_hash
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

    def finish(i: int, outcome: Outcome) -> None:
        results[i] = outcome
        on_done and on_done(jobs[i], outcome)

    todo = _judge(jobs, workers, on_start, finish) if job_fn is run_job else list(enumerate(jobs))
    workers = max(1, min(workers, len(todo)))
    if not todo:
        pass  # every output was up to date: no worker, no torch
    elif workers == 1 and job_fn is run_job:
        _init_worker(os.cpu_count() or 1, False)
        for i, job in todo:
            on_start and on_start(job)
            finish(i, job_fn(job))
    else:
        queue, suspects = todo, []
        while queue:
            crashed, queue = _pool_pass(queue, workers, job_fn, on_start, finish)
            suspects += crashed
        for i, job in suspects:  # alone now: if it dies again, it is this file
            crashed, _ = _pool_pass([(i, job)], 1, job_fn, on_start, finish)
            if crashed:
                finish(i, Outcome(job.source, job.output, "failed", layout=job.request.layout,
                                  error=f"{job.source}: the worker process died while converting this file (a crash or the OOM killer)"))
    batch.outcomes = [results[i] for i in range(len(jobs))]
    batch.seconds = time.perf_counter() - start
    return batch


def _judge(jobs: list[Job], workers: int, on_start, finish) -> list[tuple[int, Job]]:
    """Judge every job whose output exists in this process, ``workers`` threads at a time (hashing
    releases the GIL): up-to-date ones finish here; the rest go to the workers with their source's
    sha256, so no file is read twice."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, workers)) as threads:
        existing = [not job.request.force and has_output(job) for job in jobs]
        sources = sorted({job.source for job, there in zip(jobs, existing) if there})
        hashes = dict(zip(sources, threads.map(source_hash, sources)))  # each source read once
        judged = list(threads.map(lambda job, there: _current(job, hashes.get(job.source) if there else None), jobs, existing))
    todo = []
    for i, (job, outcome, there) in enumerate(zip(jobs, judged, existing)):
        hashed = hashes.get(job.source) if there else None
        if outcome is None or isinstance(outcome, Job):
            job = outcome if isinstance(outcome, Job) else job
            todo.append((i, replace(job, source_hash=hashed) if hashed else job))
        else:
            on_start and on_start(job)
            finish(i, outcome)
    return todo


def _current(job: Job, hashed) -> Outcome | Job:
    """``current``; on anything unexpected, the job with the error recorded (``surprise``): its
    worker converts it or fails it alone, and its outcome's note names the error, never hidden."""
    try:
        return current(job, hashed)
    except Exception as e:  # noqa: BLE001 - one file's surprise must not end the batch before it starts
        return replace(job, surprise=f"the check before the workers failed ({type(e).__name__}: {e}); its worker judged it afresh")


def _pool_pass(items, workers, job_fn, on_start, finish) -> tuple[list, list]:
    """Run ``items`` ((index, job) pairs) in a process pool until done or until a worker dies.

    Returns the jobs in flight when a worker died, and those not yet started.
    """
    import multiprocessing
    import sys
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    threads = max(1, (os.cpu_count() or 1) // workers)
    # fork is fast and safe while this process has not started torch's thread pools (the CLI never
    # imports torch here); a library caller that has must spawn fresh workers
    method = "fork" if "torch" not in sys.modules and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(threads, True))
    try:
        left = _drive(pool, list(items), workers, job_fn, on_start, finish, BrokenProcessPool)
    except BaseException:  # Ctrl-C, SIGTERM: stop the jobs in hand, never wait on the pool's own threads
        _stop(pool)
        raise
    pool.shutdown(wait=True)
    return left


def _drive(pool, queue, workers, job_fn, on_start, finish, broken) -> tuple[list, list]:
    """Submit ``queue`` to ``pool``, ``workers`` at a time, until done or until a worker dies."""
    from concurrent.futures import FIRST_COMPLETED, wait

    pending: dict[Any, tuple[int, Job]] = {}
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
            except broken:
                return [(i, job), *pending.values()], queue
            finish(i, outcome)
    return [], []


def _stop(pool) -> None:
    """End a pool at once: queued jobs cancelled, each worker sent SIGTERM (it removes its temp file
    and exits quietly) and reaped. The pool's shutdown(wait=True) is not waited on: its manager
    thread can wait forever on workers that ended while it was handing them work."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)
