"""prove: Merkle membership of an example plus the steps that used it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from freehold.errors import UsageError
from freehold.ledger import prove
from freehold.ledger.membership import ids_from_file
from freehold.ledger.merkle import verify_proof
from tests.ledger.conftest import World


def test_proof_of_a_trained_example(world: World) -> None:
    eid = world.rows[5]["id"]
    (p,) = prove(world.store, "tuned", [eid])
    assert p.found and p.verified and p.index == 5 and p.size == 40
    assert p.dataset == "support:latest" and p.dataset_record == world.records["dataset"].number
    # the proof checks with nothing but the root from the signed dataset record
    assert verify_proof(
        bytes.fromhex(eid),
        p.index,
        p.size,
        [bytes.fromhex(h) for h in p.proof],
        bytes.fromhex(world.records["dataset"].payload["merkle_root"]),
    )
    assert p.steps and all(s["run"] == "run-1" for s in p.steps)
    used_in = {s["step"] for s in p.steps}
    recorded = {
        r.payload["step"] for r in world.ledger.records() if r.type == "step" and eid in r.payload["example_ids"]
    }
    assert used_in == recorded


def test_held_out_and_unknown_examples(world: World) -> None:
    held_out = world.rows[35]["id"]  # in the dataset (valid split) but never in a step
    (p,) = prove(world.store, "tuned", [held_out])
    assert p.found and p.verified and p.steps == []
    (q,) = prove(world.store, "tuned", ["00" * 32])
    assert not q.found and q.proof == []


def test_a_file_of_examples_is_checked_by_content(world: World, tmp_path: Path) -> None:
    changed = json.loads(json.dumps(world.rows[2]))
    changed["messages"][0]["content"] += "!"
    lines = [
        json.dumps({"messages": world.rows[1]["messages"]}),  # no id: recomputed from content
        json.dumps({**changed}),  # stale id: content wins
        world.rows[7]["id"],
    ]
    f = tmp_path / "customer.jsonl"
    f.write_text("\n".join(lines) + "\n")
    ids = ids_from_file(f)
    assert ids[0] == world.rows[1]["id"] and ids[1] != world.rows[2]["id"]
    found = [p.found for p in prove(world.store, "tuned", ids)]
    assert found == [True, False, True]
    f.write_text("not json\n")
    with pytest.raises(UsageError, match="line 1"):
        ids_from_file(f)
