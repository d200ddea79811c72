"""The ledger: an append-only, signed hash chain linking every data item to every weight.

Writers (importers, the data pipeline, the trainer, merge/export, evals)::

    from freehold.ledger import Ledger, Recorder, ref, layer_refs, weights_digest
    rec = Recorder(Ledger.open(store.home))
    r = rec.record_step(run, step, example_ids=ids, lr=lr, loss=loss, weights=weights_digest(trainable))

An artefact and the record that made it are committed together by ``freehold.home``.
Readers: ``verify``, ``lineage``, ``prove``, ``replay`` (in ``ops``), the in-toto and
model-signing exports (in ``attest``). See docs/ledger.md for the record schema.
"""

from freehold.ledger.chain import Ledger, Record
from freehold.ledger.graph import LedgerIndex, Lineage
from freehold.ledger.keys import Identity, load_identity, trust_key, trusted_keys
from freehold.ledger.membership import MembershipProof
from freehold.ledger.ops import attest, lineage, note, prove, recent, repair, replay, sign_directory, verify
from freehold.ledger.records import (
    BLOB,
    MERKLE,
    TENSORS,
    Recorder,
    dataset_root,
    layer_refs,
    ref,
    weights_digest,
)
from freehold.ledger.replay import ReplayReport, ReplayTrainer, register_replayer, replay_run
from freehold.ledger.verify import VerifyReport, verify_ledger, verify_model

__all__ = [
    "BLOB",
    "MERKLE",
    "TENSORS",
    "Identity",
    "Ledger",
    "LedgerIndex",
    "Lineage",
    "MembershipProof",
    "Record",
    "Recorder",
    "ReplayReport",
    "ReplayTrainer",
    "VerifyReport",
    "attest",
    "dataset_root",
    "layer_refs",
    "lineage",
    "load_identity",
    "note",
    "prove",
    "recent",
    "ref",
    "register_replayer",
    "repair",
    "replay",
    "replay_run",
    "sign_directory",
    "trust_key",
    "trusted_keys",
    "verify",
    "verify_ledger",
    "verify_model",
    "weights_digest",
]
