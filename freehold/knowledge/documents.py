"""Sources to passages: documents (Markdown, HTML, plain text, PDF, DOCX) and dataset threads.

``convert_document(path)`` reads a file into a ``Document``: a title and sections, each
with its heading path (``("Returns", "Refund times")``) or page; ``scrub_document``
replaces personal data in it and ``document_passages`` cuts it into ``Passage`` records
with stable ids: the file's digest prefix,
the heading path as a slug and a part number (``3fa9c1e2b7d4:returns/refund-times.2``), so
the same bytes always give the same ids and a changed file gives new ones.
``thread_passages`` does the same for one dataset row: its id is the dataset example id.

Converters are chosen by file extension; PDF uses pypdf and DOCX python-docx (both
imported only when such a file is read), HTML the standard library's ``html.parser``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from freehold.errors import DependencyError, UsageError

FORMATS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "text",
    ".text": "text",
    ".pdf": "pdf",
    ".docx": "docx",
}
# About 200 tokens: one policy section or one question and its answer is one passage, and a
# context budget of ~1,000 tokens holds four of them.
MAX_WORDS = 150
KINDS = ("thread", "document")
# Bump when conversion or chunking changes what passages a source gives: indexed sources
# of another version are re-read on the next refresh instead of keeping their old passages.
PASSAGE_FORMAT = 1


@dataclass(frozen=True)
class Passage:
    """One retrievable piece of text and where it came from.

    ``source`` is the dataset name (threads) or the document's path as it was added;
    ``digest`` the dataset's Merkle root or the document file's sha256. For threads ``id``
    is the dataset example id (``ID#2``, ``ID#3`` for the further parts of a long thread).
    ``score`` (fused rank, higher is better) and ``similarity`` (cosine of the question to
    the passage, -1..1) are set by search.
    """

    id: str
    title: str
    text: str
    source: str
    kind: str
    digest: str = ""
    score: float = 0.0
    similarity: float | None = None

    def citation(self) -> dict[str, str]:
        """What an answer cites: ``{"id", "title", "source"}``."""
        return {"id": self.id, "title": self.title, "source": self.source}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def record(self) -> dict[str, str]:
        """The stored form (one passages.jsonl line): no search scores."""
        return {"id": self.id, "title": self.title, "text": self.text, "source": self.source,
                "kind": self.kind, "digest": self.digest}


@dataclass
class Section:
    heading: tuple[str, ...]  # heading path under the document title; ("page 3",) for PDFs
    text: str
    anchor: str = ""  # slug for ids; derived from the heading when empty


@dataclass
class Document:
    title: str
    format: str
    sections: list[Section] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections if s.text)


# -- converters -------------------------------------------------------------------------------


def document_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"{path}: cannot index {path.suffix or 'files without an extension'}",
            f"supported documents: {', '.join(sorted(FORMATS))}",
        )
    return fmt


def convert_document(path: Path) -> Document:
    """Read a document file into a title and sections (UsageError when it cannot be read)."""
    path = Path(path)
    fmt = document_format(path)
    try:
        if fmt == "pdf":
            return _pdf(path)
        if fmt == "docx":
            return _docx(path)
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", "check the path and its permissions") from exc
    text = raw.decode("utf-8-sig", errors="replace")
    if fmt == "markdown":
        return _markdown(text, path.stem)
    if fmt == "html":
        return _html(text, path.stem)
    return Document(path.stem, "text", [Section((), text.strip())])


_FENCE = re.compile(r"^\s*(```|~~~)")
_ATX = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^(=+|-+)\s*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")


def _markdown(text: str, stem: str) -> Document:
    title = ""
    lines = text.splitlines()
    if lines and lines[0].strip() == "---":  # YAML front matter
        for i, line in enumerate(lines[1:], 1):
            if line.strip() in ("---", "..."):
                for meta in lines[1:i]:
                    key, _, value = meta.partition(":")
                    if key.strip().lower() == "title":
                        title = value.strip().strip("'\"")
                lines = lines[i + 1 :]
                break
    headed: list[tuple[int, str] | str] = []  # (level, heading) or a text line
    fenced = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
        m = None if fenced else _ATX.match(line)
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if m:
            headed.append((len(m.group(1)), m.group(2)))
        elif not fenced and line.strip() and _SETEXT.match(nxt) and not _SETEXT.match(line):
            headed.append((1 if nxt.strip().startswith("=") else 2, line.strip()))
        elif not fenced and _SETEXT.match(line) and headed and isinstance(headed[-1], tuple):
            continue  # the underline of a setext heading
        else:
            headed.append(_LINK.sub(r"\1", _IMAGE.sub(r"\1", line)))
    return _sections_from(headed, title, stem, "markdown")


def _sections_from(items: list[tuple[int, str] | str], title: str, stem: str, fmt: str) -> Document:
    """Group lines under their heading path; the first level-1 heading is the title if none yet."""
    headings = [it for it in items if isinstance(it, tuple)]
    top = min((lvl for lvl, _ in headings), default=1)
    if not title and headings and headings[0][0] == top and sum(1 for lvl, _ in headings if lvl == top) == 1:
        title = headings[0][1]
        items = [it for it in items if it is not headings[0]]
    doc = Document(title or stem, fmt)
    path: list[tuple[int, str]] = []
    buf: list[str] = []

    def flush() -> None:
        body = "\n".join(buf).strip()
        if body:
            doc.sections.append(Section(tuple(h for _, h in path), re.sub(r"\n{3,}", "\n\n", body)))
        buf.clear()

    for it in items:
        if isinstance(it, tuple):
            flush()
            level, heading = it
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, heading))
        else:
            buf.append(it)
    flush()
    return doc


_SKIP_TAGS = {"script", "style", "noscript", "template", "svg", "head", "nav", "footer"}
_BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "aside", "header", "ul", "ol", "li", "table", "tr",
    "blockquote", "pre", "dl", "dt", "dd", "br", "hr", "form", "figure", "figcaption", "details", "summary",
}


class _HTMLText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.items: list[tuple[int, str] | str] = []
        self.title = ""
        self.line: list[str] = []
        self.skip = 0
        self.in_title = False
        self.heading: int | None = None
        self.pre = 0

    def _end_line(self) -> None:
        text = "".join(self.line)
        text = text.strip() if self.pre else " ".join(text.split())
        if self.heading is not None:
            if text:
                self.items.append((self.heading, text))
        elif text:
            self.items.append(text)
            self.items.append("")
        self.line = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        elif tag in _SKIP_TAGS:
            self.skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self._end_line()
            self.heading = int(tag[1])
        elif tag in _BLOCK_TAGS:
            self._end_line()
            if tag == "li":
                self.line.append("- ")
            if tag == "pre":
                self.pre += 1
        elif tag in ("td", "th") and self.line:
            self.line.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif re.fullmatch(r"h[1-6]", tag):
            self._end_line()
            self.heading = None
        elif tag in _BLOCK_TAGS:
            self._end_line()
            if tag == "pre":
                self.pre = max(0, self.pre - 1)

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data
        elif not self.skip:
            self.line.append(data)


def _html(text: str, stem: str) -> Document:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    parser._end_line()
    doc = _sections_from(parser.items, "", stem, "html")
    if doc.title == stem and parser.title.strip():
        # A lone <h1> names the document (<title> often carries the site's name too); else <title>.
        doc.title = " ".join(parser.title.split())
    return doc


def _pdf(path: Path) -> Document:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    except ImportError as exc:
        raise DependencyError("reading PDF documents needs pypdf", "pip install pypdf") from exc
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise UsageError(f"{path} is encrypted", "save an unencrypted copy and add that")
        meta = reader.metadata
        title = (meta.title if meta else None) or path.stem
        sections = [
            Section((f"page {n}",), (page.extract_text() or "").strip(), f"page-{n}")
            for n, page in enumerate(reader.pages, 1)
        ]
    except (PyPdfError, ValueError, KeyError) as exc:
        raise UsageError(f"cannot read the PDF {path}: {exc}", "check that the file is a complete PDF") from exc
    if not any(s.text for s in sections):
        raise UsageError(f"{path} has no text layer (a scanned PDF?)",
                         "run it through OCR first, or add the text as a .txt or .md file")
    return Document(str(title).strip() or path.stem, "pdf", [s for s in sections if s.text])


def _docx(path: Path) -> Document:
    try:
        import docx
        from docx.table import Table
    except ImportError as exc:
        raise DependencyError("reading DOCX documents needs python-docx", "pip install python-docx") from exc
    try:
        d = docx.Document(str(path))
    except Exception as exc:  # python-docx raises zipfile, KeyError, lxml errors for bad files
        raise UsageError(f"cannot read the DOCX file {path}: {exc}", "check that it is a Word .docx file") from exc
    title = (d.core_properties.title or "").strip()
    items: list[tuple[int, str] | str] = []
    for block in d.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells = [c.text.strip() for c in row.cells]
                items.append(" | ".join(dict.fromkeys(c for c in cells if c)))  # merged cells repeat
            items.append("")
            continue
        text = block.text.strip()
        style = (block.style.name if block.style is not None else "") or ""
        if not text:
            continue
        if style == "Title":
            title = title or text
        elif m := re.match(r"Heading (\d)", style):
            items.append((int(m.group(1)), text))
        else:
            items.append(("- " if style.startswith("List") else "") + text)
            items.append("")
    return _sections_from(items, title, path.stem, "docx")


# -- passages ---------------------------------------------------------------------------------


def slug(text: str) -> str:
    return re.sub(r"[^\w]+", "-", text.lower()).strip("-")[:48] or "section"


def chunk_text(text: str, max_words: int = MAX_WORDS) -> list[str]:
    """Paragraphs packed into pieces of at most ``max_words`` words; long paragraphs split at sentences."""
    pieces: list[str] = []
    cur: list[str] = []
    words = 0

    def push() -> None:
        nonlocal words
        if cur:
            pieces.append("\n\n".join(cur))
        cur.clear()
        words = 0

    for para in _units(text, max_words):
        n = len(para.split())
        if words and words + n > max_words:
            push()
        cur.append(para)
        words += n
    push()
    return pieces


_STRUCTURED_LINE = re.compile(r"^\s*(?:[-*+>|]|\d+[.)]\s|```|~~~|    )")


def unwrap(para: str) -> str:
    """Join a paragraph's soft-wrapped lines ("mild\nsoap"), but keep lists, tables and code as lines."""
    lines = para.split("\n")
    if len(lines) == 1 or any(_STRUCTURED_LINE.match(line) for line in lines):
        return para
    return " ".join(line.strip() for line in lines)


def _units(text: str, max_words: int) -> Iterator[str]:
    for para in re.split(r"\n\s*\n", text):
        para = unwrap(para.strip())
        if not para:
            continue
        if len(para.split()) <= max_words:
            yield para
            continue
        sentence: list[str] = []
        for s in re.split(r"(?<=[.!?])\s+", para):
            words = s.split()
            while len(words) > max_words:  # a run-on line: cut by words
                yield " ".join(words[:max_words])
                words = words[max_words:]
            if len(sentence) + len(words) > max_words:
                yield " ".join(sentence)
                sentence = []
            sentence += words
        if sentence:
            yield " ".join(sentence)


def scrub_document(doc: Document, scrub: Callable[[str], str]) -> Document:
    """The document with ``scrub`` applied to its title, headings and text, in reading order."""
    title = scrub(doc.title)
    sections = [Section(tuple(scrub(h) for h in s.heading), scrub(s.text), s.anchor) for s in doc.sections]
    return Document(title, doc.format, sections)


def document_passages(doc: Document, digest: str, source: str) -> list[Passage]:
    """Cut a converted document into passages with ids ``<digest prefix>:<heading slug>[.<part>]``."""
    title = doc.title
    prefix = digest.removeprefix("sha256:")[:12]
    out: list[Passage] = []
    seen: dict[str, int] = {}
    for section in doc.sections:
        heading = section.heading
        anchor = section.anchor or ("/".join(slug(h) for h in heading) if heading else "top")
        seen[anchor] = seen.get(anchor, 0) + 1
        if seen[anchor] > 1:
            anchor = f"{anchor}-{seen[anchor]}"  # two sections under the same heading
        full_title = f"{title}: {' / '.join(heading)}" if heading else title
        for n, piece in enumerate(chunk_text(section.text), 1):
            pid = f"{prefix}:{anchor}" + (f".{n}" if n > 1 else "")
            out.append(Passage(pid, full_title, piece, source, "document", digest))
    return out


GREETING_LINE = re.compile(r"^(hi|hello|hey|dear|good (morning|afternoon|evening))\b.{0,40}$", re.IGNORECASE)
ROLE_LABELS = {"user": "Question", "assistant": "Answer"}


def thread_title(row: dict[str, Any]) -> str:
    """The thread's subject when the dataset keeps one, else the first sentence of its question."""
    subject = str(row.get("subject") or "").strip()
    if subject:
        return subject
    first = next((t["content"] for t in row.get("messages", []) if t.get("role") == "user"), "")
    for para in re.split(r"\n\s*\n", first):
        lines = [ln for ln in para.strip().splitlines() if not GREETING_LINE.match(ln.strip())]
        text = " ".join(" ".join(lines).split())  # mail is hard-wrapped: a sentence spans lines
        if not text:
            continue
        sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
        return sentence if len(sentence) <= 80 else sentence[:77].rsplit(" ", 1)[0] + "..."
    return "conversation"


def thread_passages(row: dict[str, Any], source: str, digest: str) -> list[Passage]:
    """A dataset row (``{"id", "messages", ...}``) as passages: question and answer turns, labelled."""
    title = thread_title(row)
    turns = [t for t in row.get("messages", []) if t.get("role") in ROLE_LABELS and t.get("content", "").strip()]
    text = "\n\n".join(f"{ROLE_LABELS[t['role']]}: {t['content'].strip()}" for t in turns)
    pieces = chunk_text(text)
    return [
        Passage(row["id"] + (f"#{n}" if n > 1 else ""), title, piece, source, "thread", digest)
        for n, piece in enumerate(pieces, 1)
    ]


def find_documents(paths: Iterable[Path]) -> list[tuple[Path, str]]:
    """(file, name as the user sees it) for each file, and each supported file under each folder."""
    out: list[tuple[Path, str]] = []
    problems: list[str] = []
    for path in paths:
        path = Path(path).expanduser()
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in FORMATS
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                problems.append(f"{path}: no documents ({', '.join(sorted(FORMATS))}) in this folder")
            out += [(p, str(p)) for p in found]
        elif path.is_file():
            document_format(path)
            out.append((path, str(path)))
        else:
            problems.append(f"{path}: no such file or folder")
    if problems:
        raise UsageError("cannot add the documents:\n  " + "\n  ".join(problems), "check the paths")
    return out
