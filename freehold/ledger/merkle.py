"""Canonical JSON and Merkle trees (RFC 6962 / Certificate Transparency hashing).

- ``canonical_json``: UTF-8, sorted keys, no insignificant whitespace; the one byte form
  that is hashed and signed everywhere in Freehold.
- Leaf hash ``SHA-256(0x00 || data)``, node hash ``SHA-256(0x01 || left || right)``; a tree
  of n leaves splits at the largest power of two below n (RFC 6962 section 2.1), so proofs
  can be checked by any CT-compatible verifier.
- An example's stable id is the hex leaf hash of its canonical JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def example_id(example: Any) -> str:
    """Stable id of a training example: the hex leaf hash of its canonical JSON."""
    return leaf_hash(canonical_json(example)).hex()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Root over leaf hashes (not raw data). The empty tree's root is SHA-256('')."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    # Iterative form of RFC 6962's recursion: pair up left to right, carrying an odd
    # last node up unchanged. This yields the same root as splitting at powers of two.
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path for ``leaves[index]`` (RFC 6962 PATH), bottom-up."""
    if not 0 <= index < len(leaves):
        raise IndexError(index)

    def path(m: int, d: Sequence[bytes]) -> list[bytes]:
        n = len(d)
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*path(m, d[:k]), merkle_root(d[k:])]
        return [*path(m - k, d[k:]), merkle_root(d[:k])]

    return path(index, leaves)


def verify_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Check an audit path (RFC 9162 section 2.1.3.2)."""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = node_hash(p, r)
            while fn % 2 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root
