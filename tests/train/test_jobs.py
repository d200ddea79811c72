"""Jobs: a tune runs in the background, streams its progress, is cancelled, resumes, survives
a crash of the server under it; two jobs queue rather than run at once; bad jobs fail at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from freehold.errors import ModelNotFoundError, UsageError
from freehold.jobs import Worker, cancel, resume, submit, watch
from freehold.store import Store
from freehold.store.jobs import CANCELLED, DONE, RUNNING, Job
from tests.train.conftest import tiny_config

TUNE = {"base": "tiny", "dataset": "colours", "output": "tiny-job",
        "options": {k: v for k, v in tiny_config().to_dict().items()
                    if k in ("epochs", "lr", "lora_r", "lora_alpha", "lora_dropout", "batch_tokens", "eval_every",
                             "threads", "quant")} | {"save_every": 3}}


@pytest.fixture
def worker(tiny_store: Store) -> Iterator[Worker]:
    w = Worker(tiny_store.home, poll=0.1, grace=5).start()
    yield w
    w.stop()


def _wait(store: Store, job_id: str, until: Any, timeout: float = 240) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = store.jobs.get(job_id)
        if until(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never got there: {store.jobs.get(job_id)} (log: "
                         f"{(store.home / 'jobs' / f'{job_id}.log').read_text()[-2000:]})")


def _step(job: Job) -> int:
    event = job.last_event or {}
    return int(event.get("completed") or 0) if event.get("status") == "training" else 0


def _training_steps(store: Store, job_id: str) -> list[int]:
    return [e["completed"] for e in store.jobs.events(job_id) if e.get("status") == "training"]


def test_tune_job_streams_steps_is_cancelled_then_resumes_to_the_end(tiny_store: Store, worker: Worker) -> None:
    job = submit(tiny_store, "tune", TUNE)
    running = _wait(tiny_store, job.id, lambda j: _step(j) >= 4)
    assert running.state == RUNNING and running.pid is not None
    event = running.last_event or {}
    assert event["total"] > 4 and event["eta_s"] > 0 and "loss" in event["detail"]  # one event shape, with ETA
    cancel(tiny_store, job.id)
    stopped = _wait(tiny_store, job.id, lambda j: j.finished)
    assert stopped.state == CANCELLED and stopped.error is not None and stopped.error["code"] == "job_cancelled"
    assert not tiny_store.has("tiny-job")  # nothing half-made is visible
    checkpoints = sorted((tiny_store.home / "runs" / "tiny-job" / "checkpoints").glob("step-*"))
    assert checkpoints, "cancelling a tune keeps a checkpoint to resume from"
    before = _training_steps(tiny_store, job.id)

    resume(tiny_store, job.id)
    done = _wait(tiny_store, job.id, lambda j: j.finished)
    assert done.state == DONE, done.error
    assert done.result is not None and done.result["model"] == "tiny-job:latest"
    after = _training_steps(tiny_store, job.id)[len(before):]
    total = int(event["total"])
    assert after[-1] == total and after[0] > 1  # continued from the checkpoint, not from step 1
    assert tiny_store.has("tiny-job")


def test_a_tune_job_survives_the_server_dying_under_it(tiny_store: Store) -> None:
    from freehold.ledger.ops import verify

    first = Worker(tiny_store.home, poll=0.1).start()
    job = submit(tiny_store, "tune", TUNE)
    _wait(tiny_store, job.id, lambda j: _step(j) >= 5)  # past the checkpoint at step 3
    first.stop(crash=True)  # SIGKILL: no checkpoint, no final state
    crashed = tiny_store.jobs.get(job.id)
    assert crashed.state == RUNNING
    second = Worker(tiny_store.home, poll=0.1).start()  # as a restarted server does
    try:
        done = _wait(tiny_store, job.id, lambda j: j.finished)
    finally:
        second.stop()
    assert done.state == DONE and done.attempts == 2 and done.params["resume"] is True
    assert verify(tiny_store, "tiny-job").ok  # the resumed run's ledger checks out


def test_two_jobs_queue_rather_than_run_at_once(tiny_store: Store, tiny_gguf: Path) -> None:
    from freehold.home import import_model

    import_model(tiny_store, tiny_gguf, "tiny2")
    a = submit(tiny_store, "verify", {"name": "tiny"})
    b = submit(tiny_store, "verify", {"name": "tiny2"})
    worker = Worker(tiny_store.home, poll=0.1).start()
    try:
        ends = [_wait(tiny_store, j.id, lambda j: j.finished) for j in (a, b)]
    finally:
        worker.stop()
    assert [j.state for j in ends] == [DONE, DONE]
    assert ends[0].finished_at is not None and ends[1].started_at is not None
    assert ends[1].started_at >= ends[0].finished_at  # the second waited for the first
    assert ends[0].result is not None and ends[0].result["ok"] and ends[0].result["name"] == "tiny:latest"
    events = list(watch(tiny_store, a.id))
    assert events[-1]["state"] == DONE and any(e.get("status") for e in events[:-1])


def test_a_bad_job_fails_when_asked_not_later(tiny_store: Store) -> None:
    with pytest.raises(UsageError, match="unknown job kind"):
        submit(tiny_store, "train", {})
    with pytest.raises(UsageError, match="missing parameter 'output'") as missing:
        submit(tiny_store, "tune", {"base": "tiny", "dataset": "colours", "epochs": 2})
    assert "unknown parameter 'epochs'" in missing.value.message  # every problem at once
    with pytest.raises(ModelNotFoundError):
        submit(tiny_store, "tune", {**TUNE, "base": "ghost"})
    with pytest.raises(UsageError, match="lr"):
        submit(tiny_store, "tune", {**TUNE, "options": {"lr": -1}})
    with pytest.raises(UsageError, match="unknown tune option"):
        submit(tiny_store, "tune", {**TUNE, "options": {"learning_rate": 1e-3}})
    assert tiny_store.jobs.list() == []  # nothing was queued
    queued = submit(tiny_store, "verify", {"name": "tiny"})
    assert cancel(tiny_store, queued.id).state == CANCELLED  # a queued job is cancelled at once
    with pytest.raises(UsageError, match="already ended"):
        cancel(tiny_store, queued.id)
    with pytest.raises(UsageError, match="cannot be resumed"):
        resume(tiny_store, queued.id)
    with pytest.raises(ModelNotFoundError, match="job 'nope' not found"):
        tiny_store.jobs.get("nope")
