"""One exception tree for Freehold. Every message says what is wrong and how to fix it.

    FreeholdError
    ├── UsageError              bad arguments or input the user can correct
    ├── ModelNotFoundError      unknown model name (lists close names)
    ├── InvalidModelError       corrupt, truncated or unsupported model files
    ├── StoreError              the store on disk cannot be used
    │   ├── StoreReadOnlyError
    │   └── StoreFullError
    ├── EngineError             the inference engine failed
    │   ├── ContextOverflowError   prompt longer than the context window
    │   ├── NoChatTemplateError    chat asked of a base model without a template
    │   └── ServerBusyError        the server's waiting queue is full (HTTP 503, Retry-After)
    ├── DependencyError         an optional package is missing
    ├── TrainingError           fine-tuning or export cannot start or finish
    │   └── TrainingInterrupted    stopped by a signal after a checkpoint (exit 130)
    ├── EvalError               an evaluation cannot run (missing eval data, bad prompt file, ...)
    ├── RegistryError           a push or pull, or a request to the registry (/v2/), failed
    ├── ToolServerError         an MCP server a chat uses for tools failed, hung or is not configured
    ├── ModelFlaggedError       deploying a model with an open high-severity audit flag (needs an override)
    ├── LicenceError            a derivative's licence label would drop what it inherited
    │   ├── LicenceNotAcceptedError  serving a model whose restrictive licence nobody accepted here
    │   └── UseNotPermittedError     the server's declared use is one the model's licence forbids
    └── LedgerError             the ledger cannot be read or written
        └── VerificationError   a record, signature, digest or proof does not check out

The CLI prints ``str(error)`` without a traceback (``--debug`` shows one). Each class has
a ``code`` (a stable string) and an ``http_status``; the server sends ``to_dict()`` in its
JSON errors and ``from_dict`` turns that back into the same class on the client's side, so
an error that crossed HTTP is the same fix-it error as one raised in process.
"""

from __future__ import annotations

from typing import Any, ClassVar


class FreeholdError(Exception):
    """Base class. ``hint`` says how to fix the problem."""

    exit_code = 1
    code: ClassVar[str] = "freehold_error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message

    def details(self) -> dict[str, Any]:
        """The fields beyond message and hint that rebuild this error (``from_dict``)."""
        return {}

    @classmethod
    def rebuild(cls, message: str, hint: str | None, details: dict[str, Any]) -> FreeholdError:
        return cls(message, hint)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "hint": self.hint, "details": self.details()}


class UsageError(FreeholdError):
    exit_code = 2
    code = "invalid_request"
    http_status = 400


class ModelNotFoundError(FreeholdError):
    code = "model_not_found"
    http_status = 404

    def __init__(self, name: str, close: list[str] | None = None, hint: str | None = None,
                 kind: str = "model") -> None:
        self.name = name
        self.kind = kind
        self.close = close or []
        if hint is None and self.close:
            hint = f"did you mean: {', '.join(self.close)}?"
        elif hint is None and kind == "model":
            hint = "run 'freehold models' to list models, or 'freehold import FILE.gguf --name NAME'"
        elif hint is None:
            hint = f"run 'freehold {kind if kind != 'dataset' else 'data'} ls' to list what exists"
        super().__init__(f"{kind} '{name}' not found", hint)

    def details(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "close": self.close}

    @classmethod
    def rebuild(cls, message: str, hint: str | None, details: dict[str, Any]) -> FreeholdError:
        return cls(str(details.get("name", "")), list(details.get("close") or []), hint,
                   str(details.get("kind") or "model"))


class InvalidModelError(FreeholdError):
    code = "invalid_model"
    http_status = 422


class StoreError(FreeholdError):
    code = "store_error"


class StoreReadOnlyError(StoreError):
    code = "store_read_only"


class StoreFullError(StoreError):
    code = "store_full"
    http_status = 507


class EngineError(FreeholdError):
    code = "engine_error"


class ContextOverflowError(EngineError):
    code = "context_length_exceeded"  # OpenAI's code for the same error
    http_status = 400

    def __init__(self, n_prompt: int, n_ctx: int, hint: str | None = None) -> None:
        self.n_prompt = n_prompt
        self.n_ctx = n_ctx
        super().__init__(
            f"prompt is {n_prompt} tokens but the context window is {n_ctx} tokens",
            hint or "shorten the prompt, or raise the context with --ctx / FREEHOLD_CONTEXT "
            "(up to the model's trained context length)",
        )

    def details(self) -> dict[str, Any]:
        return {"n_prompt": self.n_prompt, "n_ctx": self.n_ctx}

    @classmethod
    def rebuild(cls, message: str, hint: str | None, details: dict[str, Any]) -> FreeholdError:
        return cls(int(details.get("n_prompt", 0)), int(details.get("n_ctx", 0)), hint)


class NoChatTemplateError(EngineError):
    code = "no_chat_template"
    http_status = 400


class ServerBusyError(EngineError):
    """The waiting queue is full (HTTP 503 with Retry-After)."""

    code = "server_busy"
    http_status = 503

    def __init__(self, queued: int, hint: str | None = None) -> None:
        self.queued = queued
        super().__init__(f"the server is busy: {queued} requests are already waiting",
                         hint or "retry in a few seconds, or start the server with more --slots / --max-queue")

    def details(self) -> dict[str, Any]:
        return {"queued": self.queued}

    @classmethod
    def rebuild(cls, message: str, hint: str | None, details: dict[str, Any]) -> FreeholdError:
        return cls(int(details.get("queued", 0)), hint)


class DependencyError(FreeholdError):
    code = "missing_dependency"
    http_status = 422


class LedgerError(FreeholdError):
    code = "ledger_error"


class VerificationError(LedgerError):
    """Verification failed; ``record`` is the 1-based number of the first bad record, if known."""

    exit_code = 3
    code = "verification_failed"
    http_status = 422

    def __init__(self, message: str, hint: str | None = None, record: int | None = None) -> None:
        super().__init__(message, hint)
        self.record = record

    def details(self) -> dict[str, Any]:
        return {"record": self.record}

    @classmethod
    def rebuild(cls, message: str, hint: str | None, details: dict[str, Any]) -> FreeholdError:
        record = details.get("record")
        return cls(message, hint, int(record) if record is not None else None)


class TrainingError(FreeholdError):
    """Fine-tuning or export could not start or finish (bad data for the model, no memory, ...)."""

    code = "training_error"


class TrainingInterrupted(TrainingError):
    """A run stopped on SIGINT/SIGTERM after saving a checkpoint; ``--resume`` continues it."""

    exit_code = 130
    code = "training_interrupted"


class EvalError(FreeholdError):
    """An evaluation could not run: eval data missing or malformed, a suite unknown, ..."""

    code = "eval_error"
    http_status = 422


class RegistryError(FreeholdError):
    """A registry request or transfer failed. ``oci_code`` is the OCI distribution spec's error
    code (BLOB_UNKNOWN, DIGEST_INVALID, NAME_UNKNOWN, ...) and ``status`` its HTTP status."""

    code = "registry_error"
    http_status = 400

    def __init__(self, message: str, hint: str | None = None, oci_code: str = "UNSUPPORTED",
                 status: int = 400) -> None:
        super().__init__(message, hint)
        self.oci_code = oci_code
        self.status = status

    def details(self) -> dict[str, Any]:
        return {"oci_code": self.oci_code, "status": self.status}

    @classmethod
    def rebuild(cls, message: str, hint: str | None, details: dict[str, Any]) -> FreeholdError:
        return cls(message, hint, str(details.get("oci_code", "UNSUPPORTED")), int(details.get("status", 400)))


class ToolServerError(FreeholdError):
    """An MCP server the server runs tools on (mcp.json) could not start, crashed, or did not
    answer in time; or a request named one that is not configured (``status`` 400)."""

    code = "tool_server_failed"
    http_status = 502

    def __init__(self, message: str, hint: str | None = None, status: int = 502) -> None:
        super().__init__(message, hint)
        self.status = status

    def details(self) -> dict[str, Any]:
        return {"status": self.status}

    @classmethod
    def rebuild(cls, message: str, hint: str | None, details: dict[str, Any]) -> FreeholdError:
        return cls(message, hint, int(details.get("status", 502)))


class ModelFlaggedError(FreeholdError):
    """A model someone flagged (a high-severity audit) was about to be deployed without an override."""

    code = "model_flagged"
    http_status = 409

    def __init__(self, name: str, flags: list[str], hint: str | None = None) -> None:
        self.name = name
        self.flags = flags
        super().__init__(f"{name} has an open high-severity flag: {flags[0] if flags else 'see its audits'}"
                         + (f" (and {len(flags) - 1} more)" if len(flags) > 1 else ""),
                         hint or f"read its audits ('freehold show {name}' or its page); to deploy it anyway, "
                         "confirm the override (the API's override=true), which the ledger records")

    def details(self) -> dict[str, Any]:
        return {"name": self.name, "flags": self.flags}

    @classmethod
    def rebuild(cls, message: str, hint: str | None, details: dict[str, Any]) -> FreeholdError:
        return cls(str(details.get("name", "")), [str(f) for f in details.get("flags", [])], hint)


class LicenceError(FreeholdError):
    code = "licence_error"
    http_status = 400


class LicenceNotAcceptedError(LicenceError):
    """A model whose licence restricts use was about to be served before anyone here accepted it."""

    code = "licence_not_accepted"
    http_status = 403

    def __init__(self, name: str, licence: str, restrictions: list[str], hint: str | None = None) -> None:
        self.name, self.licence, self.restrictions = name, licence, restrictions
        first = f": {restrictions[0]}" if restrictions else ""
        super().__init__(f"{name} is under the {licence}, which restricts how it may be used{first}; "
                         "it is served only once its licence is accepted",
                         hint or f"read the terms ('freehold show {name} --license'), then accept them once: "
                         f"'freehold licence accept {name}' (or the model page's Accept button); the ledger "
                         "records who accepted which terms")

    def details(self) -> dict[str, Any]:
        return {"name": self.name, "licence": self.licence, "restrictions": self.restrictions}

    @classmethod
    def rebuild(cls, message: str, hint: str | None, details: dict[str, Any]) -> FreeholdError:
        return cls(str(details.get("name", "")), str(details.get("licence", "")),
                   [str(r) for r in details.get("restrictions", [])], hint)


class UseNotPermittedError(LicenceError):
    """The use a server declared (``--declare-use``) is one the model's licence forbids."""

    code = "use_not_permitted"
    http_status = 403

    def __init__(self, name: str, use: str, licence: str, clause: str, hint: str | None = None) -> None:
        self.name, self.use, self.licence, self.clause = name, use, licence, clause
        super().__init__(f"{name} may not be served for {use} use: its licence {licence} forbids it ({clause})",
                         hint or "serve another model, or declare the use that applies: "
                         "'freehold serve --declare-use research|personal'")

    def details(self) -> dict[str, Any]:
        return {"name": self.name, "use": self.use, "licence": self.licence, "clause": self.clause}

    @classmethod
    def rebuild(cls, message: str, hint: str | None, details: dict[str, Any]) -> FreeholdError:
        return cls(str(details.get("name", "")), str(details.get("use", "")), str(details.get("licence", "")),
                   str(details.get("clause", "")), hint)


def _classes(root: type[FreeholdError]) -> list[type[FreeholdError]]:
    return [root, *(c for sub in root.__subclasses__() for c in _classes(sub))]


def error_class(code: str) -> type[FreeholdError] | None:
    """The class whose ``code`` this is (every subclass, also ones defined outside this module)."""
    return next((c for c in _classes(FreeholdError) if c.code == code), None)


def from_dict(data: dict[str, Any], status: int = 500) -> FreeholdError:
    """The error ``FreeholdError.to_dict`` described; an unknown code (another server, a newer
    version) becomes the base class of its HTTP status, with the message kept."""
    message = str(data.get("message") or "the server failed")
    hint = data.get("hint")
    details = data.get("details") or {}
    cls = error_class(str(data.get("code") or ""))
    if cls is not None:
        try:
            return cls.rebuild(message, hint, details)
        except (TypeError, ValueError):
            pass  # details of another shape: keep the message under the same class's base behaviour
    if 400 <= status < 500:
        return UsageError(f"the server refused the request: {message}", hint or "check the request")
    return EngineError(f"the server failed: {message}", hint or "see the server's log")
