"""One answer to "what is this model's licence?", in one documented order (freehold/licences.py)."""

from __future__ import annotations

import pytest

from freehold.licences import FIRST_LINE_CHARS, LICENCES, identify, licence_terms, model_licence
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


# -- the licence table (issue 16, part 1) -----------------------------------------------------

LISTED = {  # what model metadata says -> the table's id
    "apache-2.0": "Apache-2.0", "mit": "MIT", "cc-by-4.0": "CC-BY-4.0", "cc-by-sa-4.0": "CC-BY-SA-4.0",
    "cc-by-nc-4.0": "CC-BY-NC-4.0", "gemma": "LicenseRef-scancode-gemma-tou-2024-04-01",
    "llama3.2": "LicenseRef-scancode-llama-3.2-license-2024", "llama3.1": "LicenseRef-scancode-llama-3.1-license-2024",
    "openrail-m": "LicenseRef-scancode-bigscience-open-rail-m",
}


def test_every_id_is_one_spdx_or_scancode_knows_and_every_entry_cites_its_source() -> None:
    from license_expression import get_license_index

    known = {d["spdx_license_key"] for d in get_license_index()}
    for lic in LICENCES:
        assert lic.id in known, lic.id
        assert lic.source.startswith("https://"), lic.id
        if lic.restricts_use:
            assert lic.restrictions, f"{lic.id} restricts use but lists no restriction"
    assert {LISTED[k] for k in LISTED} <= {lic.id for lic in LICENCES}


@pytest.mark.parametrize("value,expected", sorted(LISTED.items()))
def test_identified_from_gguf_metadata(value: str, expected: str, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from freehold.models import licence_info
    from freehold.testing import write_tiny_gguf

    entry = store.import_gguf(write_tiny_gguf(tmp_path / "m.gguf", license=value), "m")
    info = licence_info(store, entry)
    assert info["id"] == expected and info["name"] == value
    assert info["restricts_use"] == (expected.startswith("LicenseRef") or expected == "CC-BY-NC-4.0")


def test_identified_from_hugging_face_card_fields(store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from freehold.models import licence_info
    from freehold.testing import write_tiny_hf

    cards = {"llama": "license: other\nlicense_name: llama3.2\nlicense_link: https://www.llama.com/llama3_2/license/",
             "link-only": "license: other\nlicense_link: https://ai.google.dev/gemma/terms",
             "plain": "license: cc-by-sa-4.0", "unknown": "license: other\nlicense_name: acme-research-only"}
    got = {}
    for name, front in cards.items():
        d = write_tiny_hf(tmp_path / name)
        (d / "README.md").write_text(f"---\n{front}\n---\n# a model\n")
        got[name] = licence_info(store, store.import_hf(d, name))
    assert got["llama"]["id"] == "LicenseRef-scancode-llama-3.2-license-2024"
    assert any(o["kind"] == "naming" and "Llama" in o["text"] for o in got["llama"]["obligations"])
    assert got["link-only"]["id"] == "LicenseRef-scancode-gemma-tou-2024-04-01"
    assert got["plain"]["id"] == "CC-BY-SA-4.0" and got["plain"]["kind"] == "copyleft"
    # Not in the table: shown as it is named, unknown, never guessed.
    assert got["unknown"]["id"] is None and got["unknown"]["kind"] == "unknown"
    assert got["unknown"]["name"] == "acme-research-only"


def test_identified_from_a_licence_text_and_package_metadata_and_unknowns_stay_unknown(store) -> None:  # type: ignore[no-untyped-def]
    from freehold.home import import_model
    from freehold.models import licence_info
    from freehold.store.bundled import smollm2_path

    assert identify(text="\n  Gemma Terms of Use\n\nLast modified: ...").id.startswith("LicenseRef-scancode-gemma")  # type: ignore[union-attr]
    assert identify(text="LLAMA 3.2 COMMUNITY LICENSE AGREEMENT\n...").id.endswith("llama-3.2-license-2024")  # type: ignore[union-attr]
    assert identify("other") is None and identify("some-new-licence") is None and identify(None) is None
    if smollm2_path() is not None:  # the bundled model's licence comes from its package's metadata
        assert licence_info(store, import_model(store, bundled="smollm2"))["id"] == "Apache-2.0"
