"""The store's models as people see them: one description per model, for ``freehold models``,
the native API and the pages (family, size, licence, where it came from, whether it fits).

    describe(store, entry)   # {"name", "size", "licence": {...}, "origin": {...}, "fit": {...}, ...}
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from freehold.licences import Term, model_licence, terms
from freehold.store import Manifest, MediaType, ModelEntry, Store

# A decode estimate for models never served here: SmolLM2-135M Q4_1 (about 100 MB of weights)
# decodes at about 80 tokens/s on a 2-core Xeon (docs/benchmarks.md), and one token reads every
# weight once, so the rate scales with the weights' bytes and the cores.
REFERENCE_TOKENS_PER_S, REFERENCE_BYTES, REFERENCE_CORES = 80.0, 100e6, 2


DEFAULT_ALIAS = "default"  # the name a deployed model answers to on every API, besides its own


def deployed(store: Store) -> str | None:
    """The model deployed as "default" (``store.add_alias(DEFAULT_ALIAS, name)``), if any."""
    return store.resolve_ref(DEFAULT_ALIAS).full_name if store.has(DEFAULT_ALIAS) else None


def human_size(n: float | None) -> str:
    """Bytes as people read them (decimal units, like disk makers and Ollama)."""
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def human_count(n: int | None) -> str:
    """A parameter count as 135M, 1.5B; "-" when unknown."""
    if not n:
        return "-"
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}".replace(".0", "")
    return str(n)


def licence_info(store: Store, entry: ModelEntry) -> dict[str, Any]:
    return licence_of(entry.manifest, store.text_layer(entry.manifest, MediaType.LICENSE))


def licence_of(manifest: Manifest, text: str | None) -> dict[str, Any]:
    """The licence a manifest (and its LICENSE layer's ``text``) states, as the table in
    ``freehold.licences`` knows it: an expression of one term or more (a derivative is under all
    it came from), its kind (the strictest term's; unknown when a term is unknown: never
    guessed), obligations, restrictions, forbidden uses and notices. A licence that restricts use
    is shown, and accepted once, before a pull or before it is served."""
    from freehold.licences import describe

    info = describe(model_licence(manifest, text), link=manifest.config.get("license_link"), text=text)
    return {**info, "has_text": bool(text), "inherited_from": (manifest.source or {}).get("licence_from") or []}


def origin(entry: ModelEntry) -> dict[str, Any]:
    """Bundled with the install, imported from a file, tuned from a base, or exported from a model."""
    src = entry.manifest.source or {}
    if src.get("type") == "export":
        return {"kind": "exported", "from": src.get("from"), "quant": src.get("quant")}
    if src.get("type") == "tune":
        return {"kind": "tuned", "from": src.get("base"), "dataset": src.get("dataset")}
    if src.get("package"):
        return {"kind": "bundled", "from": src.get("upstream") or src.get("package")}
    return {"kind": "imported", "from": src.get("path")}


def memory_available() -> int | None:
    """Bytes the kernel says a new process can use (MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def fit(entry: ModelEntry, context: int = 4096, cores: int | None = None) -> dict[str, Any]:
    """Whether the model fits this machine: the memory it needs to serve (weights plus a KV cache
    of ``context`` tokens in f16) against what is free, and a decode-speed estimate."""
    info = entry.info
    weights = sum(layer.size for layer in entry.manifest.weights) or entry.size
    layers = int(info.get("block_count") or 0)
    kv_heads = int(info.get("head_count_kv") or info.get("head_count") or 0)
    heads = int(info.get("head_count") or 0)
    width = int(info.get("embedding_length") or 0)
    head_dim = width // heads if heads else 0
    kv_cache = 2 * layers * kv_heads * head_dim * min(context, int(info.get("context_length") or context)) * 2
    need = int(weights + kv_cache + 64e6)  # + runtime buffers
    free = memory_available()
    cores = cores or os.cpu_count() or 1
    rate = REFERENCE_TOKENS_PER_S * (REFERENCE_BYTES / max(weights, 1)) * (min(cores, 8) / REFERENCE_CORES)
    state = "unknown" if free is None else "fits" if need < 0.7 * free else "tight" if need < free else "too big"
    return {"need_bytes": need, "free_bytes": free, "state": state, "tokens_per_s": round(rate, 1),
            "tokens_per_s_source": "estimated"}


def deploy(store: Store, name: str, override: bool = False) -> str:
    """Make ``name`` the model every API answers to as "default". A model with an open
    high-severity flag needs ``override``, which the ledger records with the flags overridden."""
    from freehold.audits import attestations, open_flags
    from freehold.errors import ModelFlaggedError
    entry = store.get(name)
    check_servable(store, entry)  # a restrictive licence is accepted before the model answers as "default"
    flags = open_flags(attestations(store, entry.manifest_digest))
    described = [f"{f.predicate.get('summary')} ({f.signer_name or f.signer})" for f in flags]
    if flags and not override:
        raise ModelFlaggedError(entry.name, described)
    if flags:
        from freehold.ledger import Ledger, ref

        Ledger.open(store.home).append("note", {
            "text": f"deployed {entry.name} despite open high-severity flags: {'; '.join(described)}",
            "subject": entry.name, "run": None, "override": [f.digest for f in flags],
            "inputs": [ref("model", entry.manifest_digest)], "outputs": []})
    store.add_alias(DEFAULT_ALIAS, entry.name)
    return entry.name


def audit_summary(store: Store, manifest_digest: str) -> dict[str, Any]:
    from freehold.audits import summary

    return summary(store, manifest_digest)


def describe(store: Store, entry: ModelEntry) -> dict[str, Any]:
    """Everything a listing shows of one model."""
    info = entry.info
    licence = licence_info(store, entry)
    return {
        "name": entry.name,
        "aliases": entry.aliases,
        "digest": entry.manifest_digest,
        "size": entry.size,
        "format": info.get("format"),
        "family": info.get("family"),
        "architecture": info.get("architecture"),
        "parameters": info.get("parameters"),
        "quantization": info.get("quantization"),
        "context_length": info.get("context_length"),
        "license": licence["name"],
        "licence": licence,
        "chat": store.text_layer(entry.manifest, MediaType.TEMPLATE) is not None,
        "origin": origin(entry),
        "fit": fit(entry),
        "knowledge": (entry.manifest.source or {}).get("knowledge"),
        "audits": audit_summary(store, entry.manifest_digest),
        "modified": dt.datetime.fromtimestamp(entry.created_at).isoformat(timespec="seconds"),
    }


# -- acceptance and declared use: before a model is served --------------------------------------


def licence_document(store: Store, entry: ModelEntry) -> dict[str, Any]:
    """A model's licence as ``licence_info`` states it, whether this store accepted it, and the
    notice its derivatives must carry."""
    return {**licence_info(store, entry), "accepted": not pending_licences(store, entry),
            "notice": store.text_layer(entry.manifest, MediaType.NOTICE)}


def document(store: Store, name: str) -> dict[str, Any]:
    """Everything known of one model, for its page, the API and the agents' tools: ``describe``
    plus the licence's text and acceptance, the notice, the source, the lineage, the evals and
    the card (a part that cannot be worked out is None, with why beside it)."""
    from freehold.errors import FreeholdError
    from freehold.evals.card import card_text, eval_records
    from freehold.ledger.ops import lineage
    from freehold.licences import licence_terms

    entry = store.get(name)
    doc = describe(store, entry)
    text = store.text_layer(entry.manifest, MediaType.LICENSE)
    doc["licence_text"] = licence_terms(entry.manifest, text)
    licence = licence_document(store, entry)
    doc["notice"] = licence.pop("notice")
    doc["licence"] = licence
    doc["source"] = entry.manifest.source
    try:
        doc["lineage"] = lineage(store, entry.name).to_dict()
    except FreeholdError as exc:  # a model imported without a record: shown as such, not a 500
        doc["lineage"] = None
        doc["lineage_error"] = exc.message
    evals = eval_records(store, entry)
    doc["evals"] = {suite: {"record": r.number, "time": r.time, "scores": r.payload.get("scores")}
                    for suite, r in sorted(evals.items())}
    try:
        doc["card"] = card_text(store, entry.name)
    except FreeholdError as exc:
        doc["card"] = None
        doc["card_error"] = exc.message
    return doc


def accepted_licences(store: Any) -> set[str]:
    """The keys (licence ids, or names outside the table) of the restricted licences this store's
    owner accepted, each once, in the ledger (``licence`` records)."""
    from freehold.ledger import Ledger

    out: set[str] = set()
    for r in Ledger.open(store.home).records():
        if r.type == "licence" and r.payload.get("accepted"):
            out.update(t.key for t in terms(str(r.payload.get("id") or r.payload.get("licence") or "")))
    return out


def unaccepted(store: Any, expression: str | None, *, link: str | None = None,
               text: str | None = None, accepted: set[str] | None = None) -> list[Term]:
    """The terms of ``expression`` whose licence restricts use and that nobody here accepted yet (a
    model not in the store yet: a pull, another registry's page; a store model: pending_licences)."""
    return _pending(store, terms(expression, link=link, text=text), accepted)


def _pending(store: Any, found: list[Term], accepted: set[str] | None) -> list[Term]:
    restricted = [t for t in found if t.licence is not None and t.licence.restricts_use]
    if not restricted:
        return []  # nothing to look up in the ledger
    done = accepted_licences(store) if accepted is None else accepted
    return [t for t in restricted if t.key not in done]


def entry_terms(store: Any, entry: Any) -> list[Term]:
    """The terms of the licence a store model is under, each identified (its LICENSE text and its
    card's licence link help name a single one)."""
    text = store.text_layer(entry.manifest, MediaType.LICENSE)
    return terms(model_licence(entry.manifest, text), link=entry.manifest.config.get("license_link"), text=text)


def pending_licences(store: Any, entry: Any, accepted: set[str] | None = None) -> list[Term]:
    """The restrictive licences of store model ``entry`` that nobody here accepted yet."""
    return _pending(store, entry_terms(store, entry), accepted)


def accept(store: Any, entry: Any, *, by: str | None = None, via: str = "cli") -> list[str]:
    """Accept the restricted licences of model ``entry`` that are not accepted yet: one ``licence``
    ledger record each (who, the licence id, the digest of the terms the model carries). Returns
    the ids accepted now (empty: nothing needed it)."""
    import getpass
    import hashlib
    import socket

    from freehold.ledger import Ledger, ref
    from freehold.store import MediaType

    pending = pending_licences(store, entry)
    if not pending:
        return []
    text = store.text_layer(entry.manifest, MediaType.LICENSE)
    who = by or f"{getpass.getuser()}@{socket.gethostname()}"
    layer = entry.manifest.layer(MediaType.LICENSE)
    ledger = Ledger.open(store.home)
    for term in pending:
        assert term.licence is not None
        ledger.append("licence", {
            "licence": term.text, "id": term.licence.id, "accepted": True, "by": who, "via": via,
            "model": entry.name, "terms_digest": layer.digest if layer else None,
            "terms_source": term.licence.source,
            "text_sha256": hashlib.sha256(text.encode()).hexdigest() if text else None,
            "inputs": [ref("model", entry.manifest_digest)], "outputs": []})
    return [t.licence.id for t in pending if t.licence is not None]


def check_servable(store: Any, entry: Any, declared_use: str | None = None,
                   accepted: set[str] | None = None) -> None:
    """Raise before ``entry`` is served when its licence restricts use and was not accepted here,
    or forbids the use the server declared (``--declare-use``), quoting the clause."""
    from freehold.errors import LicenceNotAcceptedError, UseNotPermittedError

    if declared_use:
        for term in entry_terms(store, entry):
            clause = next((c for u, c in (term.licence.forbids if term.licence else ()) if u == declared_use), None)
            if clause:
                raise UseNotPermittedError(entry.name, declared_use, term.text, clause)
    pending = pending_licences(store, entry, accepted)
    if pending:
        lic = pending[0].licence
        assert lic is not None
        raise LicenceNotAcceptedError(entry.name, lic.name, list(lic.restrictions))
