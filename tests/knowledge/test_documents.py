"""Converters and chunking: each format on a small real file written here, ids stable, threads as passages."""

from __future__ import annotations

from pathlib import Path

import pytest

from freehold.errors import UsageError
from freehold.knowledge import convert_document
from freehold.knowledge.documents import (
    MAX_WORDS,
    chunk_text,
    document_passages,
    find_documents,
    scrub_document,
    thread_passages,
    thread_title,
)
from tests.knowledge.conftest import POLICIES, write_pdf

DIGEST = "sha256:" + "ab" * 32


def test_markdown_headings_front_matter_and_code(tmp_path: Path) -> None:
    md = tmp_path / "faq.md"
    md.write_text(
        "---\ntitle: Shop FAQ\n---\n# Ignored as title when front matter names one\n\nIntro line.\n\n"
        "## Shipping\n\nWe ship\nworldwide.\n\n```\n# not a heading\n```\n\n"
        "Returns\n-------\n\nSee the [returns page](https://example.org/r) ![logo](x.png).\n",
        encoding="utf-8",
    )
    doc = convert_document(md)
    assert doc.title == "Shop FAQ" and doc.format == "markdown"
    headings = [s.heading for s in doc.sections]
    assert headings[0] == ("Ignored as title when front matter names one",)
    assert ("Ignored as title when front matter names one", "Shipping") in headings
    shipping = next(s for s in doc.sections if s.heading[-1] == "Shipping")
    assert "# not a heading" in shipping.text  # inside a code fence
    returns = next(s for s in doc.sections if s.heading[-1] == "Returns")
    assert "returns page" in returns.text and "https://" not in returns.text and "logo" in returns.text
    passages = document_passages(doc, DIGEST, "faq.md")
    shipping_passage = next(p for p in passages if p.id.endswith("/shipping"))
    assert "We ship worldwide." in shipping_passage.text  # soft wrap joined
    assert shipping_passage.title == "Shop FAQ: Ignored as title when front matter names one / Shipping"


def test_policy_page_passages_have_stable_ids_and_titles() -> None:
    doc = convert_document(POLICIES)
    assert doc.title == "Acme Outdoor customer policies"
    a = document_passages(doc, DIGEST, "acme-policies.md")
    b = document_passages(convert_document(POLICIES), DIGEST, "acme-policies.md")
    assert [p.id for p in a] == [p.id for p in b]
    assert len({p.id for p in a}) == len(a)
    warranty = next(p for p in a if p.id == "abababababab:warranty-and-repairs")
    assert warranty.title == "Acme Outdoor customer policies: Warranty and repairs"
    assert "two-year warranty" in warranty.text and warranty.kind == "document"
    assert warranty.citation() == {"id": warranty.id, "title": warranty.title, "source": "acme-policies.md"}


def test_html_title_headings_lists_tables_and_no_script(tmp_path: Path) -> None:
    page = tmp_path / "returns.html"
    page.write_text(
        "<html><head><title>Returns &amp; refunds</title><style>p{color:red}</style></head><body>"
        "<nav>Home | Shop</nav><h1>Returns</h1><p>Send it back within <b>60 days</b>.</p>"
        "<h2>How</h2><ul><li>Print the label</li><li>Drop it off</li></ul>"
        "<table><tr><th>Item</th><th>Days</th></tr><tr><td>Tents</td><td>60</td></tr></table>"
        "<script>alert('x')</script></body></html>",
        encoding="utf-8",
    )
    doc = convert_document(page)
    assert doc.title == "Returns" and doc.format == "html"
    text = doc.text
    assert "Send it back within 60 days." in text
    assert "- Print the label" in text and "Tents | 60" in text
    assert "alert" not in text and "color" not in text and "Home" not in text
    assert [s.heading for s in doc.sections] == [(), ("How",)]


def test_plain_text(tmp_path: Path) -> None:
    txt = tmp_path / "prices.txt"
    txt.write_text("Summit 45L backpack: £120\n\nTrailblazer 2 tent: £240\n", encoding="utf-8")
    doc = convert_document(txt)
    assert doc.title == "prices" and doc.sections[0].heading == ()
    passages = document_passages(doc, DIGEST, "prices.txt")
    assert [p.id for p in passages] == ["abababababab:top"] and "£240" in passages[0].text


def test_pdf_pages_and_metadata_title(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    pdf = write_pdf(tmp_path / "warranty.pdf", ["Zips are covered for two years.", "Send us a photo."],
                    title="Warranty terms")
    doc = convert_document(pdf)
    assert doc.title == "Warranty terms" and doc.format == "pdf"
    assert [s.heading for s in doc.sections] == [("page 1",), ("page 2",)]
    passages = document_passages(doc, DIGEST, "warranty.pdf")
    assert [p.id for p in passages] == ["abababababab:page-1", "abababababab:page-2"]
    assert "covered for two years" in passages[0].text and passages[1].title == "Warranty terms: page 2"


def test_pdf_without_text_is_refused_with_a_fix(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    pdf = write_pdf(tmp_path / "scan.pdf", [""])
    with pytest.raises(UsageError, match="no text layer") as err:
        convert_document(pdf)
    assert "OCR" in (err.value.hint or "")


def test_docx_title_headings_lists_and_tables(tmp_path: Path) -> None:
    docx = pytest.importorskip("docx")
    d = docx.Document()
    d.core_properties.title = "Price list"
    d.add_heading("Backpacks", level=1)
    d.add_paragraph("All packs have a two-year warranty.")
    d.add_paragraph("Rain cover included", style="List Bullet")
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Summit 45L", "£120"
    table.cell(1, 0).text, table.cell(1, 1).text = "Ridge 30L", "£90"
    d.add_heading("Tents", level=1)
    d.add_paragraph("Trailblazer 2: £240.")
    path = tmp_path / "prices.docx"
    d.save(str(path))
    doc = convert_document(path)
    assert doc.title == "Price list" and doc.format == "docx"
    assert [s.heading for s in doc.sections] == [("Backpacks",), ("Tents",)]
    packs = doc.sections[0].text
    assert "two-year warranty" in packs and "- Rain cover included" in packs and "Summit 45L | £120" in packs
    ids = [p.id for p in document_passages(doc, DIGEST, "prices.docx")]
    assert ids == ["abababababab:backpacks", "abababababab:tents"]


def test_unsupported_and_missing_files_say_what_is_supported(tmp_path: Path) -> None:
    odd = tmp_path / "notes.rtf"
    odd.write_text("x")
    with pytest.raises(UsageError, match=r"cannot index \.rtf") as err:
        convert_document(odd)
    assert ".docx" in (err.value.hint or "")
    with pytest.raises(UsageError, match="no such file"):
        find_documents([tmp_path / "absent.md"])
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\ntext")
    (tmp_path / "docs" / ".hidden.md").write_text("# H\n\ntext")
    (tmp_path / "docs" / "skip.bin").write_bytes(b"\0")
    assert [Path(p).name for p, _ in find_documents([tmp_path / "docs"])] == ["a.md"]


def test_scrubbing_a_document_replaces_contact_details(tmp_path: Path) -> None:
    from freehold.data import Scrubber

    md = tmp_path / "contact.md"
    md.write_text("# Contact\n\nWrite to jane.doe@example.com or call +44 20 7946 0000.\n", encoding="utf-8")
    doc = scrub_document(convert_document(md), Scrubber().scrub)
    assert "jane.doe@example.com" not in doc.text and "7946" not in doc.text


def test_chunks_respect_the_word_limit() -> None:
    long_para = " ".join(f"word{i}." for i in range(MAX_WORDS * 2 + 7))
    pieces = chunk_text("Short intro.\n\n" + long_para)
    assert all(len(p.split()) <= MAX_WORDS for p in pieces)
    assert sum(len(p.split()) for p in pieces) == MAX_WORDS * 2 + 9


def test_thread_passages_use_the_example_id_and_question_as_title() -> None:
    row = {"id": "e" * 64, "thread": "t", "messages": [
        {"role": "user", "content": "Hi,\n\nThe zip on my Summit 45L broke. Is it covered? I bought it in May."},
        {"role": "assistant", "content": "Yes, zips are covered by our two-year warranty."},
    ]}
    [p] = thread_passages(row, "acme:latest", "sha256:" + "c" * 64)
    assert p.id == row["id"] and p.kind == "thread" and p.source == "acme:latest"
    assert p.title == "The zip on my Summit 45L broke."
    assert p.text.startswith("Question: Hi,") and "Answer: Yes, zips" in p.text
    assert thread_title({**row, "subject": "Broken zip"}) == "Broken zip"
    long = {**row, "messages": [row["messages"][0], {"role": "assistant", "content": "ok. " * (MAX_WORDS * 2)}]}
    ids = [q.id for q in thread_passages(long, "acme:latest", "")]
    assert ids[0] == row["id"] and ids[1] == row["id"] + "#2" and len(ids) >= 3
