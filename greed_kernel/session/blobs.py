"""A notebook's checkpoint directory: the blobs, and the manifests that name them.

* The layout: ``<checkpoint_dir>/<identity key>/`` holds ``checkpoint-<id>.json``
  manifests and ``blobs/<digest>``, each blob named by the XXH3-128 digest of its bytes
  (content addressed: a value unchanged since the last checkpoint is already there).
* **Private.** Directories are made 0700, files 0600. A directory or file that another
  user owns, or that group or others may write, is refused with the reason
  (:class:`Refused`): loading a pickle runs code. Directories are opened without
  following symlinks and everything inside through their descriptors.
* **Crash-consistent.** A file is written under a temporary name (``.tmp-<pid>-<n>``),
  fsynced, then renamed; the directory is fsynced before a manifest names the file. A
  blob is never modified or truncated once written (a tensor may map it, and a file
  that shrinks under a mapping kills the process with SIGBUS): it is only ever unlinked.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import stat
import typing as t
from collections.abc import Iterable

import psutil
import xxhash

__all__ = ["BlobDir", "Refused", "digest_of"]

BLOBS = "blobs"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIGEST = re.compile(r"[0-9a-f]{32}")
_TEMP = re.compile(r"\.tmp-([1-9][0-9]{0,9})-[0-9]+")
#: Bytes read or written per system call (os.write returns short above 2 GiB).
CHUNK = 16 << 20
#: Bytes of a blob written and flushed per step of a checkpoint in slices (put_steps).
STEP_BYTES = 8 << 20
_counter = itertools.count()


class Refused(Exception):
    """A checkpoint directory or file that is not safely ours (the message says why)."""


def digest_of(chunks: Iterable[t.Any]) -> str:
    """The XXH3-128 digest, in hex, of the bytes of *chunks* (buffers), in order."""
    h = xxhash.xxh3_128()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def refusal(st: os.stat_result, kind: str) -> str | None:
    """Why a directory or file with status *st* is not ours to trust, or None."""
    want = stat.S_ISDIR if kind == "directory" else stat.S_ISREG
    if not want(st.st_mode):
        return f"not a {kind}"
    if st.st_uid != os.getuid():
        return f"owned by uid {st.st_uid}, not by this user"
    if st.st_mode & 0o022:
        return f"mode {stat.S_IMODE(st.st_mode):04o}: group or others may write it"
    return None


def _open_dir(path: str, dir_fd: int | None, create: bool, shown: str) -> int:
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700, dir_fd=dir_fd)
    fd = os.open(path, _DIR_FLAGS, dir_fd=dir_fd)
    try:
        why = refusal(os.fstat(fd), "directory")
    except OSError as error:
        why = str(error)
    if why:
        os.close(fd)
        raise Refused(f"{shown}: {why}")
    return fd


class BlobDir:
    """One notebook's checkpoint directory, opened (and checked) once."""

    def __init__(self, root: str, key: str, *, create: bool) -> None:
        """Open ``<root>/<key>``; make it (and *root*) 0700 if *create*. Raises
        :class:`Refused` for a directory that is not ours, FileNotFoundError where it
        does not exist and *create* is false, OSError where it cannot be made."""
        root = os.path.abspath(os.path.expanduser(root))
        if create:
            os.makedirs(root, mode=0o700, exist_ok=True)
        self.path = os.path.join(root, key)
        root_fd = _open_dir(root, None, False, root)
        try:
            self.fd = _open_dir(key, root_fd, create, self.path)
        finally:
            os.close(root_fd)
        try:
            self.blobs_fd = _open_dir(BLOBS, self.fd, create, os.path.join(self.path, BLOBS))
        except BaseException:
            os.close(self.fd)
            raise
        #: (digest, temporary name, bytes in it) of a blob whose put_steps was dropped
        self._partial: tuple[str, str, int] | None = None

    def close(self) -> None:
        self.discard_partial()
        for fd in (self.blobs_fd, self.fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- blobs ---------------------------------------------------------------------------
    def blob_path(self, digest: str) -> str:
        """A path to blob *digest* through the checked directory's descriptor."""
        return f"/proc/self/fd/{self.blobs_fd}/{digest}"

    def has(self, digest: str, size: int) -> bool:
        """Blob *digest* is there, ours, and of *size* bytes."""
        try:
            st = os.stat(digest, dir_fd=self.blobs_fd, follow_symlinks=False)
        except OSError:
            return False
        return refusal(st, "file") is None and st.st_size == size

    def put(self, digest: str, chunks: Iterable[t.Any]) -> int:
        """Write blob *digest* from *chunks* (buffers) unless it is there; the bytes
        written. The new file is fsynced; :meth:`sync` makes its name durable."""
        return self._write(self.blobs_fd, digest, chunks, replace=False)

    def put_steps(self, digest: str, data: memoryview) -> t.Generator[None, None, int]:
        """:meth:`put` of one buffer, :data:`STEP_BYTES` a step, each step flushed
        (fdatasync), so that no step and not the last fsync writes much. Dropped between
        two steps (a cell came), what is written stays under its temporary name, and the
        next put_steps of the same digest goes on from there: a big blob is not started
        over at every cell. One such part is kept; a dead writer's is swept."""
        dir_fd, exists = self.blobs_fd, self._exists(self.blobs_fd, digest)
        if self._partial is not None and (exists or self._partial[0] != digest):
            self.discard_partial()
        if exists:
            return 0
        partial, self._partial = self._partial, None
        fd, temp, done = self._resumed(partial)
        written = 0
        try:
            while done < len(data):
                n = os.pwrite(fd, data[done : done + STEP_BYTES], done)
                done, written = done + n, written + n
                os.fdatasync(fd)
                if done < len(data):
                    self._partial = (digest, temp, done)
                    yield
                    self._partial = None
            os.fsync(fd)
            os.rename(temp, digest, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except GeneratorExit:
            raise  # dropped: the part stays for the next checkpoint
        except BaseException:
            self._partial = None
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise
        finally:
            os.close(fd)
        return written

    def discard_partial(self) -> None:
        """Remove the part a dropped put_steps left (forget, close)."""
        partial, self._partial = self._partial, None
        if partial is not None:
            with contextlib.suppress(OSError):
                os.unlink(partial[1], dir_fd=self.blobs_fd)

    def _resumed(self, partial: tuple[str, str, int] | None) -> tuple[int, str, int]:
        """A descriptor to write a blob into: the dropped part's, where it is as it was
        left, else a new temporary file; with its name and the bytes already in it."""
        dir_fd = self.blobs_fd
        if partial is not None:
            _, temp, done = partial
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            except OSError:
                pass
            else:
                if refusal(os.fstat(fd), "file") is None and os.fstat(fd).st_size == done:
                    return fd, temp, done
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=dir_fd)
        temp = f".tmp-{os.getpid()}-{next(_counter)}"
        return os.open(temp, _WRITE_FLAGS, 0o600, dir_fd=dir_fd), temp, 0

    def open_blob(self, digest: str, size: int) -> int:
        """A descriptor of blob *digest*, checked: ours, not writable by others, of
        *size* bytes. Raises :class:`Refused` or OSError."""
        if not _DIGEST.fullmatch(digest):
            raise Refused(f"{digest!r} is not a blob name")
        fd = os.open(digest, _READ_FLAGS, dir_fd=self.blobs_fd)
        try:
            st = os.fstat(fd)
            why = refusal(st, "file")
            if why is None and st.st_size != size:
                why = f"{st.st_size} bytes, {size} expected (truncated?)"
            if why:
                raise Refused(f"blob {digest[:12]}: {why}")
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def verify(self, digest: str, size: int) -> None:
        """Read blob *digest* whole and check its digest; raises :class:`Refused`."""
        fd = self.open_blob(digest, size)
        try:
            h = xxhash.xxh3_128()
            while chunk := os.read(fd, CHUNK):
                h.update(chunk)
        finally:
            os.close(fd)
        if h.hexdigest() != digest:
            raise Refused(f"blob {digest[:12]}: its bytes do not match its checksum")

    def read_blob(self, digest: str, size: int) -> bytes:
        """The checked bytes of blob *digest*."""
        fd = self.open_blob(digest, size)
        try:
            parts = []
            while chunk := os.read(fd, CHUNK):
                parts.append(chunk)
        finally:
            os.close(fd)
        data = b"".join(parts)
        if len(data) != size or xxhash.xxh3_128_hexdigest(data) != digest:
            raise Refused(f"blob {digest[:12]}: its bytes do not match its checksum")
        return data

    def blob_sizes(self) -> dict[str, int]:
        """Every blob's size, by digest."""
        sizes = {}
        for name in os.listdir(self.blobs_fd):
            if _DIGEST.fullmatch(name):
                with contextlib.suppress(OSError):
                    sizes[name] = os.stat(name, dir_fd=self.blobs_fd, follow_symlinks=False).st_size
        return sizes

    def remove_blob(self, digest: str) -> None:
        """Unlink blob *digest* (never truncate: a mapping of it stays valid)."""
        if _DIGEST.fullmatch(digest):
            os.unlink(digest, dir_fd=self.blobs_fd)

    # -- manifests -----------------------------------------------------------------------
    def put_manifest(self, name: str, content: bytes) -> None:
        """Write manifest *name* atomically: it is there whole, durably, or not at all."""
        self._write(self.fd, name, [content], replace=True)
        os.fsync(self.fd)

    def read_manifest(self, name: str, limit: int) -> bytes:
        """Manifest *name*, checked as a blob is, at most *limit* bytes."""
        fd = os.open(name, _READ_FLAGS, dir_fd=self.fd)
        try:
            why = refusal(os.fstat(fd), "file")
            if why:
                raise Refused(f"{name}: {why}")
            os.set_blocking(fd, True)
            return os.read(fd, limit)
        finally:
            os.close(fd)

    def names(self) -> list[str]:
        """The names in the notebook's directory."""
        return os.listdir(self.fd)

    def remove(self, name: str) -> None:
        os.unlink(name, dir_fd=self.fd)

    def sync(self) -> None:
        """Make the names of the blobs written so far durable."""
        os.fsync(self.blobs_fd)

    def sweep(self) -> None:
        """Remove the temporary files of writers that died mid-write."""
        for fd in (self.fd, self.blobs_fd):
            for name in os.listdir(fd):
                match = _TEMP.fullmatch(name)
                if match and not psutil.pid_exists(int(match.group(1))):
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=fd)

    # -- writing -------------------------------------------------------------------------
    @staticmethod
    def _exists(dir_fd: int, name: str) -> bool:
        try:
            os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def _write(self, dir_fd: int, name: str, chunks: Iterable[t.Any], *, replace: bool) -> int:
        if not replace and self._exists(dir_fd, name):
            return 0  # content addressed: the same bytes are there
        temp = f".tmp-{os.getpid()}-{next(_counter)}"
        fd = os.open(temp, _WRITE_FLAGS, 0o600, dir_fd=dir_fd)
        written = 0
        try:
            for chunk in chunks:
                view = memoryview(chunk).cast("B")
                while view:
                    n = os.write(fd, view[:CHUNK])
                    written += n
                    view = view[n:]
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise
        return written
