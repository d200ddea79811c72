"""Model names: ``name[:tag]``, lower case, default tag ``latest``."""

from __future__ import annotations

import re

from freehold.errors import UsageError

DEFAULT_TAG = "latest"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._/-]{0,127}$")
_TAG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def parse_name(text: str, default_tag: str | None = DEFAULT_TAG) -> tuple[str, str | None]:
    """Split and validate ``name[:tag]``; the tag is ``default_tag`` when absent."""
    raw = text.strip().lower()
    name, sep, tag = raw.partition(":")
    if not _NAME.match(name) or ".." in name or name.endswith("/"):
        raise UsageError(f"invalid name {text!r}",
                         "names use a-z, 0-9, '.', '_', '-' and '/', optionally followed by ':tag', "
                         "e.g. 'acme-support' or 'smollm2:135m-instruct'")
    if sep:
        if not _TAG.match(tag):
            raise UsageError(f"invalid tag in {text!r}", "tags use a-z, 0-9, '.', '_' and '-'")
        return name, tag
    return name, default_tag


def format_name(name: str, tag: str) -> str:
    return f"{name}:{tag}"
