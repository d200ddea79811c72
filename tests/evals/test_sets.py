"""The public eval sets packaged with freehold: found with no flags, licensed, and exactly the upstream bytes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from freehold.evals.base import packaged_sets

ROOT = Path(__file__).resolve().parents[2]
SETS = {"xstest", "advbench", "harmbench", "crows-pairs", "winobias", "bbq", "udhr-multilingual"}


def test_packaged_sets_are_found_and_each_has_its_licence_and_source() -> None:
    root = packaged_sets()
    assert root is not None and root == ROOT / "freehold" / "evals" / "sets"
    assert {p.name for p in root.iterdir() if p.is_dir()} == SETS
    for name in SETS:
        folder = root / name
        licence = [p for p in folder.iterdir() if p.name.startswith("LICENSE")]
        assert licence and all(p.stat().st_size > 200 for p in licence), name
        source = (folder / "SOURCE.txt").read_text(encoding="utf-8")
        assert "upstream: https://github.com/" in source and "commit: " in source and "licence: " in source
        listed = [line.split() for line in source.split("files (sha256):\n")[1].splitlines()]
        assert listed, name
        for digest, rel in listed:  # what SOURCE.txt lists is what ships, and nothing unlisted but notices
            assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest, (name, rel)
        shipped = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
        notices = {"SOURCE.txt", "NOTICE", "README.upstream.md"} | {p.name for p in licence}
        assert shipped - {rel for _, rel in listed} <= notices, name


def test_packaged_sets_are_the_upstream_copies(eval_data: Path) -> None:
    # scripts/package_eval_sets.py --check rebuilds every packaged file from ../shared/data/evals
    # (the UDHR texts from the upstream HTML) and compares bytes.
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "package_eval_sets.py"), "--check",
                             "--source", str(eval_data)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
