"""Quote/signature stripping accuracy on real reply fixtures: freehold vs the email-reply-parser package.

    .venv/bin/python benchmarks/bench_data_quotes.py [--shared ../shared/data] [--show-failures]

Fixtures: ../shared/data/email/{github,zapier}-email-reply-parser (reply bodies) and
talon-fixtures (standard_replies/*.eml from real clients; signature/emails/stripped/*;
html_replies/*.html, converted to text first: labelled after the rules were written and
never used to tune them, so the one held-out set here).
Labels are ours, in tests/data/reply_labels.json (which input lines are the author's new
text). A case is correct when the non-blank output lines equal the labelled ones. Both
parsers get the same input text; email-reply-parser is given no sender name (it takes none).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from freehold.data.clean import strip_reply  # noqa: E402
from freehold.data.message import html_to_text, parse_message  # noqa: E402

LABELS = json.loads((REPO / "tests" / "data" / "reply_labels.json").read_text())


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.replace("\r\n", "\n").split("\n") if ln.strip()]


def cases(shared: Path) -> dict[str, list[tuple[str, str, str | None, list[str]]]]:
    """{fixture set: [(case name, input text, sender name, expected lines)]}."""
    email = shared / "email"
    out: dict[str, list[tuple[str, str, str | None, list[str]]]] = {}
    for key, folder in (("github", "github-email-reply-parser"), ("zapier", "zapier-email-reply-parser")):
        rows = []
        for name, ranges in LABELS[key].items():
            text = (email / folder / "test" / "emails" / name).read_text(encoding="utf-8")
            lines = text.replace("\r\n", "\n").split("\n")
            keep = [ln for a, b in ranges for ln in lines[a - 1 : b]]
            rows.append((name, text, None, _lines("\n".join(keep))))
        out[key] = rows
    talon = email / "talon-fixtures" / "tests" / "fixtures"
    rows = []
    for name, expected in LABELS["talon_replies"].items():
        msg = parse_message((talon / "standard_replies" / name).read_bytes())
        assert not isinstance(msg, str), name
        rows.append((name, msg.body, msg.sender_name or msg.sender, _lines(expected)))
    out["talon_replies"] = rows
    rows = []
    for name in LABELS["talon_signatures"]:
        base = talon / "signature" / "emails" / "stripped"
        body = (base / f"{name}_body").read_text(encoding="utf-8")
        sender = (base / f"{name}_sender").read_text(encoding="utf-8").strip() or None
        signature = _lines((base / f"{name}_signature").read_text(encoding="utf-8").replace("#sig#", ""))
        text = body.replace("#sig#", "")
        expected = _lines(text)
        if signature:
            expected = expected[: len(expected) - len(signature)]
        rows.append((name, text, sender, expected))
    out["talon_signatures"] = rows
    rows = []
    for name, expected in LABELS["talon_html_held_out"].items():
        if name.startswith("_"):
            continue
        text = html_to_text((talon / "html_replies" / name).read_text(encoding="utf-8", errors="replace"))
        rows.append((name, text, None, _lines(expected)))
    out["talon_html_held_out"] = rows
    return out


def score(
    fn: Callable[[str, str | None], str], rows: list[tuple[str, str, str | None, list[str]]]
) -> list[str]:
    return [name for name, text, sender, expected in rows if _lines(fn(text, sender)) != expected]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--show-failures", action="store_true")
    args = ap.parse_args()
    from email_reply_parser import EmailReplyParser

    def baseline(text: str, _sender: str | None) -> str:
        return EmailReplyParser.parse_reply(text)

    def ours(text: str, sender: str | None) -> str:
        return strip_reply(text, sender)

    total = {"freehold": [0, 0], "email-reply-parser": [0, 0]}
    print(f"{'fixture set':<18} {'cases':>5} {'freehold':>9} {'email-reply-parser':>19}")
    for key, rows in cases(args.shared).items():
        res = {}
        for label, fn in (("freehold", ours), ("email-reply-parser", baseline)):
            t = time.perf_counter()
            failed = score(fn, rows)
            res[label] = (len(rows) - len(failed), failed, time.perf_counter() - t)
            total[label][0] += len(rows) - len(failed)
            total[label][1] += len(rows)
        ok, base = res["freehold"][0], res["email-reply-parser"][0]
        print(f"{key:<18} {len(rows):>5} {ok:>5}/{len(rows):<3} {base:>11}/{len(rows):<3}")
        if args.show_failures:
            for label in res:
                if res[label][1]:
                    print(f"    {label} failed: {', '.join(res[label][1])}")
    f, b = total["freehold"], total["email-reply-parser"]
    print(
        f"{'all':<18} {f[1]:>5} {f[0]:>5}/{f[1]:<3} {b[0]:>11}/{b[1]:<3}   "
        f"accuracy {f[0] / f[1]:.1%} vs {b[0] / b[1]:.1%} (ratio {f[0] / max(1, b[0]):.2f}x)"
    )


if __name__ == "__main__":
    main()
