"""``freehold key ...``: the local signing identity and the keys trusted to sign ledger records."""

from __future__ import annotations

from pathlib import Path

import typer

from freehold.cli.common import console, print_json, settings

app = typer.Typer(no_args_is_help=True, help="Your signing identity for the ledger.")


@app.command("show")
def show_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show this machine's public key and fingerprint (the key is created on first use)."""
    from freehold.ledger.keys import load_identity

    ident = load_identity(settings().home)
    doc = {
        "key_id": ident.key_id,
        "fingerprint": ident.fingerprint,
        "public_key": ident.public_b64,
        "path": str(ident.path),
    }
    if as_json:
        print_json(doc)
        return
    for k, v in doc.items():
        console.print(f"{k + ':':<13}{v}", highlight=False)


@app.command("export")
def export_cmd(
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the PEM here instead of stdout."),
    model_signing: bool = typer.Option(False, "--model-signing", help="Export the EC key used for model-signing."),
) -> None:
    """Print the public key (PEM) for others to trust ('freehold key trust')."""
    from freehold.ledger.keys import load_identity, model_signing_key

    if model_signing:
        pem = model_signing_key(settings().home)[1].read_text()
    else:
        pem = load_identity(settings().home).public_pem()
    if output:
        output.write_text(pem)
        console.print(f"wrote {output}")
    else:
        print(pem, end="")


@app.command("trust")
def trust_cmd(
    key: str = typer.Argument(..., help="A PEM file, or the base64 public key."),
    name: str = typer.Option(..., "--name", help="Whose key this is."),
) -> None:
    """Trust records and attestations signed by another key."""
    from freehold.ledger.keys import trust_key

    path = Path(key)
    text = path.read_text() if len(key) < 4096 and path.is_file() else key
    kid = trust_key(settings().home, text, name)
    console.print(f"trusted {kid} ({name})", highlight=False)


@app.command("untrust")
def untrust_cmd(key_id: str = typer.Argument(..., help="The key id, from 'freehold key list'.")) -> None:
    """Stop trusting a key."""
    from freehold.ledger.keys import untrust_key

    untrust_key(settings().home, key_id)
    console.print(f"no longer trusted: {key_id}", highlight=False)


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the trusted keys (this machine's own key is always trusted)."""
    from freehold.ledger.keys import trusted_keys

    keys = trusted_keys(settings().home)
    if as_json:
        print_json(keys)
        return
    if not keys:
        console.print("no keys yet; 'freehold key show' creates this machine's key")
    for kid, entry in keys.items():
        console.print(f"{kid}  {entry.get('name', '')}", highlight=False)
