"""After the last step: the PEFT adapter, the merged model, its GGUF, and one store entry.

The tuned model's manifest holds the merged full-precision safetensors (for evaluation on
the PyTorch backend), the GGUF llama.cpp serves (``--quant``, default Q8_0), the base's
chat template and licence, and the adapter (under ``adapter/``, where the transformers
loader does not look). Its ``source`` names the base, the dataset (and Merkle root) and
the run; the ledger gets a ``merge`` record (base + adapter -> merged) and an ``export``
record (merged -> GGUF), and the manifest points at the latter.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from freehold.progress import ProgressFn, emit
from freehold.store import Layer, Manifest, MediaType, ModelEntry
from freehold.store.formats import read_gguf_info
from freehold.train import checkpoint as ckpt
from freehold.train.trainer import Session

if TYPE_CHECKING:
    from freehold.home import WriteRecord

RUN_MEDIA = "application/vnd.freehold.run+json"


def save_final_adapter(session: Session, last_checkpoint: Path) -> Path:
    """The final checkpoint's adapter files, byte for byte, in ``runs/NAME/adapter``."""
    target = session.run_dir / "adapter"
    target.mkdir(parents=True, exist_ok=True)
    for name in (ckpt.ADAPTER_FILE, ckpt.ADAPTER_CONFIG):
        shutil.copyfile(last_checkpoint / name, target / name)
    return target


def _hf_media(path: Path) -> str:
    if path.suffix == ".safetensors":
        return MediaType.SAFETENSORS
    return MediaType.HF_CONFIG if path.name == "config.json" else MediaType.TOKENIZER


def finish(session: Session, progress: ProgressFn | None = None) -> ModelEntry:
    """Merge, export, import and record; returns the new model's store entry."""
    from freehold.export import export_gguf, metadata_gguf
    from freehold.home import commit_recorded
    from freehold.licences import inherit

    s, cfg, store = session, session.cfg, session.store
    last = ckpt.latest_checkpoint(s.run_dir)
    if last is None:
        from freehold.errors import TrainingError

        raise TrainingError("the run has no checkpoint to finish from", "resume it with --resume")
    adapter_dir = save_final_adapter(s, last)
    emit(progress, "merging adapter")
    model = s.model
    assert model is not None
    merged = model.merge_and_unload()
    if s.device != "cpu":
        merged = merged.to("cpu")
    merged.config.use_cache = True
    with store.temp_dir("tune") as tmp_s:
        tmp = Path(tmp_s)
        hf_out = tmp / "merged"
        merged.save_pretrained(hf_out, safe_serialization=True)
        s.tokenizer.save_pretrained(hf_out)
        emit(progress, f"exporting GGUF ({cfg.quant})")
        licence = s.extra.get("licence") or inherit(store, cfg.output, models=[s.base], datasets=[s.dataset])
        expression = licence.expression
        gguf_path = export_gguf(hf_out, metadata_gguf(store, s.base), tmp / f"model-{cfg.quant}.gguf", cfg.quant,
                                chat_template=s.template, threads=s.threads, progress=progress, license=expression)
        emit(progress, "importing into the store")
        layers: list[Layer] = [store.put_file_blob(f, _hf_media(f)) for f in sorted(hf_out.iterdir()) if f.is_file()]
        merged_layers = list(layers)
        gguf_layer = store.put_file_blob(gguf_path, MediaType.GGUF, f"model-{cfg.quant}.gguf")
        layers.append(gguf_layer)
        info = read_gguf_info(gguf_path)
    info.pop("chat_template", None)
    layers.append(store.put_text(s.template, MediaType.TEMPLATE))
    layers += licence.layers(store, [s.base])  # the base's licence text, and the NOTICE its licences require
    params_text = store.text_layer(s.base.manifest, MediaType.PARAMS)
    if params_text:  # a fine-tune samples like its base unless a request says otherwise (as Ollama's FROM)
        layers.append(store.put_text(params_text, MediaType.PARAMS))
    adapter_layer = store.put_file_blob(adapter_dir / ckpt.ADAPTER_FILE, MediaType.ADAPTER,
                                        f"adapter/{ckpt.ADAPTER_FILE}")
    layers.append(adapter_layer)
    layers.append(store.put_file_blob(adapter_dir / ckpt.ADAPTER_CONFIG, MediaType.ADAPTER_CONFIG,
                                      f"adapter/{ckpt.ADAPTER_CONFIG}"))
    final_loss = next((m["loss"] for m in reversed(_metrics(last)) if "loss" in m), None)
    info["finetune"] = {"method": "lora", "r": cfg.lora_r, "alpha": cfg.lora_alpha, "steps": s.plan.total,
                        "final_loss": final_loss, "quant": cfg.quant}
    source: dict[str, Any] = {"type": "tune", "base": s.base.name, "base_manifest": s.base.manifest_digest,
                              "dataset": s.dataset.name, "dataset_root": s.dataset_root, "run": s.run,
                              "run_dir": str(s.run_dir), "gguf_metadata": gguf_layer.digest,
                              "licence_from": licence.sources}
    if cfg.knowledge:  # trained to read this index's sources: serve it with them
        source["knowledge"] = str(s.dataset.manifest.config.get("grounded", {}).get("knowledge") or cfg.knowledge)
    from freehold.store.names import format_name, parse_name

    name, tag = parse_name(cfg.output)
    manifest = Manifest("model", format_name(name, tag or "latest"), info, layers, source)
    record = _merge_and_export(s, adapter_layer, gguf_layer, merged_layers, expression) if cfg.ledger else None
    entry = commit_recorded(store, manifest, record)
    entry = licence.apply_naming(store, entry)
    _commit_run(session)
    return entry


def _merge_and_export(s: Session, adapter: Layer, gguf: Layer, merged_layers: list[Layer],
                      licence: str | None) -> WriteRecord:
    """The ``merge`` record (base + adapter -> merged safetensors) and the ``export`` record
    (merged -> GGUF) that heads the tuned model's manifest."""
    from freehold.ledger import Record, Recorder, layer_refs, ref

    cfg = s.cfg
    base_refs = [r for r in layer_refs(s.base.manifest, "base") if r["media_type"] in MediaType.WEIGHTS]
    merged_refs = [ref("merged", la.digest, media_type=la.media_type, filename=la.annotations.get("filename", ""))
                   for la in merged_layers if la.media_type == MediaType.SAFETENSORS]

    def record(rec: Recorder, m: Manifest) -> Record:
        rec.record_merge(inputs=[*base_refs, ref("adapter", adapter.digest, media_type=MediaType.ADAPTER)],
                         outputs=merged_refs, method="lora", run=s.run,
                         params={"r": cfg.lora_r, "alpha": cfg.lora_alpha,
                                 "target_modules": list(cfg.target_modules)}, license=licence)
        # The export record is the manifest's head, so its outputs list every weights layer the
        # model carries: the GGUF it produced and the merged safetensors it kept.
        return rec.record_export(m.name, inputs=merged_refs,
                                 outputs=[ref("gguf", gguf.digest, media_type=MediaType.GGUF), *merged_refs],
                                 method=f"gguf/{cfg.quant}", params={"writer": "freehold.export"},
                                 license=licence)

    return record


def _metrics(checkpoint_dir: Path) -> list[dict[str, Any]]:
    state = ckpt.read_json(checkpoint_dir / "state.json")
    return list(state.get("metrics", []))


def _commit_run(session: Session) -> None:
    """A ``run`` entry in the store citing every checkpoint adapter, so the blobs the ledger's
    checkpoint records cite stay in the store (and verifiable) after garbage collection."""
    s, store = session, session.store
    layers: list[Layer] = []
    for path in sorted((s.run_dir / "checkpoints").glob("step-*")):
        adapter = path / ckpt.ADAPTER_FILE
        if adapter.is_file():
            layers.append(store.put_file_blob(adapter, MediaType.ADAPTER,
                                              f"checkpoints/{path.name}/{ckpt.ADAPTER_FILE}"))
    layers.append(store.put_file_blob(s.run_dir / "config.json", RUN_MEDIA, "config.json"))
    from freehold.store.names import format_name, parse_name

    name, tag = parse_name(s.cfg.output)
    store.commit("run", format_name(name, tag or "latest"),
                 Manifest("run", format_name(name, tag or "latest"), {"run": s.run}, layers,
                          {"type": "tune", "run_dir": str(s.run_dir)}))
