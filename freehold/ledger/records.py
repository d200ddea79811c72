"""Typed record writers: the one place that fixes what each record type holds.

Every artefact a record touches is named in ``inputs`` / ``outputs`` as
``{"role": ..., "digest": "sha256:<hex>", "kind": "blob" | "tensors" | "merkle"}``:

- ``blob``: a store blob (``blobs/sha256-…``); verify rehashes it when the store holds it.
- ``tensors``: ``weights_digest`` of an in-memory state dict (step records); checked by replay.
- ``merkle``: a dataset Merkle root; verify recomputes it from the stored dataset.

A record's lineage parents are the latest earlier records whose outputs include one of its
inputs, plus, for records of a training run, the run's ``config`` record; so writers never
pass record hashes around, only the digests they already have.
"""

from __future__ import annotations

import hashlib
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from freehold.config import cpu_has_bf16
from freehold.errors import LedgerError
from freehold.ledger.chain import Ledger, Record

BLOB = "blob"
TENSORS = "tensors"
MERKLE = "merkle"

RECORD_TYPES = (
    "import",
    "dataset",
    "config",
    "step",
    "checkpoint",
    "merge",
    "export",
    "eval",
    "note",
    "publish",
    "pull",
    "licence",
    "audit",
    "repair",
)


def ref(role: str, digest: str, kind: str = BLOB, **extra: Any) -> dict[str, Any]:
    """An input/output reference. ``digest`` must be ``sha256:<64 hex>``."""
    if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71:
        raise LedgerError(
            f"{role}: {digest!r} is not a sha256:<64 hex> digest",
            "pass the store digest (e.g. layer.digest) or weights_digest(...)",
        )
    return {"role": role, "digest": digest, "kind": kind, **extra}


def layer_refs(manifest: Any, role: str = "layer") -> list[dict[str, Any]]:
    """References to every layer of a store manifest (``freehold.store.Manifest``)."""
    return [
        ref(
            role,
            layer.digest,
            BLOB,
            media_type=layer.media_type,
            size=layer.size,
            **({"filename": layer.annotations["filename"]} if "filename" in layer.annotations else {}),
        )
        for layer in manifest.layers
    ]


def weights_digest(state_dict: Mapping[str, Any]) -> str:
    """SHA-256 over a dict of tensors: name, dtype, shape and raw bytes, in sorted name order.

    Bit-exact by design (no rounding), so equal digests mean identical weights. Tensors are
    made contiguous on the CPU; torch is imported lazily so the ledger works without it.
    """
    h = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name]
        header, raw = _tensor_bytes(tensor)
        h.update(name.encode("utf-8") + b"\x00" + header + b"\x00")
        h.update(len(raw).to_bytes(8, "little"))
        h.update(raw)
    return "sha256:" + h.hexdigest()


def _tensor_bytes(tensor: Any) -> tuple[bytes, memoryview | bytes]:
    module = type(tensor).__module__
    if module.startswith("torch"):
        import torch

        t = tensor.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        dtype = str(t.dtype).removeprefix("torch.")
        header = f"{_DTYPE_NAMES.get(dtype, dtype)}{list(t.shape)}".encode()
        # Viewing as uint8 reads the bytes of every dtype (bfloat16 included) without a copy.
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        return header, raw
    import numpy as np

    arr = np.ascontiguousarray(tensor)
    return f"{_DTYPE_NAMES.get(arr.dtype.name, arr.dtype.name)}{list(arr.shape)}".encode(), arr.tobytes()


# safetensors' dtype names, so numpy arrays and torch tensors of equal bytes hash alike.
_DTYPE_NAMES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}


def dataset_root(example_ids: Sequence[str]) -> str:
    """Hex Merkle root of a dataset: RFC 6962 tree whose leaves are the example ids (leaf hashes)."""
    from freehold.ledger.merkle import merkle_root

    return merkle_root([bytes.fromhex(i) for i in example_ids]).hex()


def environment() -> dict[str, Any]:
    """Library and platform versions a run depends on (recorded in config records)."""
    versions: dict[str, str] = {"python": sys.version.split()[0]}
    for mod in ("torch", "transformers", "peft", "numpy", "safetensors", "gguf", "freehold"):
        module = sys.modules.get(mod)
        if module is None:
            try:
                module = __import__(mod)
            except ImportError:
                continue
        versions[mod] = str(getattr(module, "__version__", "?"))
    return {
        "versions": versions,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        # bf16 arithmetic differs between CPUs with and without bf16 instructions (emulated).
        "cpu_bf16": cpu_has_bf16(),
    }


class Recorder:
    """Typed helpers over ``Ledger.append``; each returns the appended ``Record``."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    # provenance of inputs -----------------------------------------------------------------
    def record_import(
        self,
        name: str,
        outputs: Sequence[dict[str, Any]],
        *,
        source: Mapping[str, Any],
        license: str | None = None,
    ) -> Record:
        """A model entered the store. ``outputs`` usually ``layer_refs(entry.manifest)``."""
        return self.ledger.append(
            "import",
            {
                "name": name,
                "source": dict(source),
                "license": license,
                "inputs": [],
                "outputs": list(outputs),
            },
        )

    def record_dataset(
        self,
        name: str,
        *,
        sources: Sequence[dict[str, Any]],
        merkle_root: str,
        example_ids: Sequence[str],
        outputs: Sequence[dict[str, Any]],
        filters: Mapping[str, Any] | None = None,
        counts: Mapping[str, Any] | None = None,
        license: str | None = None,
    ) -> Record:
        """A dataset was built. ``merkle_root`` is hex (``dataset_root(example_ids)``); ``sources``
        are refs to the raw source files (``ref("source", digest, filename=...)``); ``example_ids``
        every id in tree order (the rows of the dataset layers in manifest order); ``outputs``
        ``layer_refs(dataset_manifest)``; ``counts`` should hold ``examples`` and per-split sizes."""
        root = merkle_root.removeprefix("sha256:")
        payload = {
            "name": name,
            "merkle_root": root,
            "example_ids": list(example_ids),
            "filters": dict(filters or {}),
            "counts": dict(counts or {}),
            **({"license": license} if license else {}),
            "inputs": list(sources),
            "outputs": [*outputs, ref("examples", "sha256:" + root, MERKLE)],
        }
        return self.ledger.append("dataset", payload)

    # training -----------------------------------------------------------------------------
    def record_config(
        self,
        run: str,
        *,
        base: Sequence[dict[str, Any]],
        dataset: Sequence[dict[str, Any]],
        architecture: Mapping[str, Any],
        hyperparameters: Mapping[str, Any],
        seed: int,
        threads: int,
        initial_weights: str | None = None,
        replayer: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Record:
        """Every choice a run depends on. ``base``: refs to the base model's weights layers;
        ``dataset``: ``ref("dataset", "sha256:"+root, MERKLE)`` and/or its layer refs;
        ``initial_weights``: ``weights_digest`` of the trainable weights before step 1;
        ``replayer``: ``"module:function"`` under ``freehold.`` returning a ``ReplayTrainer``."""
        payload: dict[str, Any] = {
            "run": run,
            "architecture": dict(architecture),
            "hyperparameters": dict(hyperparameters),
            "seed": seed,
            "threads": threads,
            "environment": environment(),
            "replayer": replayer,
            "initial_weights": initial_weights,
            "inputs": [*base, *dataset],
            "outputs": [],
            **dict(extra or {}),
        }
        return self.ledger.append("config", payload)

    def record_step(
        self,
        run: str,
        step: int,
        *,
        example_ids: Sequence[str],
        lr: float,
        loss: float,
        weights: str,
        extra: Mapping[str, Any] | None = None,
    ) -> Record:
        """One optimizer step: ``weights`` is ``weights_digest(trainable state dict after the step)``."""
        payload = {
            "run": run,
            "step": int(step),
            "example_ids": list(example_ids),
            "lr": float(lr),
            "loss": float(loss),
            "weights": weights,
            **dict(extra or {}),
        }
        return self.ledger.append("step", payload)

    def record_checkpoint(self, run: str, step: int, *, weights: str, outputs: Sequence[dict[str, Any]]) -> Record:
        """Trainable weights (and optimizer state) saved as blobs after ``step``."""
        return self.ledger.append(
            "checkpoint",
            {"run": run, "step": int(step), "weights": weights, "inputs": [], "outputs": list(outputs)},
        )

    # transformations ----------------------------------------------------------------------
    def record_merge(
        self,
        *,
        inputs: Sequence[dict[str, Any]],
        outputs: Sequence[dict[str, Any]],
        method: str,
        run: str | None = None,
        params: Mapping[str, Any] | None = None,
        license: str | None = None,
    ) -> Record:
        """Weights combined (base + adapter, later several models); ``license``: the expression the
        result inherited (freehold.licences.inherit)."""
        return self.ledger.append(
            "merge",
            {
                "run": run,
                "method": method,
                "params": dict(params or {}),
                "license": license,
                "inputs": list(inputs),
                "outputs": list(outputs),
            },
        )

    def record_export(
        self,
        name: str,
        *,
        inputs: Sequence[dict[str, Any]],
        outputs: Sequence[dict[str, Any]],
        method: str,
        params: Mapping[str, Any] | None = None,
        license: str | None = None,
    ) -> Record:
        """Export or quantisation: ``method`` e.g. ``gguf/q4_k_m``; ``license``: what the output is under."""
        return self.ledger.append(
            "export",
            {
                "name": name,
                "method": method,
                "params": dict(params or {}),
                "license": license,
                "inputs": list(inputs),
                "outputs": list(outputs),
            },
        )

    def record_eval(
        self,
        *,
        suite: str,
        model: Sequence[dict[str, Any]],
        data: Sequence[dict[str, Any]],
        scores: Mapping[str, Any],
        outputs: Sequence[dict[str, Any]] = (),
    ) -> Record:
        return self.ledger.append(
            "eval",
            {"suite": suite, "scores": dict(scores), "inputs": [*model, *data], "outputs": list(outputs)},
        )

    def record_publish(self, model: str, manifest_digest: str, target: str, oci_digest: str) -> Record:
        """A push of ``model`` to a registry (``target``), as the OCI manifest ``oci_digest``."""
        return self.ledger.append("publish", {"model": model, "to": target, "oci_manifest": oci_digest,
                                              "inputs": [ref("model", manifest_digest)], "outputs": []})

    def record_pull(self, model: str, manifest_digest: str, source: str, oci_digest: str, *,
                    head: str | None, signers: list[str], untrusted: list[str], bundle: str | None) -> Record:
        """A pull of ``model`` from a registry: from where, which digest, whose lineage, trusted or not.
        It cites the model's manifest as an input only, so it never joins the lineage it reports."""
        return self.ledger.append("pull", {
            "model": model, "from": source, "oci_manifest": oci_digest, "lineage_head": head, "signers": signers,
            "untrusted_signers": untrusted, "lineage_bundle": bundle,
            "inputs": [ref("model", manifest_digest)], "outputs": []})

    def record_note(
        self,
        text: str,
        *,
        about: Iterable[dict[str, Any]] = (),
        subject: str | None = None,
        run: str | None = None,
    ) -> Record:
        """A decision in words ("why r=16"), attached to digests, a named subject or a run."""
        if not text.strip():
            raise LedgerError("a note needs some text", 'write it in quotes: freehold audit note NAME "why"')
        return self.ledger.append(
            "note", {"text": text, "subject": subject, "run": run, "inputs": list(about), "outputs": []}
        )
