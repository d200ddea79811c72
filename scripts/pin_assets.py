"""Pin the web app's static files: write their SHA-256 to freehold/web/static/ASSETS.json.

    .venv/bin/python scripts/pin_assets.py

Run it after changing app.css or app.js; tests/web/test_assets.py fails until the pins match.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "freehold" / "web" / "static"

pins = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(STATIC.iterdir())
        if p.suffix in (".css", ".js")}
(STATIC / "ASSETS.json").write_text(json.dumps(pins, indent=2) + "\n")
print(json.dumps(pins, indent=2))
