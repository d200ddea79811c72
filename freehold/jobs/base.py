"""What a job kind is, and the registry of them (``freehold.jobs.kinds`` registers the built-ins)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from freehold.errors import FreeholdError, UsageError
from freehold.progress import ProgressFn
from freehold.store import Store


class JobCancelled(FreeholdError):
    """The job was asked to stop (``freehold jobs cancel``, the page's button)."""

    code = "job_cancelled"
    http_status = 409
    exit_code = 130


@dataclass(frozen=True)
class JobKind:
    """One kind of job: its typed parameters, and the library call that does the work."""

    name: str
    help: str
    params: type[Any]  # a dataclass; a job's JSON params are checked against its fields
    run: Callable[[Store, Any, ProgressFn], dict[str, Any]]  # returns what it made (names, figures)
    resumable: bool = False  # a job whose process died continues where it stopped (else it starts over)

    def parse(self, data: dict[str, Any]) -> Any:
        """The kind's params from JSON, every problem reported at once."""
        fields = {f.name: f for f in dataclasses.fields(self.params)}
        problems = [f"unknown parameter '{k}' (known: {', '.join(fields)})" for k in data if k not in fields]
        missing = [name for name, f in fields.items() if name not in data
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        problems += [f"missing parameter '{name}'" for name in missing]
        if problems:
            raise UsageError(f"invalid {self.name} job:\n  " + "\n  ".join(problems),
                             f"see the {self.name} job's parameters in the API document (/docs)")
        try:
            return self.params(**data)
        except TypeError as exc:
            raise UsageError(f"invalid {self.name} job: {exc}", "check the parameters' types") from exc


JOB_KINDS: dict[str, JobKind] = {}


def register_job_kind(kind: JobKind) -> None:
    JOB_KINDS[kind.name] = kind


def job_kind(name: str) -> JobKind:
    if name not in JOB_KINDS:
        raise UsageError(f"unknown job kind {name!r}", f"choose one of: {', '.join(sorted(JOB_KINDS))}")
    return JOB_KINDS[name]
