"""run and chat (filled in by the engine work)."""
