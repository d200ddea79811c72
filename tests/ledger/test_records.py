"""Typed records: weights digests, export/eval records joining the lineage, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freehold.errors import LedgerError
from freehold.ledger import Recorder, layer_refs, lineage, ref, verify, weights_digest
from freehold.store import Manifest, MediaType
from freehold.testing import point_at
from tests.ledger.conftest import World


def test_weights_digest_is_bit_exact_and_framework_neutral() -> None:
    a = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.zeros(3)}
    assert weights_digest(a) == weights_digest({"b": torch.zeros(3), "w": a["w"].clone()})  # order-free
    assert weights_digest(a) == weights_digest({k: v.numpy() for k, v in a.items()})
    nudged = {**a, "w": a["w"].clone()}
    nudged["w"][0, 0] = torch.nextafter(torch.tensor(0.0), torch.tensor(1.0))
    assert weights_digest(nudged) != weights_digest(a)
    assert weights_digest({"w": a["w"].T.contiguous()}) != weights_digest({"w": a["w"]})  # shape counts
    assert weights_digest({"w": a["w"].to(torch.bfloat16)}) != weights_digest({"w": a["w"]})  # dtype counts
    assert weights_digest({"w": np.zeros(0, dtype=np.float32)}).startswith("sha256:")


def test_export_and_eval_join_the_lineage(world: World) -> None:
    rec = Recorder(world.ledger)
    q = world.store.put_stream_blob(b"GGUF quantised", MediaType.GGUF, {"filename": "tuned-q4.gguf"})
    world.store.commit("model", "tuned-q4:latest", Manifest("model", "tuned-q4:latest", {}, [q]))
    exp = rec.record_export(
        "tuned-q4:latest",
        inputs=layer_refs(world.store.get("tuned").manifest, "source"),
        outputs=layer_refs(world.store.get("tuned-q4").manifest, "gguf"),
        method="gguf/q4_k_m",
    )
    point_at(world.store, "tuned-q4", exp)
    rec.record_eval(
        suite="quality",
        model=layer_refs(world.store.get("tuned-q4").manifest, "model"),
        data=[ref("data", "sha256:" + world.records["dataset"].payload["merkle_root"], "merkle")],
        scores={"accuracy": 0.9},
    )
    graph = lineage(world.store, "tuned-q4")
    types = [n.type for n in graph.nodes]
    assert types.count("merge") == 1 and "export" in types and "dataset" in types and "import" in types
    assert [r.type for r in graph.attached] == ["note", "eval"]
    assert verify(world.store, "tuned-q4").ok


def test_bad_references_are_refused(world: World) -> None:
    with pytest.raises(LedgerError, match="not a sha256"):
        ref("weights", "md5:abc")
    with pytest.raises(LedgerError, match="bad record type"):
        world.ledger.append("no spaces allowed", {})
