"""A model's licence, worked out in one place for every command, API and document that shows it.

Two answers, both from what the store holds (no network, no guessing):

- ``model_licence``: the short id or name ("apache-2.0", "gemma") for tables, cards and the
  ledger. The first of, in this order:

  1. the manifest config's ``license`` (the weights' own metadata, e.g. GGUF
     ``general.license`` or the ``license:`` of a Hugging Face README);
  2. the manifest source's ``license`` (what the importer or the bundled-model table says);
  3. ``recorded``: a licence the caller already knows from the ledger, e.g. the one the base
     model's import record names (a fine-tune's own files may carry none);
  4. the first non-empty line of the LICENSE text layer, cut to ``FIRST_LINE_CHARS``.

- ``licence_terms``: the full text where the model ships it (the LICENSE layer), else the
  short answer; what Ollama's ``/api/show`` "license" and ``freehold show --license`` give.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from freehold.store.manifest import Manifest

# A licence file's first line is its title ("Apache License", "Gemma Terms of Use"); longer
# than this it is prose, not a name, and is cut so tables and records stay one line.
FIRST_LINE_CHARS = 120


def model_licence(manifest: Manifest, license_text: str | None, recorded: str | None = None) -> str | None:
    """The short licence of the model ``manifest`` describes (None: nothing says), in the order above.

    ``license_text``: the manifest's LICENSE layer (``store.text_layer(manifest, MediaType.LICENSE)``)."""
    for value in (manifest.config.get("license"), (manifest.source or {}).get("license"), recorded):
        if value:
            return str(value)
    first = next((line.strip() for line in (license_text or "").splitlines() if line.strip()), "")
    return first[:FIRST_LINE_CHARS] or None


def licence_terms(manifest: Manifest, license_text: str | None) -> str | None:
    """The full licence text when the model ships one, else its short licence (None: nothing says)."""
    return license_text or model_licence(manifest, None)
