"""The engine on a tiny generated model: both backends, sampling, limits, templates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from freehold.engine import Engine, SamplingParams, load_engine
from freehold.engine.base import StopScanner
from freehold.engine.chat import ChatTemplate
from freehold.errors import ContextOverflowError, InvalidModelError, NoChatTemplateError, UsageError
from freehold.store import Store

GREEDY = SamplingParams(temperature=0, max_tokens=12, repeat_penalty=1.0)
MESSAGES = [{"role": "user", "content": "the cat sat on the mat"}]


@pytest.fixture
def engine(store: Store, tiny_gguf: Path) -> Engine:
    store.import_gguf(tiny_gguf, "tiny")
    e = load_engine("tiny", store=store, threads=1)
    yield e
    e.close()


def test_greedy_chat_is_deterministic_and_counts_tokens(engine: Engine) -> None:
    first = engine.complete(engine.chat(MESSAGES, GREEDY))
    second = engine.complete(engine.chat(MESSAGES, GREEDY))
    assert first.text == second.text and first.text
    assert first.finish_reason in ("length", "stop")
    prompt = engine.render_chat(MESSAGES)
    assert first.prompt_tokens == len(engine.tokenize_prompt(prompt))
    if first.finish_reason == "length":
        assert first.completion_tokens == 12


def test_seed_makes_sampling_reproducible(engine: Engine) -> None:
    p = SamplingParams(temperature=5.0, top_k=0, top_p=1.0, min_p=0.0, seed=7, max_tokens=16)
    a = engine.complete(engine.generate("hello", p)).text
    b = engine.complete(engine.generate("hello", p)).text
    assert a == b
    others = {engine.complete(engine.generate("hello", SamplingParams(
        temperature=5.0, top_k=0, top_p=1.0, min_p=0.0, seed=s, max_tokens=16))).text for s in range(1, 6)}
    assert len(others | {a}) > 1, "different seeds should give different samples"


def test_max_tokens_and_stop_strings(engine: Engine) -> None:
    free = engine.complete(engine.generate("the", SamplingParams(temperature=0, max_tokens=20,
                                                                  repeat_penalty=1.0)))
    assert free.finish_reason == "length" and free.completion_tokens == 20
    # Stop on a piece of text the model is known to produce; it must not leak into output.
    cut = free.text[3:6]
    stopped = engine.complete(engine.generate("the", SamplingParams(temperature=0, max_tokens=20,
                                                                     repeat_penalty=1.0, stop=(cut,))))
    assert stopped.finish_reason == "stop"
    assert cut not in stopped.text
    assert free.text.startswith(stopped.text)


def test_prompt_over_context_is_a_clear_error(store: Store, tiny_gguf: Path) -> None:
    store.import_gguf(tiny_gguf, "tiny")
    engine = load_engine("tiny", store=store, threads=1)
    assert engine.n_ctx == 512
    with pytest.raises(ContextOverflowError) as exc:
        engine.complete(engine.generate("the cat " * 300, GREEDY))
    assert exc.value.n_ctx == 512 and exc.value.n_prompt > 512
    assert "512 tokens" in str(exc.value) and "--ctx" in str(exc.value)
    engine.close()


def test_context_is_capped_at_the_trained_length(store: Store, tiny_gguf: Path) -> None:
    store.import_gguf(tiny_gguf, "tiny")
    engine = load_engine("tiny", store=store, context=100_000, threads=1)
    assert engine.n_ctx == 512  # the tiny model's trained context
    engine.close()


def test_base_model_cannot_chat_but_completes(store: Store, tiny_base_gguf: Path) -> None:
    store.import_gguf(tiny_base_gguf, "base")
    engine = load_engine("base", store=store, threads=1)
    with pytest.raises(NoChatTemplateError, match="base model"):
        engine.render_chat(MESSAGES)
    assert engine.complete(engine.generate("once upon", GREEDY)).completion_tokens > 0
    engine.close()


def test_bad_sampling_parameters_are_rejected(engine: Engine) -> None:
    with pytest.raises(UsageError) as exc:
        engine.complete(engine.generate("x", SamplingParams(temperature=-1, top_p=2)))
    assert "temperature" in str(exc.value) and "top_p" in str(exc.value)


def test_embeddings_are_normalised_vectors(engine: Engine) -> None:
    vecs = engine.embed(["the cat", "a dog", "the cat"])
    assert len(vecs) == 3 and len(vecs[0]) == 64
    assert np.allclose([np.linalg.norm(v) for v in vecs], 1.0, atol=1e-4)
    assert np.allclose(vecs[0], vecs[2])


def test_torch_backend_matches_llama_cpp(store: Store, tiny_gguf: Path) -> None:
    """The same GGUF through transformers (dequantised, converted once) and llama.cpp."""
    entry = store.import_gguf(tiny_gguf, "tiny")
    llama = load_engine("tiny", store=store, threads=1)
    torch_engine = load_engine("tiny", store=store, backend="torch", threads=1)
    tokens = llama.tokenize_prompt(llama.render_chat(MESSAGES))
    assert torch_engine.tokenize_prompt(torch_engine.render_chat(MESSAGES)) == tokens
    a = llama.backend.logits(tokens)  # type: ignore[attr-defined]
    b = torch_engine.backend.logits(tokens)  # type: ignore[attr-defined]
    assert a.shape == b.shape
    # llama.cpp's F32 kernels vs PyTorch: measured max difference ~3e-3 on logits of magnitude ~30.
    assert np.abs(a - b).max() < 0.05
    text = torch_engine.complete(torch_engine.chat(MESSAGES, GREEDY)).text
    assert text
    # The dequantised safetensors are stored once and reused.
    gguf_digest = entry.manifest.weights[0].digest
    assert store.derived(gguf_digest, "hf-safetensors-f32") is not None
    llama.close()
    torch_engine.close()


def test_torch_backend_loads_hf_directories(store: Store, tiny_hf: Path) -> None:
    store.import_path(tiny_hf, "tiny-hf")
    engine = load_engine("tiny-hf", store=store, backend="torch", threads=1)
    out = engine.complete(engine.chat(MESSAGES, GREEDY))
    assert out.completion_tokens > 0
    with pytest.raises(InvalidModelError, match="no GGUF"):
        load_engine("tiny-hf", store=store)
    engine.close()


def test_stop_scanner_holds_back_partial_stops_and_splits_utf8() -> None:
    s = StopScanner(["STOP"])
    assert s.feed(b"hello S") == "hello "  # "S" might start STOP: held back
    assert s.feed(b"T") == ""
    assert s.feed(b"Oh") == "STOh"  # it did not: released
    assert not s.stopped
    s = StopScanner(["STOP"])
    assert s.feed(b"abc ST") == "abc "
    assert s.feed(b"OP more") == ""
    assert s.stopped
    s = StopScanner([])
    euro = "€".encode()
    assert s.feed(euro[:1]) == "" and s.feed(euro[1:]) == "€"


def test_chat_template_renders_chatml() -> None:
    from freehold.testing import CHATML

    t = ChatTemplate(CHATML)
    text = t.render([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    assert text == "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_batched_backend_reuses_a_shared_prompt_prefix(store: Store, tiny_gguf: Path) -> None:
    """The scheduler's prefix reuse: a second prompt sharing an opening decodes only the rest."""
    from freehold.engine.batched import BatchedLlamaBackend
    from freehold.store import MediaType

    entry = store.import_gguf(tiny_gguf, "tiny")
    backend = BatchedLlamaBackend(store.blob_path(entry.manifest.weights[0].digest), 512, 1, slots=2)
    engine = Engine(backend, entry, store.text_layer(entry.manifest, MediaType.TEMPLATE))
    system = {"role": "system", "content": "You answer questions about the shop. " * 4}
    first = engine.complete(engine.chat([system, {"role": "user", "content": "the cat"}], GREEDY))
    assert backend.reused_prefix_tokens == 0
    again = engine.complete(engine.chat([system, {"role": "user", "content": "the cat"}], GREEDY))
    assert again.text == first.text  # same prompt, cached prefix: same greedy answer
    reused = backend.reused_prefix_tokens
    assert reused >= len(engine.tokenize_prompt(engine.render_chat([system]))) - 1
    engine.complete(engine.chat([system, {"role": "user", "content": "a dog"}], GREEDY))
    assert backend.reused_prefix_tokens > reused  # the system prompt again
    backend.close()


def test_family_templates_render_the_family_turns_and_are_prefix_stable() -> None:
    from freehold.engine.chat import FAMILY_TEMPLATES, family_template

    convo = [{"role": "system", "content": "You are Maya."}, {"role": "user", "content": "Is the zip covered? "},
             {"role": "assistant", "content": "Yes, for two years."}, {"role": "user", "content": "Thanks"}]
    gemma = ChatTemplate(family_template("gemma"), "<bos>", "<eos>")
    assert gemma.render(convo) == (
        "<bos><start_of_turn>user\nYou are Maya.\n\nIs the zip covered?<end_of_turn>\n"
        "<start_of_turn>model\nYes, for two years.<end_of_turn>\n"
        "<start_of_turn>user\nThanks<end_of_turn>\n<start_of_turn>model\n")
    assert gemma.render(convo[1:2]) == ("<bos><start_of_turn>user\nIs the zip covered?<end_of_turn>\n"
                                        "<start_of_turn>model\n")
    for name in FAMILY_TEMPLATES:  # training finds the replies by rendering prefixes
        t = ChatTemplate(family_template(name), "<bos>", "<eos>")
        full = t.render(convo, add_generation_prompt=False)
        assert all(full.startswith(t.render(convo[:n], add_generation_prompt=False)) for n in range(1, 4)), name
    with pytest.raises(UsageError, match="use one of gemma, chatml"):
        family_template("alpaca")
