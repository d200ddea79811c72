"""Agents on open protocols: Freehold's models, lineage and jobs as MCP tools and resources
(``mcp_server``), over stdio (``freehold mcp``) and streamable HTTP (``/mcp`` in ``freehold serve``).
Every generation goes through the one native path (``freehold.server.native``), guardrails included.
"""

from freehold.agents.mcp_server import build_mcp_server

__all__ = ["build_mcp_server"]
