"""The model card: YAML that parses, model-index numbers equal to the ledger's eval records,
training facts from the lineage, and Annex XI naming what the ledger does not know."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from freehold.evals import run_eval, write_card
from freehold.ledger import Ledger
from freehold.store import Store


def front_matter(path: Path) -> tuple[dict, str]:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


def test_card_model_index_equals_the_ledger_eval_records(store: Store, tuned: str, tiny: str, support: str,
                                                          eval_data: Path, tmp_path: Path) -> None:
    run_eval(tuned, suites="quality,safety", data=support, eval_data=eval_data, limit=2, max_tokens=4, store=store)
    # A later run of one suite supersedes the earlier record for that suite.
    run_eval(tuned, suites="safety", eval_data=eval_data, limit=1, max_tokens=4, store=store)
    run_eval(tiny, suites="safety", eval_data=eval_data, limit=1, max_tokens=4, store=store)  # another model
    result = write_card(tuned, output=tmp_path / "card", store=store)
    meta, body = front_matter(result.path)

    records = [r for r in Ledger.open(store.home).records() if r.type == "eval"]
    tuned_digest = store.get(tuned).manifest.layers[0].digest
    mine = [r for r in records if any(i["digest"] == tuned_digest for i in r.payload["inputs"])]
    latest = {r.payload["suite"]: r for r in mine}
    assert len(mine) == 3 and set(latest) == {"quality", "safety"}

    [index] = meta["model-index"]
    assert index["name"] == "tiny-tuned:latest"
    assert len(index["results"]) == 2
    for res in index["results"]:
        rec = next(r for r in latest.values() if f"record {r.number} " in res["source"]["name"])
        got = {m["type"]: m["value"] for m in res["metrics"]}
        want = {k: v for k, v in rec.payload["scores"].items() if isinstance(v, int | float) and v == v}
        assert got == want  # exactly the signed numbers, nothing rounded or added
    assert result.evals == sorted(r.number for r in latest.values())

    assert meta["license"] == "apache-2.0"
    assert meta["datasets"] == ["support"]
    assert meta["base_model"] == "tiny"
    assert "lora" in meta["tags"] and "gguf" in meta["tags"]
    for section in ("## Intended use", "## Training data", "## Training procedure", "## Evaluation",
                    "## Limitations", "## Lineage"):
        assert section in body
    assert "lr" in body and "compute estimate" in body and "energy estimate" in body
    assert "Merkle root" in body and "Personal data: mode `surrogates`" in body and "120 example ids" in body


def test_card_parses_with_huggingface_hub(store: Store, tiny: str, eval_data: Path, tmp_path: Path) -> None:
    hub = pytest.importorskip("huggingface_hub")
    run_eval(tiny, suites="languages", eval_data=eval_data, limit=1, store=store)
    result = write_card(tiny, output=tmp_path / "card", store=store)
    card = hub.ModelCard(result.path.read_text(encoding="utf-8"))
    assert card.data.license == "apache-2.0"
    eval_results = card.data.eval_results
    assert eval_results and {r.metric_type for r in eval_results} >= {"eng_tokens_per_char", "eng_perplexity"}


def test_annex_xi_fills_from_the_ledger_and_names_missing_fields(store: Store, tuned: str, tiny: str,
                                                                 tmp_path: Path) -> None:
    result = write_card(tuned, output=tmp_path / "t", annex_xi=True, intended_use="Answer support tickets.",
                        store=store)
    # Training facts are in the ledger; release, acceptable use and evaluations are not.
    assert result.missing == ["1.1.b", "1.1.c", "2.1", "2.2"]
    doc = json.loads((tmp_path / "t" / "annex_xi.json").read_text())
    assert doc["missing"] == result.missing
    assert "FLOPs" in doc["fields"]["1.2.d"]["value"] and "kWh" in doc["fields"]["1.2.e"]["value"]
    assert "support" in doc["fields"]["1.2.c"]["value"]
    text = result.annex_path.read_text() if result.annex_path else ""
    assert "**Missing fields (4):** 1.1.b, 1.1.c, 2.1, 2.2" in text

    # A model imported without training history: the training fields are missing, by name.
    base = write_card(tiny, output=tmp_path / "b", annex_xi=True, store=store)
    assert {"1.1.a", "1.2.b", "1.2.c", "1.2.d", "1.2.e"} <= set(base.missing)
    assert "1.1.d" not in base.missing and "1.1.f" not in base.missing


GOLDEN = Path(__file__).with_name("golden")


def _steady(text: str) -> str:
    """The annex without what changes from run to run: the date it was written and the wall time
    (and the energy estimate made from it) between the fixture's step records."""
    text = re.sub(r"ledger on \d{4}-\d\d-\d\d\.", "ledger on DATE.", text)
    text = re.sub(r"wall time [0-9.]+ s", "wall time T s", text)
    return re.sub(r"\n[0-9.e-]+ kWh", "\nE kWh", text)


@pytest.mark.parametrize("model", ["tuned", "tiny"])
def test_annex_xi_text_is_what_it_was_before_the_template(store: Store, tuned: str, tiny: str, tmp_path: Path,
                                                          model: str) -> None:
    # The golden files are the annex the string-concatenating code wrote for these fixtures, kept
    # so the packaged template (freehold/evals/templates/annex_xi.md) is held to the same bytes.
    name = {"tuned": tuned, "tiny": tiny}[model]
    result = write_card(name, output=tmp_path / model, annex_xi=True, store=store,
                        intended_use="Answer support tickets." if model == "tuned" else None)
    got = result.annex_path.read_text(encoding="utf-8") if result.annex_path else ""
    assert _steady(got) == _steady((GOLDEN / f"annex_xi_{model}.md").read_text(encoding="utf-8"))
