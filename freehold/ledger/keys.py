"""Signing identity and trusted keys.

Layout under ``$FREEHOLD_HOME/keys/``::

    identity.ed25519.pem     this machine's Ed25519 private key (PKCS#8, mode 0600), signs ledger records
    model-signing.ec.pem     an EC P-256 key (mode 0600) for OpenSSF model-signing, whose key-based
                             signer accepts only elliptic-curve keys
    trusted.json             {key_id: {"public_key": base64 raw Ed25519, "name": ..., "added": ...}}

A key id is ``ed25519:`` plus the first 32 hex digits of SHA-256 over the raw public key;
the fingerprint is the full digest. Our own key is always trusted.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from freehold.errors import LedgerError, UsageError

IDENTITY_FILE = "identity.ed25519.pem"
MODEL_SIGNING_FILE = "model-signing.ec.pem"
TRUSTED_FILE = "trusted.json"


def keys_dir(home: Path) -> Path:
    return Path(home) / "keys"


def key_id_of(public_raw: bytes) -> str:
    return "ed25519:" + hashlib.sha256(public_raw).hexdigest()[:32]


def fingerprint_of(public_raw: bytes) -> str:
    return "SHA256:" + hashlib.sha256(public_raw).hexdigest()


def _write_private(path: Path, pem: bytes) -> None:
    """Write a private key created 0600 from the start, appearing whole or not at all.

    The key goes to a private temp file that is then hard-linked into place: ``link`` fails
    if the name exists, so when two processes race to create the key one wins and the other
    reads the winner's complete file, never a half-written one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _check_mode(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise LedgerError(f"the private key {path} is readable by others (mode {mode:o})", f"run 'chmod 600 {path}'")


@dataclass(frozen=True)
class Identity:
    """The local signing key."""

    private_key: Ed25519PrivateKey
    path: Path

    @property
    def public_raw(self) -> bytes:
        return self.private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_raw)

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.public_raw)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode()

    def public_pem(self) -> str:
        return (
            self.private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)


def load_identity(home: Path, create: bool = True) -> Identity:
    """The local Ed25519 identity, created (mode 0600) on first use."""
    path = keys_dir(home) / IDENTITY_FILE
    if not path.exists():
        if not create:
            raise LedgerError(f"no signing key at {path}", "run 'freehold key show' to create one")
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        with contextlib.suppress(FileExistsError):
            _write_private(path, pem)
    _check_mode(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise LedgerError(
            f"the signing key {path} is unreadable: {exc}",
            "restore it from a backup; records it signed stay verifiable with its public key",
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerError(f"{path} is not an Ed25519 key", "move it aside; a new key is created on next use")
    return Identity(key, path)


def model_signing_key(home: Path) -> tuple[Path, Path]:
    """(private PEM path, public PEM path) of the EC P-256 key used for OpenSSF model-signing."""
    priv = keys_dir(home) / MODEL_SIGNING_FILE
    pub = priv.with_suffix(".pub.pem")
    if not priv.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        with contextlib.suppress(FileExistsError):
            _write_private(priv, pem)
    _check_mode(priv)
    if not pub.exists():
        key2 = serialization.load_pem_private_key(priv.read_bytes(), password=None)
        if not isinstance(key2, ec.EllipticCurvePrivateKey):
            raise LedgerError(f"{priv} is not an EC key", "move it aside; a new one is created on next use")
        pub.write_bytes(
            key2.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return priv, pub


# trusted keys ----------------------------------------------------------------------------


def parse_public_key(text: str) -> bytes:
    """Raw 32-byte Ed25519 public key from a PEM block, base64 of the raw key, or 64 hex digits."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not an Ed25519 public key")
            return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
            raw = bytes.fromhex(text)
        else:
            raw = base64.b64decode(text, validate=True)
        if len(raw) != 32:
            raise ValueError(f"expected 32 bytes, got {len(raw)}")
        return raw
    except ValueError as exc:
        raise UsageError(
            f"not an Ed25519 public key: {exc}",
            "pass the output of 'freehold key export' (PEM) or the base64 public key",
        ) from exc


def _trusted_path(home: Path) -> Path:
    return keys_dir(home) / TRUSTED_FILE


def trusted_keys(home: Path) -> dict[str, dict[str, Any]]:
    """Key id -> entry, including our own identity when it exists."""
    path = _trusted_path(home)
    keys: dict[str, dict[str, Any]] = {}
    if path.exists():
        try:
            keys = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise LedgerError(
                f"{path} is not valid JSON: {exc}", "fix it or re-add keys with 'freehold key trust'"
            ) from exc
    own = keys_dir(home) / IDENTITY_FILE
    if own.exists():
        ident = load_identity(home, create=False)
        keys.setdefault(ident.key_id, {"public_key": ident.public_b64, "name": "this machine"})
    return keys


def trust_key(home: Path, public_key: str, name: str) -> str:
    """Add a public key to the trusted list; returns its key id."""
    raw = parse_public_key(public_key)
    kid = key_id_of(raw)
    path = _trusted_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    current = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    current[kid] = {
        "public_key": base64.b64encode(raw).decode(),
        "name": name,
        "added": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return kid


def keys_from_files(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """A trusted-keys mapping made only of the given public key files (PEM or base64)."""
    keys: dict[str, dict[str, Any]] = {}
    for path in paths:
        try:
            raw = parse_public_key(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(
                f"cannot read the key {path}: {exc.strerror}", "pass a file from 'freehold key export'"
            ) from exc
        keys[key_id_of(raw)] = {"public_key": base64.b64encode(raw).decode(), "name": str(path)}
    return keys


def untrust_key(home: Path, key_id: str) -> None:
    path = _trusted_path(home)
    current = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if key_id not in current:
        raise UsageError(f"key {key_id} is not in the trusted list", "run 'freehold key list' to see it")
    del current[key_id]
    path.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n", encoding="utf-8")


class Verifier:
    """Checks Ed25519 signatures against a fixed set of trusted keys (loaded once)."""

    def __init__(self, keys: dict[str, dict[str, Any]]) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for kid, entry in keys.items():
            raw = base64.b64decode(entry["public_key"])
            self._keys[kid] = Ed25519PublicKey.from_public_bytes(raw)

    def knows(self, key_id: str) -> bool:
        return key_id in self._keys

    def verify(self, key_id: str, signature: bytes, data: bytes) -> bool:
        key = self._keys.get(key_id)
        if key is None:
            return False
        try:
            key.verify(signature, data)
            return True
        except InvalidSignature:
            return False
