"""Jobs: long operations (data import, tune, eval, export, verify) run in the background.

    job = submit(store, "tune", {"base": "smollm2", "dataset": "support", "output": "acme"})
    for event in watch(store, job.id):     # progress events: job, seq, status, total, completed, eta_s
        ...
    cancel(store, job.id)                  # cooperative: a tune checkpoints first

A job is a row in the store's catalog (``freehold.store.jobs``). The server's ``Worker`` runs
one at a time (a small machine has no cores for two), each in its own process
(``python -m freehold.jobs run ID``): a crash or an out-of-memory kill takes the job, not the
server, and a tune's memory is returned when it ends. A job whose process died with the server
is queued again when the next worker starts; a tune then resumes from its last checkpoint.
Kinds are registered in ``JOB_KINDS`` (``register_job_kind``), like engine backends and suites.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from freehold.errors import FreeholdError, UsageError
from freehold.jobs import kinds as _builtin_kinds  # noqa: F401 - registers the built-in kinds
from freehold.jobs.base import JOB_KINDS, JobCancelled, JobKind, job_kind, register_job_kind
from freehold.progress import Progress
from freehold.store import Store
from freehold.store.blobs import pid_alive
from freehold.store.jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, Job

__all__ = ["CANCELLED", "DONE", "FAILED", "JOB_KINDS", "QUEUED", "RUNNING", "Job", "JobCancelled", "JobKind",
           "Worker", "cancel", "register_job_kind", "resume", "run_job", "submit", "watch"]


# asking -----------------------------------------------------------------------------------
def submit(store: Store, kind: str, params: dict[str, Any]) -> Job:
    """Queue a job; its parameters are checked now, so a bad request fails here, not later."""
    spec = job_kind(kind)
    parsed = spec.parse(params)
    check = getattr(parsed, "check", None)
    if check is not None:
        check(store)  # what can be known before it runs (the model exists, the name is free, ...)
    return store.jobs.add(kind, dataclasses.asdict(parsed))


def cancel(store: Store, job_id: str) -> Job:
    """Ask a job to stop: a queued one is cancelled at once, a running one at its next step."""
    job = store.jobs.get(job_id)
    if job.finished:
        raise UsageError(f"job {job.id} already ended ({job.state})", "nothing to cancel")
    store.jobs.request_cancel(job.id)
    return store.jobs.get(job.id)


def resume(store: Store, job_id: str) -> Job:
    """Queue a cancelled or failed resumable job again; a tune continues from its checkpoint."""
    job = store.jobs.get(job_id)
    spec = job_kind(job.kind)
    if job.state not in (CANCELLED, FAILED):
        raise UsageError(f"job {job.id} is {job.state}", "only a cancelled or failed job can be resumed")
    if not spec.resumable:
        raise UsageError(f"a {job.kind} job cannot be resumed", f"submit a new {job.kind} job")
    store.jobs.requeue(job.id, {**job.params, "resume": True})
    return store.jobs.get(job.id)


def watch(store: Store, job_id: str, poll: float = 0.25, after: int = 0) -> Iterator[dict[str, Any]]:
    """The job's progress events as they come (from any process), until it ends; the last item
    is ``{"job", "state", "result", "error"}``."""
    job = store.jobs.get(job_id)
    while True:
        events = store.jobs.events(job.id, after)
        for event in events:
            after = event["seq"]
            yield event
        current = store.jobs.get(job.id)
        if current.finished and not events:
            yield {"job": current.id, "state": current.state, "result": current.result, "error": current.error}
            return
        if not events:
            time.sleep(poll)


# running ----------------------------------------------------------------------------------
class _Reporter:
    """The job's ProgressFn: stores events (at most a few a second, every stage change and
    every stage's end), adds an ETA where the stage has none, and raises ``JobCancelled``
    once a cancel was asked for, so every long operation stops at its next event."""

    def __init__(self, store: Store, job_id: str, interval: float = 0.25) -> None:
        self.store, self.job_id, self.interval = store, job_id, interval
        self.stage: str | None = None
        self.stage_start = (0.0, 0)  # (time, completed) when the stage began counting
        self.last_write = 0.0
        self.last_check = 0.0

    def __call__(self, event: Progress) -> None:
        now = time.monotonic()
        new_stage = event.status != self.stage
        if new_stage:
            self.stage, self.stage_start = event.status, (now, event.completed or 0)
        eta = event.eta_s
        if eta is None and event.total and event.completed is not None:
            t0, c0 = self.stage_start
            done = event.completed - c0
            if done > 0:
                eta = (now - t0) / done * (event.total - event.completed)
        final = event.total is not None and event.completed == event.total
        if new_stage or final or now - self.last_write >= self.interval:
            self.store.jobs.add_event(self.job_id, dataclasses.replace(event, eta_s=eta).to_dict())
            self.last_write = now
        if now - self.last_check >= self.interval:
            self.last_check = now
            if self.store.jobs.cancel_requested(self.job_id):
                raise JobCancelled(f"job {self.job_id} was cancelled", None)


def run_job(store: Store, job_id: str) -> Job:
    """Run a claimed job here and record how it ended (the body of the job's process)."""
    job = store.jobs.get(job_id)
    spec = job_kind(job.kind)
    reporter = _Reporter(store, job.id)
    try:
        with _sigterm_cancels(job.id):
            result = spec.run(store, spec.parse(job.params), reporter)
    except FreeholdError as exc:
        cancelled = isinstance(exc, JobCancelled) or store.jobs.cancel_requested(job.id)
        store.jobs.finish(job.id, CANCELLED if cancelled else FAILED, error=exc.to_dict())
    except Exception as exc:  # a bug: recorded as a failure with its type, never lost
        store.jobs.finish(job.id, FAILED, error={
            "code": "unexpected", "message": f"unexpected {type(exc).__name__}: {exc}",
            "hint": "this is a bug in Freehold; the job's log has the traceback", "details": {}})
        raise
    else:
        store.jobs.finish(job.id, DONE, result=result)
    return store.jobs.get(job.id)


class _sigterm_cancels:
    """SIGTERM (the worker's cancel of a job that emits no events) raises JobCancelled in the
    job's main thread, so its files are cleaned up on the way out; a tune's own handler
    checkpoints first while it trains."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.old: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        raise JobCancelled(f"job {self.job_id} was cancelled", None)

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGTERM, self._handle)

    def __exit__(self, *exc: object) -> None:
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)


class Worker:
    """Runs queued jobs one at a time, each in a child process, in a thread of the server.

    On start, jobs left running by a process that is gone are queued again (with
    ``resume=True`` for resumable kinds). A cancel asked of a running job is passed on as
    SIGTERM when the job has not stopped by itself within ``grace`` seconds. When the server
    stops, the running job is stopped the same way (a tune checkpoints) and queued again."""

    def __init__(self, home: Path, poll: float = 0.5, grace: float = 20.0) -> None:
        self.home, self.poll, self.grace = home, poll, grace
        self._stop = threading.Event()
        self._crash = False
        self._thread: threading.Thread | None = None

    def start(self) -> Worker:
        with _open(self.home) as store:
            recover(store)
        self._thread = threading.Thread(target=self._loop, name="freehold-jobs", daemon=True)
        self._thread.start()
        return self

    def stop(self, crash: bool = False) -> None:
        """Stop taking jobs; the running one is stopped and queued again. ``crash``: SIGKILL it
        and leave its row as a crash would (what the next ``start`` recovers; for tests)."""
        self._crash = crash
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)

    def _loop(self) -> None:
        with _open(self.home) as store:
            while not self._stop.is_set():
                busy = any(j.pid is not None and pid_alive(j.pid) for j in store.jobs.list([RUNNING]))
                job = None if busy else store.jobs.next_queued()  # one job at a time, also one left by a crash
                if job is None or not store.jobs.claim(job.id, os.getpid()):
                    self._stop.wait(self.poll)
                    continue
                self._run(store, job)

    def _run(self, store: Store, job: Job) -> None:
        log = self.home / "jobs" / f"{job.id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, FREEHOLD_HOME=str(self.home))
        with log.open("ab") as out:
            child = subprocess.Popen([sys.executable, "-m", "freehold.jobs", "run", job.id], stdout=out,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        store.jobs.set_pid(job.id, child.pid)
        asked_at: float | None = None
        while child.poll() is None:
            if self._stop.wait(self.poll):
                self._leave(store, job, child)
                return
            if asked_at is None and store.jobs.cancel_requested(job.id):
                asked_at = time.monotonic()
            elif asked_at is not None and time.monotonic() - asked_at > self.grace:
                late = time.monotonic() - asked_at > 3 * self.grace
                child.send_signal(signal.SIGKILL if late else signal.SIGTERM)
        # A process that died without saying how the job ended (still 'running' in it):
        code = child.returncode
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
        state = CANCELLED if store.jobs.cancel_requested(job.id) else FAILED
        store.jobs.finish(job.id, state, running_in=child.pid, error={
            "code": "job_died", "message": f"the job's process ended ({how}) before the job did",
            "hint": f"see its log: {log}", "details": {"returncode": code}})

    def _leave(self, store: Store, job: Job, child: subprocess.Popen[bytes]) -> None:
        """The server stops under a running job."""
        if self._crash:
            child.kill()
            child.wait()
            return
        child.terminate()  # a tune checkpoints and stops; other kinds clean up and stop
        try:
            child.wait(timeout=90)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if not store.jobs.cancel_requested(job.id):
            spec = job_kind(job.kind)
            store.jobs.requeue(job.id, {**job.params, "resume": True} if spec.resumable else job.params)


def recover(store: Store) -> list[Job]:
    """Queue again the jobs whose process is gone (the server stopped or crashed under them)."""
    requeued = []
    for job in store.jobs.list([RUNNING]):
        if job.pid is not None and pid_alive(job.pid):
            continue
        spec = job_kind(job.kind)
        params = {**job.params, "resume": True} if spec.resumable else job.params
        store.jobs.requeue(job.id, params)
        requeued.append(store.jobs.get(job.id))
    return requeued


def _open(home: Path) -> contextlib.closing[Store]:
    return contextlib.closing(Store(home))


def main(argv: list[str]) -> int:
    """``python -m freehold.jobs run ID``: run one claimed job (the worker starts this)."""
    if len(argv) != 2 or argv[0] != "run":
        print("usage: python -m freehold.jobs run JOB_ID", file=sys.stderr)
        return 2
    from freehold.config import load_settings

    with _open(load_settings().home) as store:
        job = run_job(store, argv[1])
    return 0 if job.state == DONE else 1
