"""Readers for eval data in the formats the public sets ship in, plus the user's own prompt files.

Safety prompt sets (one ``Prompt`` per row), detected from the header:

- XSTest ``xstest_prompts.csv``: id, prompt, type, label (safe | unsafe), focus, note
- AdvBench ``harmful_behaviors.csv``: goal, target (every row unsafe)
- HarmBench ``harmbench_behaviors_text_*.csv``: Behavior, FunctionalCategory, SemanticCategory,
  Tags, ContextString, BehaviorID (copyright rows skipped: they are judged by hashing lyrics
  and passages, not by refusal; contextual rows get their context before the request)
- your own CSV or JSONL: a ``prompt`` column (or ``text`` / ``goal``), optional ``label``
  (safe | unsafe, default unsafe), ``category`` and ``id``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freehold.errors import EvalError

csv.field_size_limit(10_000_000)


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    label: str  # "safe": should be answered; "unsafe": should be refused
    category: str
    source: str


def _rows(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    if not path.is_file():
        raise EvalError(f"prompt file {path} does not exist", "check the path")
    try:
        if path.suffix.lower() in (".jsonl", ".json"):
            rows = []
            with path.open(encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise EvalError(f"{path.name} line {n} is not JSON: {exc.msg}",
                                        'write one object per line, e.g. {"prompt": "...", "label": "unsafe"}') from exc
                    if not isinstance(row, dict):
                        raise EvalError(f"{path.name} line {n} is not a JSON object",
                                        'write one object per line, e.g. {"prompt": "...", "label": "unsafe"}')
                    rows.append(row)
            header = list(rows[0]) if rows else []
            return header, rows
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            return list(reader.fieldnames or []), list(reader)
    except UnicodeDecodeError as exc:
        raise EvalError(f"{path.name} is not UTF-8 text", "save it as UTF-8 CSV or JSONL") from exc


def read_prompts(path: Path, source: str | None = None) -> list[Prompt]:
    """Prompts from any supported safety file (format detected from its columns)."""
    header, rows = _rows(path)
    cols = set(header)
    name = source or path.stem
    out: list[Prompt] = []
    if {"prompt", "type", "label", "focus"} <= cols:  # XSTest
        for r in rows:
            out.append(Prompt(str(r["id"]), r["prompt"], r["label"].strip(), r["type"], source or "xstest"))
    elif {"goal", "target"} <= cols:  # AdvBench behaviours
        for i, r in enumerate(rows, 1):
            out.append(Prompt(str(i), r["goal"], "unsafe", "harmful_behavior", source or "advbench"))
    elif {"Behavior", "BehaviorID"} <= cols:  # HarmBench
        for r in rows:
            if r.get("FunctionalCategory") == "copyright":
                continue
            text = r["Behavior"]
            if r.get("ContextString"):
                text = f"{r['ContextString']}\n\n---\n\n{text}"
            out.append(Prompt(r["BehaviorID"], text, "unsafe", r.get("SemanticCategory") or "other",
                              source or "harmbench"))
    else:
        key = next((k for k in ("prompt", "text", "goal") if k in cols), None)
        if key is None:
            raise EvalError(f"{path.name} has no prompt column (columns: {', '.join(header) or 'none'})",
                            "name the column 'prompt'; optional columns: label (safe|unsafe), category, id")
        for i, r in enumerate(rows, 1):
            label = str(r.get("label") or "unsafe").strip().lower()
            if label not in ("safe", "unsafe"):
                raise EvalError(f"{path.name} row {i}: label {label!r} is not safe or unsafe",
                                "label each prompt 'unsafe' (should be refused) or 'safe' (should be answered)")
            text = str(r.get(key) or "").strip()
            if not text:
                raise EvalError(f"{path.name} row {i} has an empty prompt", "remove the row or fill it in")
            out.append(Prompt(str(r.get("id") or i), text, label, str(r.get("category") or "uncategorised"), name))
    if not out:
        raise EvalError(f"{path.name} holds no prompts", "add rows with a 'prompt' column")
    return out
