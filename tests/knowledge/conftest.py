"""Fixtures for the knowledge tests: the sample shop imported and indexed once per module."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from freehold.data import import_dataset
from freehold.knowledge import build_knowledge
from freehold.store import Store

ROOT = Path(__file__).resolve().parents[2]
MAILBOX = ROOT / "examples" / "acme-support.mbox"
POLICIES = ROOT / "examples" / "acme-policies.md"
QUESTIONS = json.loads((Path(__file__).parent / "questions.json").read_text(encoding="utf-8"))


@dataclass
class Shop:
    store: Store
    kb: str  # the mailbox's train threads + the policy page
    docs: str  # the policy page alone


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    """The sample mailbox imported as 'acme' and indexed with the policy page (about 3 s)."""
    store = Store(tmp_path_factory.mktemp("shop-home"))
    import_dataset([MAILBOX], "acme", ours=["acme-outdoor.example"], store=store)
    build_knowledge("acme-kb", datasets=["acme"], documents=[POLICIES], store=store)
    build_knowledge("acme-docs", documents=[POLICIES], store=store)
    return Shop(store, "acme-kb", "acme-docs")


def write_pdf(path: Path, pages: list[str], title: str | None = None) -> Path:
    """A minimal valid PDF (one Helvetica text line per entry of ``pages``), written by hand."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode()
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
                       f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    info = None
    if title:
        objects.append(f"<< /Title ({title}) >>".encode())
        info = len(objects)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    trailer = f"<< /Size {len(objects) + 1} /Root 1 0 R" + (f" /Info {info} 0 R" if info else "") + " >>"
    out += f"trailer\n{trailer}\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


def top_phrase_hit(passages: list[Any], phrase: str) -> bool:
    return bool(passages) and phrase.lower() in passages[0].text.lower()
