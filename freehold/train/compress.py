"""Shrinking a model: the distillation losses, depth pruning by Block Influence, and width pruning
of the MLP channels, on transformers llama-architecture models (SmolLM2, Llama, Qwen's shape).

    influence = block_influence(model, batches)          # one number per layer (ShortGPT, 2403.03853)
    drop = least_influential(influence, 8)               # the 8 layers whose output most resembles their input
    prune_layers(model, drop)                            # a plain dense model with 8 fewer blocks
    keep = mlp_importance(model, batches)                # per layer, each intermediate channel's mean |activation|
    prune_mlp(model, keep, 1024)                         # the same width in every layer, a multiple of 64
    loss = kd_loss(student_logits, teacher_logits, mask, "forward", temperature=2.0)

The pruned model is saved as an ordinary Hugging Face directory (``save_student``) whose config
says the new ``num_hidden_layers`` / ``intermediate_size``, so the exporter writes a GGUF with
the new ``block_count`` / ``feed_forward_length`` and llama.cpp serves it unchanged.

``compress_model`` (``freehold compress``) puts them together on a store model and a dataset:
Block Influence on the dataset's text, prune, heal by distillation from the unpruned model,
export to GGUF, and import the student with an ``export`` ledger record whose inputs are the
teacher's weights and the dataset's Merkle root (so the lineage shows teacher -> student) and
whose params hold the recipe, the layer scores and the losses; the teacher and the student are
measured side by side (decode speed, held-out perplexity) at the same quantization. Not yet: LoRA
healing, KV-head-group pruning, resuming a heal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from freehold.errors import UsageError

KD_KINDS = ("forward", "reverse", "jsd")
WIDTH_MULTIPLE = 64  # kept MLP widths are multiples of this: the sizes llama.cpp's kernels block by


def kd_loss(student_logits: Any, teacher_logits: Any, mask: Any, kind: str = "forward",
            temperature: float = 1.0) -> Any:
    """Distillation loss per kept position, averaged over the positions where ``mask`` is true.

    forward: KL(teacher || student), mean-seeking (Hinton et al.; times T², so its gradients
    keep their size as T changes); reverse: KL(student || teacher), mode-seeking (MiniLLM);
    jsd: the Jensen-Shannon divergence of the two, times T². Logits are [batch, positions,
    vocab]; ``mask`` [batch, positions] is false on the prompt and on padding."""
    import torch

    if kind not in KD_KINDS:
        raise UsageError(f"unknown distillation loss {kind!r}", f"use one of {', '.join(KD_KINDS)}")
    if temperature <= 0:
        raise UsageError(f"the distillation temperature must be positive, got {temperature}", "e.g. 1.0 or 2.0")
    s = torch.log_softmax(student_logits.float() / temperature, dim=-1)
    t = torch.log_softmax(teacher_logits.float() / temperature, dim=-1)
    if kind == "forward":
        per = (t.exp() * (t - s)).sum(-1)
    elif kind == "reverse":
        per = (s.exp() * (s - t)).sum(-1)
    else:
        m = torch.logsumexp(torch.stack([s, t]), dim=0) - torch.log(torch.tensor(2.0))
        per = 0.5 * (t.exp() * (t - m)).sum(-1) + 0.5 * (s.exp() * (s - m)).sum(-1)
    weights = mask.to(per.dtype)
    count = weights.sum()
    if float(count) == 0:
        raise UsageError("no position to distil on (the mask is empty)", "check that the examples have answers")
    return (per * weights).sum() / count * temperature**2


def _layers(model: Any) -> Any:
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise UsageError(f"pruning needs a llama-architecture model (model.model.layers), not {type(model).__name__}",
                         "use a llama, qwen2 or smollm2 model")
    return layers


def block_influence(model: Any, batches: Iterable[tuple[Any, Any]]) -> list[float]:
    """Each layer's Block Influence: 1 - the mean cosine similarity of the hidden state entering
    it and the one leaving it, over the unmasked positions of ``batches`` ((input_ids,
    attention_mask) pairs). A layer that barely changes its input scores near 0."""
    import torch

    n = len(_layers(model))
    totals = [0.0] * n
    count = 0
    model.eval()
    with torch.no_grad():
        for ids, mask in batches:
            out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            hidden = out.hidden_states  # n + 1 states: the embeddings, then after each layer
            keep = mask.bool()
            for i in range(n):
                cos = torch.nn.functional.cosine_similarity(hidden[i][keep].float(), hidden[i + 1][keep].float(),
                                                            dim=-1)
                totals[i] += float((1 - cos).sum())
            count += int(keep.sum())
    if count == 0:
        raise UsageError("no calibration tokens to measure the layers on", "give some text")
    return [t / count for t in totals]


def least_influential(influence: Sequence[float], drop: int) -> list[int]:
    """The ``drop`` layers of least influence (ascending index); the first and last layers are
    never dropped (every pruning study finds them the most needed)."""
    n = len(influence)
    if not 0 <= drop <= n - 2:
        raise UsageError(f"cannot drop {drop} of {n} layers", f"drop between 0 and {n - 2} (the first and last stay)")
    middle = sorted(range(1, n - 1), key=lambda i: (influence[i], i))
    return sorted(middle[:drop])


def prune_layers(model: Any, drop: Sequence[int]) -> Any:
    """Remove the layers ``drop`` (indices) in place; the config and each attention's cache
    index follow, so the model runs, saves and exports as a plain dense model."""
    import torch

    layers = _layers(model)
    drop_set = set(drop)
    if any(not 0 <= i < len(layers) for i in drop_set):
        raise UsageError(f"layer indices out of range: {sorted(drop_set)}", f"the model has {len(layers)} layers")
    kept = [layer for i, layer in enumerate(layers) if i not in drop_set]
    model.model.layers = torch.nn.ModuleList(kept)
    for i, layer in enumerate(kept):
        attn = getattr(layer, "self_attn", None)
        if attn is not None and hasattr(attn, "layer_idx"):
            attn.layer_idx = i
    model.config.num_hidden_layers = len(kept)
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = [t for i, t in enumerate(model.config.layer_types) if i not in drop_set]
    return model


def mlp_importance(model: Any, batches: Iterable[tuple[Any, Any]]) -> list[Any]:
    """Per layer, each MLP intermediate channel's mean |act(gate(x)) * up(x)| over the unmasked
    positions (the activation that feeds ``down_proj``): what the channel contributes."""
    import torch

    layers = _layers(model)
    sums: list[Any] = [None] * len(layers)
    count = [0]
    current: dict[str, Any] = {}

    def hook(i: int) -> Any:
        def record(_module: Any, args: tuple[Any, ...]) -> None:
            act = args[0].detach().abs()
            keep = current["mask"]
            value = act[keep].float().sum(0)
            sums[i] = value if sums[i] is None else sums[i] + value

        return record

    handles = [layer.mlp.down_proj.register_forward_pre_hook(hook(i)) for i, layer in enumerate(layers)]
    model.eval()
    try:
        with torch.no_grad():
            for ids, mask in batches:
                current["mask"] = mask.bool()
                model(input_ids=ids, attention_mask=mask)
                count[0] += int(mask.sum())
    finally:
        for h in handles:
            h.remove()
    if count[0] == 0:
        raise UsageError("no calibration tokens to measure the channels on", "give some text")
    return [s / count[0] for s in sums]


def prune_mlp(model: Any, importance: Sequence[Any], width: int) -> Any:
    """Keep the ``width`` most important intermediate channels of every layer's MLP (the same
    width everywhere, a multiple of ``WIDTH_MULTIPLE``), in place."""
    import torch

    layers = _layers(model)
    full = int(model.config.intermediate_size)
    if width % WIDTH_MULTIPLE or not 0 < width <= full:
        raise UsageError(f"an MLP width of {width} cannot be kept of {full}",
                         f"use a multiple of {WIDTH_MULTIPLE} from {WIDTH_MULTIPLE} to {full}")
    for layer, score in zip(layers, importance, strict=True):
        keep = torch.sort(torch.topk(score, width).indices).values
        mlp = layer.mlp
        for name in ("gate_proj", "up_proj"):
            old = getattr(mlp, name)
            new = torch.nn.Linear(old.in_features, width, bias=old.bias is not None, dtype=old.weight.dtype)
            new.weight.data = old.weight.data[keep].clone()
            if old.bias is not None:
                new.bias.data = old.bias.data[keep].clone()
            setattr(mlp, name, new)
        old = mlp.down_proj
        new = torch.nn.Linear(width, old.out_features, bias=old.bias is not None, dtype=old.weight.dtype)
        new.weight.data = old.weight.data[:, keep].clone()
        if old.bias is not None:
            new.bias.data = old.bias.data.clone()
        mlp.down_proj = new
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = width
    model.config.intermediate_size = width
    return model


def heal(student: Any, teacher: Any, batches: Sequence[tuple[Any, Any, Any]], steps: int, *, lr: float = 1e-4,
         kind: str = "forward", temperature: float = 2.0, ce_weight: float = 0.5) -> list[float]:
    """Distil ``teacher`` into the pruned ``student`` (every parameter trained): each step, the
    KD loss on the teacher's logits plus ``ce_weight`` times the cross-entropy on the text, over
    the positions of each batch's loss mask ((input_ids, attention_mask, loss_mask) triples).
    Returns the loss of every step."""
    import torch

    if steps < 1 or not batches:
        raise UsageError("healing needs at least one step and one batch", "give --heal-steps and some data")
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr)
    teacher.eval()
    student.train()
    losses = []
    for step in range(steps):
        ids, mask, loss_mask = batches[step % len(batches)]
        with torch.no_grad():
            target = teacher(input_ids=ids, attention_mask=mask).logits[:, :-1]
        logits = student(input_ids=ids, attention_mask=mask).logits[:, :-1]
        keep = loss_mask[:, 1:].bool() & mask[:, 1:].bool()
        kd = kd_loss(logits, target, keep, kind, temperature)
        ce = torch.nn.functional.cross_entropy(logits[keep].float(), ids[:, 1:][keep])
        loss = (1 - ce_weight) * kd + ce_weight * ce
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    student.eval()
    return losses


def save_student(model: Any, teacher_dir: Path, out: Path) -> Path:
    """The pruned model as a Hugging Face directory (weights, config; the teacher's tokenizer files)."""
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                 "chat_template.jinja"):
        if (teacher_dir / name).exists() and not (out / name).exists():
            shutil.copy(teacher_dir / name, out / name)
    return out


def top1_agreement(teacher: Path, student: Path, texts: Sequence[Sequence[int]], threads: int) -> float:
    """The share of positions of ``texts`` where the student's most likely next token is the
    teacher's, both reading the same text (teacher forcing), through llama.cpp."""
    import numpy as np

    from freehold.engine.llama import LlamaScorer

    context = max(len(t) for t in texts) + 8
    picks = []
    for path in (teacher, student):
        scorer = LlamaScorer(path, context, threads)
        try:
            picks.append([np.asarray(scorer.logits(list(t))).argmax(-1) for t in texts])
        finally:
            scorer.close()
    same = sum(int((a == b).sum()) for a, b in zip(*picks, strict=True))
    return round(same / sum(len(t) for t in texts), 4)


def _batches_from(store: Any, dataset: Any, template: Any, tokenizer: Any, split: str, max_len: int
                  ) -> list[tuple[Any, Any, Any]]:
    """The dataset's conversations of ``split`` as one-row batches of token ids (cut at
    ``max_len``); every token is distilled on."""
    import torch

    from freehold.export.choose import conversation_texts

    out = []
    for text in conversation_texts(store, dataset, split, template):
        ids = tokenizer(text, return_tensors="pt").input_ids[:, :max_len]
        if ids.shape[1] >= 2:
            out.append((ids, torch.ones_like(ids), torch.ones_like(ids)))
    return out


def compress_model(name: str, data: str, *, output: str | None = None, drop_layers: int = 0,
                   mlp_width: int | None = None, heal_steps: int = 200, lr: float = 5e-5, loss: str = "forward",
                   temperature: float = 2.0, ce_weight: float = 0.5, quant: str = "q8_0", max_seq_len: int = 512,
                   store: Any = None, settings: Any = None, progress: Any = None) -> Any:
    """Prune store model ``name`` (``drop_layers`` by Block Influence, the MLPs to ``mlp_width``),
    heal it by distillation from itself unpruned on dataset ``data``'s train split, export it
    (``quant``) and import it as ``output`` (default NAME-small), measured beside the teacher."""
    import dataclasses
    import json
    import tempfile

    import torch

    from freehold.config import load_settings
    from freehold.data.dataset import held_out_split
    from freehold.engine.chat import ChatTemplate
    from freehold.engine.torch import hf_directory
    from freehold.export import export_gguf
    from freehold.export.choose import held_out_text, measure
    from freehold.export.quantize import check_quant
    from freehold.home import commit_recorded, open_store
    from freehold.ledger import MERKLE, layer_refs, ref
    from freehold.licences import inherit
    from freehold.progress import emit
    from freehold.store import MediaType
    from freehold.store.names import format_name, parse_name
    from freehold.train.model import load_base, set_threads

    settings = settings or load_settings()
    store = store or open_store(settings)
    q = check_quant(quant)
    if loss not in KD_KINDS:
        raise UsageError(f"unknown distillation loss {loss!r}", f"use one of {', '.join(KD_KINDS)}")
    if heal_steps < 0:
        raise UsageError("--heal-steps cannot be negative", "0 prunes without healing")
    teacher_entry = store.get(name)
    dataset = store.get(data, kind="dataset")
    base_name, _ = parse_name(teacher_entry.name)
    target = output or f"{base_name}-small"
    target_name, target_tag = parse_name(target)
    if store.has(format_name(target_name, target_tag or "latest")):
        raise UsageError(f"a model named {target} already exists", "choose another name with -o")
    licence = inherit(store, target, models=[teacher_entry])
    set_threads(settings.threads)
    torch.manual_seed(0)
    source_text = store.text_layer(teacher_entry.manifest, MediaType.TEMPLATE)
    template = ChatTemplate(source_text) if source_text else None
    hf_dir = hf_directory(store, teacher_entry, progress)
    teacher, tokenizer = load_base(hf_dir, "cpu")
    n_layers = int(teacher.config.num_hidden_layers)
    if not 0 <= drop_layers <= n_layers - 2:
        raise UsageError(f"cannot drop {drop_layers} of {n_layers} layers", f"drop between 0 and {n_layers - 2}")
    train = _batches_from(store, dataset, template, tokenizer, "train", max_seq_len)
    if not train:
        raise UsageError(f"dataset {dataset.name} has no training conversations", "import some mail or a table")
    emit(progress, "measuring each layer's influence")
    calibration = [(b[0], b[1]) for b in train[:16]]
    influence = block_influence(teacher, calibration)
    drop = least_influential(influence, drop_layers)
    student, _ = load_base(hf_dir, "cpu")
    prune_layers(student, drop)
    if mlp_width is not None:
        prune_mlp(student, mlp_importance(student, calibration), mlp_width)
    losses: list[float] = []
    if heal_steps:
        emit(progress, f"healing: {heal_steps} steps of distillation from {teacher_entry.name}")
        losses = heal(student, teacher, train, heal_steps, lr=lr, kind=loss, temperature=temperature,
                      ce_weight=ce_weight)
    recipe = {"drop_layers": drop, "layers": [n_layers, n_layers - len(drop)], "influence": [round(x, 5) for x in
              influence], "mlp_width": mlp_width, "heal_steps": heal_steps, "lr": lr, "loss": loss,
              "temperature": temperature, "ce_weight": ce_weight, "max_seq_len": max_seq_len, "quant": q,
              "train_examples": len(train), "train_tokens": int(sum(b[0].numel() for b in train)),
              "first_losses": [round(x, 4) for x in losses[:5]], "last_losses": [round(x, 4) for x in losses[-5:]]}
    with store.temp_dir("compress") as tmp_s, tempfile.TemporaryDirectory(dir=tmp_s) as work:
        tmp = Path(work)
        student_dir = save_student(student, hf_dir, tmp / "student")
        del student, teacher
        emit(progress, f"exporting the student ({q})")
        out = export_gguf(student_dir, None, tmp / f"{target_name}-{q}.gguf", q, chat_template=source_text,
                          threads=settings.threads, license=licence.expression)
        teacher_gguf = export_gguf(hf_dir, None, tmp / f"teacher-{q}.gguf", q, chat_template=source_text,
                                   threads=settings.threads, license=licence.expression)
        if held_out_split(dataset) is not None:
            emit(progress, "measuring the teacher and the student")

            def tokenize(text: str) -> list[int]:
                return list(tokenizer(text).input_ids)

            texts = held_out_text(store, dataset.name, template, tokenize)
            recipe["measured"] = {"teacher": dataclasses.asdict(measure(teacher_gguf, q, texts, settings.threads)),
                                  "student": dataclasses.asdict(measure(out, q, texts, settings.threads)),
                                  "top1_agreement": top1_agreement(teacher_gguf, out, texts, settings.threads)}
        source = {"type": "compress", "from": teacher_entry.name, "from_manifest": teacher_entry.manifest_digest,
                  "teacher": teacher_entry.name, "dataset": dataset.name, "quant": q, "recipe": recipe,
                  "licence_from": licence.sources}
        params = store.text_layer(teacher_entry.manifest, MediaType.PARAMS)
        staged = store.stage_gguf(out, target, source=source, params=json.loads(params) if params else None,
                                  progress=progress)
        staged = dataclasses.replace(staged, layers=staged.layers + licence.layers(store, [teacher_entry]))
    weights = [r for r in layer_refs(teacher_entry.manifest, "teacher") if r["media_type"] in MediaType.WEIGHTS]
    calibration_ref = ref("dataset", "sha256:" + str(dataset.manifest.config.get("merkle_root", "")), MERKLE,
                          name=dataset.name)

    def record(rec: Any, m: Any) -> Any:
        return rec.record_export(m.name, inputs=[*weights, calibration_ref], outputs=layer_refs(m, "gguf"),
                                 method=f"compress/prune+distill/{q}",
                                 params={"teacher": teacher_entry.manifest_digest, **recipe},
                                 license=licence.expression)

    return licence.apply_naming(store, commit_recorded(store, staged, record))
