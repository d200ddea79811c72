"""The real thing, briefly: SmolLM2-135M tuned on real mailing-list answers, exported, served."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.train.conftest import email_conversations, make_dataset


@pytest.mark.slow
def test_smollm2_tune_export_import_and_run(shared_data: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import freehold.cli.tune  # noqa: F401 - registers the command
    from freehold.cli import main
    from freehold.config import load_settings
    from freehold.home import open_store
    from freehold.ledger import verify
    from freehold.store import MediaType

    store = open_store(load_settings())  # registers the bundled SmolLM2
    rows = email_conversations(shared_data / "email" / "r-package-devel" / "2023q4.txt", 56)
    make_dataset(store, "rpkg", {"train": rows[:50], "validation": rows[50:]}, tmp_path / "ds")
    code = main(["tune", "smollm2", "--data", "rpkg", "-o", "rpkg-helper", "--max-steps", "2", "--max-seq-len",
                 "256", "--overlong", "truncate", "--batch-tokens", "512", "--eval-every", "2", "--quant", "q8_0"])
    out = capsys.readouterr()
    assert code == 0, out.err
    entry = store.get("rpkg-helper")
    assert entry.manifest.source["base"].startswith("smollm2") and entry.info["architecture"] == "llama"
    assert entry.manifest.layer(MediaType.GGUF) is not None
    assert verify(store, "rpkg-helper").ok
    assert main(["run", "rpkg-helper", "How do I declare a dependency on a base R package?", "-t", "0",
                 "-n", "24"]) == 0
    assert len(capsys.readouterr().out.strip()) > 0
