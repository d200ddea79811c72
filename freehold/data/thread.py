"""Threading: rebuild conversations from Message-ID / In-Reply-To / References.

JWZ's algorithm (https://www.jwz.org/doc/threading.html) in its essentials: every id seen
gets a container, References chains link parent to child without creating loops, and
In-Reply-To wins as the direct parent. Messages whose parent never arrived still meet
under the missing parent's empty container. Then, as JWZ does, roots that are replies
("Re: x", "AW: x") with no usable headers are joined to the earlier thread with the same
normalised subject, if that thread started at most ``SUBJECT_WINDOW_DAYS`` before.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from freehold.data.message import normalise_subject
from freehold.progress import ProgressFn, emit

# Mailing lists revive old subjects ("Re: R CMD check NOTE") months later; a month keeps
# genuine follow-ups together without gluing unrelated questions that share a subject.
SUBJECT_WINDOW_DAYS = 30


@dataclass(frozen=True, slots=True)
class ThreadKey:
    """What threading needs of one message (kept small: 100k of these must fit easily)."""

    index: int
    message_id: str
    in_reply_to: str | None
    references: tuple[str, ...]
    subject: str
    date: float | None


REPLY_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]]{0,40}\]\s*)*(?:re|aw|sv|vs|antw|r|rif|ref|fw|fwd|wg|tr|rv|enc|odp|pd)\s*(?:\[\d+\])?\s*[:：]",
    re.IGNORECASE,
)


def _is_reply_subject(subject: str) -> bool:
    return bool(REPLY_SUBJECT.match(subject or ""))


def thread_messages(keys: Sequence[ThreadKey], progress: ProgressFn | None = None) -> list[list[int]]:
    """Threads as lists of message indices, each sorted by (date, index); threads sorted by first index."""
    parent: dict[str, str] = {}
    ids: list[str] = []
    seen: set[str] = set()
    for k in keys:
        # Missing or repeated Message-IDs get a private id so they cannot capture others' replies.
        mid = k.message_id if k.message_id and k.message_id not in seen else f"\0{k.index}"
        seen.add(mid)
        ids.append(mid)

    def ancestors(node: str) -> set[str]:
        out = set()
        while node in parent and node not in out:
            out.add(node)
            node = parent[node]
        out.add(node)
        return out

    for k, mid in zip(keys, ids, strict=True):
        chain = [
            r for r in dict.fromkeys((*k.references, *([k.in_reply_to] if k.in_reply_to else ()))) if r != mid
        ]
        for a, b in itertools.pairwise(chain):
            if b not in parent and a not in ancestors(b) | {b} and b not in ancestors(a):
                parent[b] = a
        if chain:
            direct = chain[-1]
            if mid not in ancestors(direct):
                parent[mid] = direct  # the message's own header is the best evidence
    emit(progress, "threading", len(keys), len(keys) // 2)

    def root(node: str) -> str:
        path = []
        while node in parent:
            path.append(node)
            node = parent[node]
            if len(path) > len(parent):  # defensive: a loop slipped through
                break
        return node

    groups: dict[str, list[int]] = {}
    for k, mid in zip(keys, ids, strict=True):
        groups.setdefault(root(mid), []).append(k.index)
    by_index = {k.index: k for k in keys}

    def start(members: list[int]) -> tuple[float, int]:
        first = min(members, key=lambda i: (by_index[i].date or 0.0, i))
        return by_index[first].date or 0.0, first

    # Subject fallback: join reply-looking roots to the latest earlier thread with the same subject.
    threads = sorted(groups.values(), key=start)
    latest_by_subject: dict[str, list[int]] = {}
    merged: list[list[int]] = []
    window = SUBJECT_WINDOW_DAYS * 86400
    for members in threads:
        first_date, first = start(members)
        head = by_index[first]
        subject = normalise_subject(head.subject)
        target = latest_by_subject.get(subject) if subject else None
        no_headers = not head.in_reply_to and not head.references
        if (
            target is not None
            and no_headers
            and _is_reply_subject(head.subject)
            and (not first_date or not start(target)[0] or first_date - start(target)[0] <= window)
        ):
            target.extend(members)
            continue
        merged.append(members)
        if subject:
            latest_by_subject[subject] = members
    emit(progress, "threading", len(keys), len(keys))
    out = [sorted(m, key=lambda i: (by_index[i].date or 0.0, i)) for m in merged]
    return sorted(out, key=lambda m: min(m))
