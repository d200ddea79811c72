"""Import throughput and peak memory on a large mbox built from the real archives.

    .venv/bin/python benchmarks/bench_data_import.py --messages 100000 [--also 25000] [--shared DIR]

Builds an mbox of N messages by replicating the r-package-devel, numpy-discussion and
perceval archives and perturbing each copy (fresh Message-IDs, so copies thread apart;
a few words swapped, so dedupe has real work), then runs ``freehold data import`` on it in
a child process and reports wall time, messages/s and the child's peak RSS. The peer,
measured in the same run on the same file, is the standard library reading it
(``mailbox.mbox`` + ``get_payload(decode=True)`` per message, no cleaning): the ratio says
what the whole pipeline costs over merely parsing. ``--also`` imports a smaller file too,
so the peak RSS of both shows whether memory grows with the archive.
"""

from __future__ import annotations

import argparse
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from freehold.data.read import iter_mbox  # noqa: E402

_ID = re.compile(rb"<([^<>\s]+)>")
_WORD = re.compile(rb"\b[a-z]{5,}\b")


def source_messages(shared: Path) -> list[bytes]:
    email = shared / "email"
    files = [
        email / "r-package-devel" / "2023q4.txt",
        email / "r-package-devel" / "2024q1.txt",
        email / "numpy-discussion-2001-11" / "2001-November.txt",
        *sorted((email / "perceval-mbox-edgecases" / "tests" / "data").rglob("*.mbox")),
    ]
    return [raw for f in files for raw in iter_mbox(f)]


def perturb(raw: bytes, copy: int, rng: random.Random) -> bytes:
    head, sep, body = raw.partition(b"\n\n")
    tag = f".c{copy}".encode()
    head = _ID.sub(lambda m: b"<" + m.group(1) + tag + b">", head)
    head = re.sub(rb"(?m)^(Subject:.*)$", lambda m: m.group(1) + b" #" + str(copy).encode(), head, count=1)
    words = _WORD.findall(body)
    if words:
        for _ in range(3):
            a, b = rng.choice(words), rng.choice(words)
            body = body.replace(a, b, 1)
    return head + sep + body


def build(shared: Path, n: int, out: Path) -> None:
    msgs = source_messages(shared)
    rng = random.Random(0)
    with out.open("wb") as f:
        for i in range(n):
            copy, k = divmod(i, len(msgs))
            raw = msgs[k] if copy == 0 else perturb(msgs[k], copy, rng)
            f.write(b"From bench@example.org Mon Jan  1 00:00:00 2024\n" + raw.rstrip(b"\n") + b"\n\n")


def run_child(code: str) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of a Python child running ``code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(after, before) / 1024  # ru_maxrss is KiB on Linux; max over children so far


def measure(path: Path, home: Path) -> dict[str, float]:
    ours = (
        f"import os; os.environ['FREEHOLD_HOME']={str(home)!r}\n"
        "from pathlib import Path\nfrom freehold.data import import_dataset\n"
        f"r = import_dataset([Path({str(path)!r})], 'bench')\nprint('examples', r.counts['examples'], "
        "'threads', r.counts['threads'], 'filters', r.filters)"
    )
    peer = (
        "import mailbox\nn = 0\n"
        f"for m in mailbox.mbox({str(path)!r}, create=False):\n"
        "    [p.get_payload(decode=True) for p in m.walk() if not p.is_multipart()]; n += 1\nprint('peer', n)"
    )
    wall, rss = run_child(ours)
    peer_wall, _ = run_child(peer)
    return {"wall": wall, "rss": rss, "peer": peer_wall}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--also", type=int, default=0, help="also import a smaller archive, to compare peak RSS")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="freehold-bench-") as tmp:
        sizes = [s for s in (args.also, args.messages) if s]
        for n in sizes:
            path = Path(tmp) / f"bench-{n}.mbox"
            build(args.shared, n, path)
            # Peak RSS of children is a running maximum, so run sizes smallest first.
            r = measure(path, Path(tmp) / f"home-{n}")
            print(
                f"{n} messages ({path.stat().st_size / 1e6:.0f} MB): import {r['wall']:.1f} s = "
                f"{n / r['wall']:.0f} msg/s, peak RSS {r['rss']:.0f} MiB; stdlib mailbox read "
                f"{r['peer']:.1f} s (ratio {r['wall'] / r['peer']:.2f}x)"
            )
            path.unlink()


if __name__ == "__main__":
    main()
