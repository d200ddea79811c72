"""One answer to "what is this model's licence?", in one documented order (freehold/licences.py)."""

from __future__ import annotations

from freehold.licences import FIRST_LINE_CHARS, licence_terms, model_licence
from freehold.store import Manifest

TEXT = "\n   Apache License   \nVersion 2.0, January 2004\n"


def manifest(config: str | None = None, source: str | None = None) -> Manifest:
    return Manifest("model", "m", {"license": config} if config else {}, [],
                    {"license": source} if source else {})


def test_the_first_source_that_names_a_licence_wins_in_the_documented_order() -> None:
    assert model_licence(manifest("mit", "apache-2.0"), TEXT, recorded="gemma") == "mit"
    assert model_licence(manifest(None, "apache-2.0"), TEXT, recorded="gemma") == "apache-2.0"
    assert model_licence(manifest(), TEXT, recorded="gemma") == "gemma"
    assert model_licence(manifest(), TEXT) == "Apache License"  # first non-empty line, trimmed
    assert model_licence(manifest(), "x" * 500) == "x" * FIRST_LINE_CHARS
    assert model_licence(manifest(), "  \n\n") is None
    assert model_licence(manifest(), None) is None


def test_the_terms_are_the_full_text_when_the_model_ships_one() -> None:
    assert licence_terms(manifest("mit"), TEXT) == TEXT
    assert licence_terms(manifest(None, "apache-2.0"), None) == "apache-2.0"
    assert licence_terms(manifest(), "") is None
