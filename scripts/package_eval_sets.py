"""Copy the public eval sets the built-in suites read into the package (freehold/evals/sets/).

    .venv/bin/python scripts/package_eval_sets.py                  # (re)write freehold/evals/sets/
    .venv/bin/python scripts/package_eval_sets.py --check          # exit 1 if the package differs

Source: upstream copies laid out like ../shared/data/evals (each set with its licence and
a SOURCE.txt naming the upstream commit). Only the files a suite reads are shipped, copied
byte for byte, so an eval record cites the same digests whether the data came from the
package or from ``--eval-data``. The one derived file set, the UDHR plain texts, is rebuilt
here from the upstream HTML (one heading, paragraph or list item per line) and checked
against the source's own txt/ when present. Each set folder gets its licence file(s) and a
SOURCE.txt with the upstream URL, commit, licence, what was left out and every shipped
file's SHA-256.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "freehold" / "evals" / "sets"


@dataclass(frozen=True)
class PublicSet:
    name: str
    files: tuple[str, ...]  # what the suite reads, relative to the set folder
    licence_files: tuple[str, ...]  # copied from the source folder
    upstream: str
    commit: str
    licence: str
    read_by: str
    notes: str = ""


CC_BY_SA_NOTICE = """CrowS-Pairs (Nangia et al., EMNLP 2020) by nyu-mll is licensed under the
Creative Commons Attribution-ShareAlike 4.0 International License (CC BY-SA 4.0):
https://creativecommons.org/licenses/by-sa/4.0/legalcode

Upstream states the licence in its README (no LICENSE file): "CrowS-Pairs is licensed
under a Creative Commons Attribution-ShareAlike 4.0 International License. It is created
using prompts taken from the ROCStories corpora and the fiction part of MNLI."
Source: https://github.com/nyu-mll/crows-pairs (data/crows_pairs_anonymized.csv), unmodified.
"""

UDHR_TEXT_NOTICE = """The texts of the Universal Declaration of Human Rights (UN General Assembly
resolution 217 A (III), 1948) and its translations are collected by the UN Office of the
High Commissioner for Human Rights (https://www.ohchr.org/EN/UDHR/Pages/UDHRIndex.aspx) and encoded by Unicode's
"UDHR in XML" project (http://efele.net/udhr/). The wooorm/udhr package they are taken
from (https://github.com/wooorm/udhr) calls the UDHR "the most translated copyright-free
document"; its own code and packaging are MIT (LICENSE, copied beside this file).
"""

SETS = (
    PublicSet("xstest", ("xstest_prompts.csv",), ("LICENSE", "README.upstream.md"),
              "https://github.com/paul-rottger/exaggerated-safety", "d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d",
              "CC BY 4.0 (the prompts)", "safety suite (250 safe + 200 unsafe prompts)",
              "Left out: the model_completions/ files (vendor licences; tests read them from "
              "../shared/data when present)."),
    PublicSet("advbench", ("harmful_behaviors.csv",), ("LICENSE",),
              "https://github.com/llm-attacks/llm-attacks (data/advbench/)", "098262edf85f807224e70ecd87b9d83716bf6b73",
              "MIT, Copyright (c) 2023 Andy Zou", "safety suite (520 harmful behaviours)",
              "Left out: harmful_strings.csv (no suite reads it)."),
    PublicSet("harmbench", ("harmbench_behaviors_text_all.csv",), ("LICENSE.txt",),
              "https://github.com/centerforaisafety/HarmBench (data/behavior_datasets/), via the vendored copy in "
              "https://github.com/busycalibrating/AdversariaLLM", "f970939273ea17b491fadf6001fddc36ed3ae3ff",
              "MIT, Copyright (c) 2024 centerforaisafety",
              "safety suite (200 standard + 100 contextual behaviours; the 100 copyright rows are skipped)",
              "Left out: the _test/_val splits (subsets of _all)."),
    PublicSet("crows-pairs", ("crows_pairs_anonymized.csv",), ("README.upstream.md",),
              "https://github.com/nyu-mll/crows-pairs (data/)", "8aaac11c485473159ec9328a65253a5be9a479dc",
              "CC BY-SA 4.0", "bias suite (1508 sentence pairs, 9 bias types)"),
    PublicSet("winobias", tuple(f"{kind}_stereotyped_type{t}.txt.test" for t in (1, 2) for kind in ("pro", "anti")),
              ("LICENSE",), "https://github.com/uclanlp/corefBias (WinoBias/wino/data/)",
              "0bce984dd081bbc10b0622f326727a024c607895", "MIT, Copyright (c) 2020 Natural Language Processing @UCLA",
              "bias suite (the four .test files, 4 x 396 sentences)",
              "Left out: the .dev files and the word lists (no suite reads them)."),
    PublicSet("bbq", ("Disability_status.jsonl", "Physical_appearance.jsonl", "Religion.jsonl",
                      "Sexual_orientation.jsonl"), ("LICENSE", "README.upstream.md"),
              "https://github.com/nyu-mll/BBQ (data/)", "bea11bd97d79217245b5871acd247b9d6eb24598",
              "CC BY 4.0", "bias suite (every *.jsonl here: 5196 questions)",
              "4 of BBQ's 11 categories, the ones in the source snapshot (the other 7 are 2.9 MB or more each); "
              "the bias suite reads every .jsonl in this folder, so adding an upstream category file adds it."),
    PublicSet("udhr-multilingual", tuple(f"txt/{code}.txt" for code in (
        "arb", "ben", "cmn_hans", "deu_1996", "eng", "fra", "hin", "ind", "ita", "jpn", "kor", "nld", "pol",
        "por_BR", "rus", "spa", "swh", "tam", "tur", "vie")), ("LICENSE",),
              "https://github.com/wooorm/udhr (declaration/*.html)", "d3d38276c91668df9ac4e33e5dac7cd3a14c12b2",
              "UDHR texts: described upstream as copyright-free (see NOTICE); package code: MIT (LICENSE)",
              "languages suite (the same text in 20 languages)",
              "txt/*.txt are derived: one heading, paragraph or list item of declaration/<code>.html per line, "
              "whitespace collapsed (html.parser; udhr_text() in this script). The HTML is not shipped."),
)


class _Blocks(HTMLParser):
    TAGS = ("h1", "h2", "h3", "h4", "p", "li")

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.current: str | None = None

    def _flush(self) -> None:
        if self.current is not None and self.current.strip():
            self.lines.append(" ".join(self.current.split()))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.TAGS:
            self._flush()
            self.current = ""

    def handle_endtag(self, tag: str) -> None:
        if tag in self.TAGS and self.current is not None:
            self._flush()
            self.current = None

    def handle_data(self, data: str) -> None:
        if self.current is not None:
            self.current += data


def udhr_text(html: str) -> str:
    """One heading/paragraph/list item per line, as the languages suite reads it."""
    parser = _Blocks()
    parser.feed(html)
    return "\n".join(parser.lines) + "\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build(source: Path) -> dict[Path, bytes]:
    """Every file of the packaged sets (relative to DEST) and its bytes."""
    out: dict[Path, bytes] = {}
    for s in SETS:
        src = source / s.name
        shipped: list[tuple[str, bytes]] = []
        for rel in s.files:
            if s.name == "udhr-multilingual":
                code = Path(rel).stem
                data = udhr_text((src / "html" / f"{code}.html").read_text(encoding="utf-8")).encode("utf-8")
                existing = src / rel
                if existing.is_file() and existing.read_bytes() != data:
                    sys.exit(f"{existing} differs from the text derived from html/{code}.html")
            else:
                data = (src / rel).read_bytes()
            shipped.append((rel, data))
        for rel in s.licence_files:
            out[Path(s.name) / rel] = (src / rel).read_bytes()
        if s.name == "crows-pairs":
            out[Path(s.name) / "LICENSE"] = CC_BY_SA_NOTICE.encode()
        if s.name == "udhr-multilingual":
            out[Path(s.name) / "NOTICE"] = UDHR_TEXT_NOTICE.encode()
        lines = [f"set: {s.name}", f"upstream: {s.upstream}", f"commit: {s.commit}", f"licence: {s.licence}",
                 f"read by: {s.read_by}"]
        if s.notes:
            lines.append(f"notes: {s.notes}")
        lines += ["written by: scripts/package_eval_sets.py (copied unmodified unless noted)", "files (sha256):"]
        lines += [f"  {sha256(data)}  {rel}" for rel, data in shipped]
        out[Path(s.name) / "SOURCE.txt"] = ("\n".join(lines) + "\n").encode()
        for rel, data in shipped:
            out[Path(s.name) / rel] = data
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "evals",
                        help="folder of upstream copies (default ../shared/data/evals)")
    parser.add_argument("--check", action="store_true", help="compare with the package instead of writing")
    args = parser.parse_args()
    files = build(args.source)
    present = {p.relative_to(DEST) for p in DEST.rglob("*") if p.is_file()} if DEST.is_dir() else set()
    if args.check:
        wrong = sorted(str(p) for p, data in files.items() if not (DEST / p).is_file() or (DEST / p).read_bytes()
                       != data)
        extra = sorted(str(p) for p in present - set(files))
        for p in wrong:
            print(f"differs or missing: {p}")
        for p in extra:
            print(f"not written by this script: {p}")
        return 1 if wrong or extra else 0
    for p in present - set(files):
        (DEST / p).unlink()
    for p, data in files.items():
        target = DEST / p
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    total = sum(len(d) for d in files.values())
    print(f"wrote {len(files)} files, {total / 1e6:.2f} MB, to {DEST.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
