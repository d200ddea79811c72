"""Docs that can be checked are checked: the README's env table and set-up commands."""

from __future__ import annotations

import re
from pathlib import Path

from freehold.config import ENV_VARS

ROOT = Path(__file__).resolve().parents[1]


def test_readme_env_table_matches_config() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(FREEHOLD_[A-Z_]+)` \| (.+) \|$", readme, re.M)
    assert rows == [(v.name, v.help) for v in ENV_VARS]


def test_readme_opens_with_the_two_setup_commands_and_ci_runs_the_second() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    main_job, tests = blocks[0].strip(), blocks[1].strip()
    assert main_job == "bash scripts/setup.sh && bash scripts/demo.sh"
    assert tests == "bash scripts/setup.sh test && bash scripts/check.sh"
    assert tests in (ROOT / ".ci" / "run").read_text()
