"""The store's models as people see them: one description per model, for ``freehold models``,
the native API and the pages (family, size, licence, where it came from, whether it fits).

    describe(store, entry)   # {"name", "size", "licence": {...}, "origin": {...}, "fit": {...}, ...}
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from freehold.licences import model_licence
from freehold.store import Manifest, MediaType, ModelEntry, Store

# Licences whose terms restrict use or bind derivatives beyond attribution (Gemma's §3.2 use
# restrictions, Llama's naming and acceptable-use policy, OpenRAIL's Attachment A, NC data).
# A first cut, keyed by the short ids the store holds; unknown ones are shown as unknown.

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
    ``freehold.licences`` knows it: its id, kind (permissive, copyleft, restricted, non-commercial,
    or unknown: never guessed), obligations and restrictions. A licence that restricts use is
    shown, and accepted once, before a pull."""
    from freehold.licences import identify

    short = model_licence(manifest, text)
    known = identify(short, link=manifest.config.get("license_link"), text=text)
    if known is None:
        return {"name": short, "id": None, "kind": "unknown", "restricts_use": False, "has_text": bool(text),
                "obligations": [], "restrictions": [], "source": None}
    return {**known.to_dict(), "name": short, "title": known.name, "has_text": bool(text)}


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
