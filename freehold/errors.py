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
    │   └── NoChatTemplateError    chat asked of a base model without a template
    ├── DependencyError         an optional package is missing
    ├── TrainingError           fine-tuning or export cannot start or finish
    │   └── TrainingInterrupted    stopped by a signal after a checkpoint (exit 130)
    ├── EvalError               an evaluation cannot run (missing eval data, bad prompt file, ...)
    └── LedgerError             the ledger cannot be read or written
        └── VerificationError   a record, signature, digest or proof does not check out

The CLI prints ``str(error)`` without a traceback (``--debug`` shows one); the
server maps each class to one HTTP status and JSON error shape.
"""

from __future__ import annotations


class FreeholdError(Exception):
    """Base class. ``hint`` says how to fix the problem."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UsageError(FreeholdError):
    exit_code = 2


class ModelNotFoundError(FreeholdError):
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


class InvalidModelError(FreeholdError):
    pass


class StoreError(FreeholdError):
    pass


class StoreReadOnlyError(StoreError):
    pass


class StoreFullError(StoreError):
    pass


class EngineError(FreeholdError):
    pass


class ContextOverflowError(EngineError):
    def __init__(self, n_prompt: int, n_ctx: int, hint: str | None = None) -> None:
        self.n_prompt = n_prompt
        self.n_ctx = n_ctx
        super().__init__(
            f"prompt is {n_prompt} tokens but the context window is {n_ctx} tokens",
            hint or "shorten the prompt, or raise the context with --ctx / FREEHOLD_CONTEXT "
            "(up to the model's trained context length)",
        )


class NoChatTemplateError(EngineError):
    pass


class DependencyError(FreeholdError):
    pass


class LedgerError(FreeholdError):
    pass


class VerificationError(LedgerError):
    """Verification failed; ``record`` is the 1-based number of the first bad record, if known."""

    exit_code = 3

    def __init__(self, message: str, hint: str | None = None, record: int | None = None) -> None:
        super().__init__(message, hint)
        self.record = record


class TrainingError(FreeholdError):
    """Fine-tuning or export could not start or finish (bad data for the model, no memory, ...)."""


class TrainingInterrupted(TrainingError):
    """A run stopped on SIGINT/SIGTERM after saving a checkpoint; ``--resume`` continues it."""

    exit_code = 130


class EvalError(FreeholdError):
    """An evaluation could not run: eval data missing or malformed, a suite unknown, ..."""
