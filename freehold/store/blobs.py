"""Content-addressed blobs: ``blobs/sha256-<hex>``, written atomically.

A blob is written to a temp file in ``blobs/.tmp`` while it is hashed, fsync'd, then
renamed into place; a crash leaves only a temp file, removed by the next open once the
process that wrote it is gone (every name in ``.tmp`` carries its writer's pid, so an open
never removes what a live process is still writing). Identical bytes are stored once. A
file can also be *linked* in (hard link when on the same filesystem, else a symlink
reference), which is how bundled models avoid a second copy.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from freehold.errors import StoreError, StoreFullError, StoreReadOnlyError
from freehold.progress import ProgressFn, emit

CHUNK = 1 << 20
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def store_os_error(exc: OSError, where: Path) -> StoreError:
    """Translate an OSError raised while writing the store into a fix-it error."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreFullError(f"no space left on the device holding {where}",
                              "free some space (e.g. 'freehold rm' unused models) or set FREEHOLD_HOME "
                              "to a larger disk")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreReadOnlyError(f"the store at {where} is not writable ({exc.strerror})",
                                  "fix its permissions or set FREEHOLD_HOME to a writable directory")
    return StoreError(f"cannot write the store at {where}: {exc}",
                      "check the path in FREEHOLD_HOME and the disk")


_TMP_OWNER = re.compile(r"^[A-Za-z]+-(\d+)-")
LEGACY_TMP_AGE = 24 * 3600  # a leftover without a pid (older versions) goes after a day


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def sha256_file(path: Path, progress: ProgressFn | None = None, status: str = "hashing") -> str:
    h = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
            done += len(block)
            emit(progress, status, total, done)
    return "sha256:" + h.hexdigest()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / ".tmp"

    def init(self) -> None:
        try:
            self.tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise store_os_error(exc, self.root) from exc
        # Leftovers of interrupted writes are never visible as blobs; clear those whose
        # writer is gone (another process may be writing into .tmp right now).
        now = time.time()
        for leftover in self.tmp.iterdir():
            owner = _TMP_OWNER.match(leftover.name)
            with contextlib.suppress(OSError):
                if owner and pid_alive(int(owner.group(1))):
                    continue
                if not owner and now - leftover.lstat().st_mtime < LEGACY_TMP_AGE:
                    continue
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink()

    def temp_dir(self, prefix: str) -> tempfile.TemporaryDirectory[str]:
        """A scratch directory inside the store (same filesystem: its files can be linked in),
        named so that no other process's open clears it while this one is alive."""
        return tempfile.TemporaryDirectory(dir=self.tmp, prefix=f"{prefix}-{os.getpid()}-")

    def path(self, digest: str) -> Path:
        if not DIGEST_RE.match(digest):
            raise StoreError(f"malformed digest {digest!r}", "digests look like sha256:<64 hex digits>")
        return self.root / digest.replace(":", "-")

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def digests(self) -> Iterator[str]:
        for p in self.root.glob("sha256-*"):
            yield p.name.replace("-", ":", 1)

    def put_stream(self, src: BinaryIO, total: int | None = None, progress: ProgressFn | None = None,
                   status: str = "writing") -> tuple[str, int]:
        """Copy ``src`` into a new blob; returns (digest, size)."""
        h = hashlib.sha256()
        size = 0
        fd = -1
        tmp_path = self.tmp / f"in-{os.getpid()}-{os.urandom(6).hex()}"
        try:
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as out:
                fd = -1
                while block := src.read(CHUNK):
                    h.update(block)
                    out.write(block)
                    size += len(block)
                    emit(progress, status, total, size)
                out.flush()
                os.fsync(out.fileno())
            digest = "sha256:" + h.hexdigest()
            final = self.path(digest)
            if final.exists():
                tmp_path.unlink()
            else:
                os.replace(tmp_path, final)
                self._fsync_dir()
            return digest, size
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                tmp_path.unlink()
            raise store_os_error(exc, self.root) from exc
        except BaseException:
            with contextlib.suppress(OSError):
                tmp_path.unlink()
            raise

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        import io

        return self.put_stream(io.BytesIO(data), len(data))

    def put_file(self, path: Path, progress: ProgressFn | None = None, link: bool = False) -> tuple[str, int, str]:
        """Store a file; returns (digest, size, how) with how in copy|hardlink|reference|existing.

        With ``link`` the file is hashed in place and then hard-linked (same filesystem) or
        symlinked (a reference to the original path) instead of copied.
        """
        size = path.stat().st_size
        if not link:
            with path.open("rb") as f:
                digest, size = self.put_stream(f, size, progress)
            return digest, size, "copy"
        digest = sha256_file(path, progress)
        final = self.path(digest)
        if final.exists():
            return digest, size, "existing"
        tmp_link = self.tmp / f"ln-{os.getpid()}-{os.urandom(6).hex()}"
        try:
            try:
                os.link(path, tmp_link)
                how = "hardlink"
            except OSError:
                os.symlink(path.resolve(), tmp_link)
                how = "reference"
            os.replace(tmp_link, final)
            self._fsync_dir()
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp_link.unlink()
            raise store_os_error(exc, self.root) from exc
        return digest, size, how

    def adopt(self, path: Path, digest: str, hashed: bool = False) -> None:
        """Rename a file on the store's filesystem into the blob ``digest`` after hashing it
        (unless the caller did); ``ValueError`` (naming the digest it has) when it does not match."""
        actual = digest if hashed else sha256_file(path, None, "verifying")
        if actual != digest:
            raise ValueError(actual)
        final = self.path(digest)
        try:
            if final.exists():
                path.unlink()
            else:
                os.replace(path, final)
                self._fsync_dir()
        except OSError as exc:
            raise store_os_error(exc, self.root) from exc

    def remove(self, digest: str) -> int:
        p = self.path(digest)
        try:
            size = p.lstat().st_size if p.is_symlink() else p.stat().st_size
            p.unlink()
            return size
        except FileNotFoundError:
            return 0

    def verify(self, digest: str, progress: ProgressFn | None = None) -> bool:
        p = self.path(digest)
        return p.exists() and sha256_file(p, progress, "verifying") == digest

    def _fsync_dir(self) -> None:
        try:
            fd = os.open(self.root, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
