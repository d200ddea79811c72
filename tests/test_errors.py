"""The error tree: every class has its own code, and an error that crossed HTTP is rebuilt
as the same class with the same message, hint and fields."""

from __future__ import annotations

import pytest

from freehold import errors
from freehold.errors import (
    ContextOverflowError,
    FreeholdError,
    ModelNotFoundError,
    ServerBusyError,
    UsageError,
    VerificationError,
    error_class,
    from_dict,
)


def _all() -> list[type[FreeholdError]]:
    return [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, FreeholdError)]


def test_every_class_has_its_own_code() -> None:
    classes = _all()
    assert len(classes) >= 17
    codes = [c.code for c in classes]
    assert len(set(codes)) == len(codes), codes
    for c in classes:
        assert error_class(c.code) is c
        assert 400 <= c.http_status < 600


@pytest.mark.parametrize("error", [
    UsageError("bad flag", "use --good"),
    ModelNotFoundError("ghost", ["ghast"], kind="dataset"),
    ContextOverflowError(900, 512),
    ServerBusyError(12),
    VerificationError("record 4 is altered", "restore it", record=4),
    errors.NoChatTemplateError("base model", "use --raw"),
    errors.StoreFullError("disk full", "free space"),
], ids=lambda e: type(e).__name__)
def test_to_dict_and_back_is_the_same_error(error: FreeholdError) -> None:
    back = from_dict(error.to_dict(), error.http_status)
    assert type(back) is type(error)
    assert (back.message, back.hint, back.details()) == (error.message, error.hint, error.details())
    assert back.exit_code == error.exit_code


def test_an_unknown_code_keeps_the_message_under_its_status() -> None:
    four = from_dict({"code": "from_a_newer_server", "message": "no such thing"}, 409)
    assert isinstance(four, UsageError) and "no such thing" in four.message
    five = from_dict({"message": "it broke"}, 502)
    assert isinstance(five, errors.EngineError) and "it broke" in five.message
