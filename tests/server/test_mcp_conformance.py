"""The MCP project's conformance kit (@modelcontextprotocol/conformance, pinned; installed by
``scripts/setup.sh test`` into build/mcp-conformance) against ``/mcp`` of a live server, with the
checked-in baseline of expected failures (mcp_conformance_expected.yml, each with its reason)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from freehold.config import ServerOptions
from freehold.store import Store

from .conftest import _free_port, start_server

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "build" / "mcp-conformance"
NODE = KIT / "node_modules" / ".bin" / "node"
CLI = KIT / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
BASELINE = Path(__file__).with_name("mcp_conformance_expected.yml")

pytestmark = pytest.mark.skipif(not (NODE.exists() and CLI.exists()),
                                reason="the MCP conformance kit is not installed (bash scripts/setup.sh test, "
                                       "which needs npm)")


def test_mcp_conformance_server_scenarios(store: Store, tiny_gguf: Path, tmp_path: Path) -> None:
    from freehold.home import import_model

    import_model(store, tiny_gguf, "tiny")
    for live in start_server(ServerOptions(port=_free_port()), store):
        run = subprocess.run([str(NODE), str(CLI), "server", "--url", live.url + "/mcp",
                              "--expected-failures", str(BASELINE), "-o", str(tmp_path / "results")],
                             capture_output=True, text=True, timeout=300)
        out = run.stdout + run.stderr
        assert run.returncode == 0, out[-4000:]
        total = re.search(r"Total: (\d+) passed, (\d+) failed", out)
        assert total is not None, out[-2000:]
        listed = [line for line in BASELINE.read_text().splitlines() if line.strip().startswith("- ")]
        assert int(total.group(1)) >= 11 and int(total.group(2)) == len(listed), out[-2000:]
        assert "Baseline check passed" in out
