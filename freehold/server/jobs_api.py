"""The native jobs API (/freehold/jobs): what ``freehold jobs`` and the pages do, over HTTP.

    POST /freehold/jobs {"kind": "tune", "params": {...}}   -> 201, the job (queued)
    GET  /freehold/jobs[?all=true]                          -> the jobs
    GET  /freehold/jobs/{id}                                -> one job, with its last event
    GET  /freehold/jobs/{id}/events[?after=N]               -> Server-Sent Events until it ends
    POST /freehold/jobs/{id}/cancel, /freehold/jobs/{id}/resume
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from freehold import jobs
from freehold.store.jobs import QUEUED, RUNNING, STATES

router = APIRouter(prefix="/freehold", tags=["jobs"])


class JobRequest(BaseModel):
    kind: str = Field(..., description="import, tune, eval, export or verify")
    params: dict[str, Any] = Field(default_factory=dict, description="the kind's parameters (see freehold.jobs.kinds)")


def _store(request: Request) -> Any:
    return request.app.state.freehold.store


@router.post("/jobs", status_code=201)
async def submit_job(body: JobRequest, request: Request) -> Any:
    job = await run_in_threadpool(jobs.submit, _store(request), body.kind, body.params)
    return JSONResponse(job.to_dict(), status_code=201)


@router.get("/jobs")
async def list_jobs(request: Request, ended: bool = Query(False, alias="all", description="also ended jobs")) -> Any:
    found = await run_in_threadpool(_store(request).jobs.list, STATES if ended else (QUEUED, RUNNING))
    return {"jobs": [j.to_dict() for j in found]}


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, request: Request) -> Any:
    return (await run_in_threadpool(_store(request).jobs.get, job_id)).to_dict()


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, request: Request) -> Any:
    return (await run_in_threadpool(jobs.cancel, _store(request), job_id)).to_dict()


@router.post("/jobs/{job_id}/resume")
async def resume_job(job_id: str, request: Request) -> Any:
    return (await run_in_threadpool(jobs.resume, _store(request), job_id)).to_dict()


@router.get("/jobs/{job_id}/events")
async def job_events(job_id: str, request: Request, after: int = 0) -> Any:
    """Each progress event as an SSE ``data:`` line (its ``seq`` as the event id, so a client
    that reconnects with ``Last-Event-ID`` or ``?after=`` misses nothing); ``event: end`` last."""
    store = _store(request)
    job = await run_in_threadpool(store.jobs.get, job_id)  # a 404 now, not inside the stream
    start = int(request.headers.get("last-event-id") or after)

    async def events() -> AsyncIterator[str]:
        seen = start
        while True:
            batch = await run_in_threadpool(store.jobs.events, job.id, seen)
            for event in batch:
                seen = event["seq"]
                yield f"id: {seen}\ndata: {json.dumps(event)}\n\n"
            current = await run_in_threadpool(store.jobs.get, job.id)
            if current.finished and not batch:
                yield f"event: end\ndata: {json.dumps(current.to_dict())}\n\n"
                return
            if await request.is_disconnected():
                return
            if not batch:
                await asyncio.sleep(0.25)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
