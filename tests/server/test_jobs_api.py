"""The native jobs API over HTTP, and `freehold jobs` against the same table."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from freehold.cli import main

from .conftest import Live


def _sse(url: str) -> list[tuple[str, dict]]:
    """(event name, data) of each server-sent event until the stream ends."""
    out, name = [], "message"
    with httpx.stream("GET", url, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                out.append((name, json.loads(line[6:])))
                name = "message"
    return out


def test_a_job_submitted_over_http_streams_its_events_and_ends(live: Live, tiny_gguf: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from freehold.home import import_model

    import_model(live.store, tiny_gguf, "recorded")  # with its import record, so verify has a lineage
    r = httpx.post(live.url + "/freehold/jobs", json={"kind": "verify", "params": {"name": "recorded"}})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["state"] == "queued" and job["kind"] == "verify"
    events = _sse(f"{live.url}/freehold/jobs/{job['id']}/events")
    assert events[-1][0] == "end" and events[-1][1]["state"] == "done"
    assert events[-1][1]["result"]["ok"] is True and events[-1][1]["result"]["name"] == "recorded:latest"
    progress = [d for name, d in events if name == "message"]
    assert progress and all(d["job"] == job["id"] and "status" in d for d in progress)
    assert [d["seq"] for d in progress] == sorted(d["seq"] for d in progress)
    again = _sse(f"{live.url}/freehold/jobs/{job['id']}/events?after={progress[-1]['seq']}")
    assert [name for name, _ in again] == ["end"]  # a reconnect from the last id misses nothing, repeats nothing
    listed = httpx.get(live.url + "/freehold/jobs?all=true").json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert httpx.get(live.url + "/freehold/jobs").json()["jobs"] == []  # by default, the live ones only

    # the CLI sees the same job in the same table
    assert main(["jobs", "--all"]) == 0
    out = capsys.readouterr().out
    assert job["id"] in out and "done" in out
    assert main(["jobs", "watch", job["id"][-6:], "--json"]) == 0  # a unique part of the id is enough
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[-1]["state"] == "done"
    assert main(["jobs", "cancel", job["id"]]) == 2
    assert "already ended" in capsys.readouterr().err

    paths = httpx.get(live.url + "/openapi.json").json()["paths"]
    assert {"/freehold/jobs", "/freehold/jobs/{job_id}", "/freehold/jobs/{job_id}/events"} <= set(paths)


def test_bad_job_requests_are_4xx_with_the_error_code(live: Live) -> None:
    r = httpx.post(live.url + "/freehold/jobs", json={"kind": "train", "params": {}})
    assert r.status_code == 400 and r.json()["error"]["freehold"]["code"] == "invalid_request"
    assert "unknown job kind" in r.json()["error"]["message"]
    r = httpx.post(live.url + "/freehold/jobs", json={"kind": "verify", "params": {"name": "ghost"}})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = httpx.get(live.url + "/freehold/jobs/nope")
    assert r.status_code == 404 and r.json()["error"]["freehold"]["details"]["kind"] == "job"
    r = httpx.get(live.url + "/freehold/jobs/nope/events")
    assert r.status_code == 404
    assert httpx.get(live.url + "/freehold/jobs?all=true").json()["jobs"] == []  # nothing was queued
