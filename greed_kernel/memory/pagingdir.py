"""Which directory paged-out memory goes to, and why a requested one is refused.

A paging file must be on a local, writable, disk-backed filesystem that stays
attached: a page-in that fails (a network share gone, a FUSE daemon dead, a USB
stick pulled) is a SIGBUS that kills the kernel, and a file in RAM frees nothing.
A refused request is never swapped silently for another directory: `choose`
returns a one-line notice that says why and which directory is used instead
(issue 30, item 6). Nothing is created outside the chosen directory, and the
only thing created in it is a nameless probe file, closed at once.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
import typing as t
from dataclasses import dataclass
from pathlib import Path

from .procmaps import RAM_FILESYSTEMS

__all__ = ["Choice", "Mount", "choose", "is_removable", "read_mounts", "refusal"]

# fmt: off
#: Filesystems that store no files of their own (kernel interfaces).
PSEUDO_FILESYSTEMS = frozenset({
    "proc", "sysfs", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs", "pstore",
    "bpf", "configfs", "devpts", "mqueue", "binfmt_misc", "efivarfs", "fusectl", "nsfs",
    "rpc_pipefs", "selinuxfs", "autofs",
})
#: Filesystems whose reads can fail after the mapping is made (plus every "fuse*").
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "lustre", "9p", "afs",
    "davfs", "ncpfs", "coda", "orangefs", "beegfs", "gpfs", "pvfs2", "virtiofs", "sshfs",
})
# fmt: on
_SIGBUS = "a failed read from it would kill the kernel (SIGBUS)"


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of /proc/self/mountinfo, the fields used here."""

    point: str  # where it is mounted
    fstype: str
    device: str = "0:0"  # "major:minor" of the filesystem
    source: str = ""  # e.g. /dev/sdb1, server:/export
    read_only: bool = False  # mounted "ro"


@dataclass(frozen=True, slots=True)
class Choice:
    """The directory to page to, and why it is not the requested one ("" when it is)."""

    path: Path
    notice: str = ""


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def read_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    """This process's mounts in mount order; [] where mountinfo cannot be read."""
    mounts = []
    try:
        with open(mountinfo) as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields, tail = left.split(), right.split()
                if len(fields) < 6 or len(tail) < 2:
                    continue
                options = fields[5].split(",") + (tail[2].split(",") if len(tail) > 2 else [])
                point, source = _unescape(fields[4]), _unescape(tail[1])
                mounts.append(Mount(point, tail[0], fields[2], source, "ro" in options))
    except OSError:
        return []
    return mounts


def mount_of(real: str, mounts: t.Sequence[Mount]) -> Mount | None:
    """The mount holding the symlink-free path *real*: the deepest, the last mounted."""
    best = None
    for m in mounts:
        inside = real == m.point or real.startswith(m.point.rstrip("/") + "/")
        if inside and (best is None or len(m.point) >= len(best.point)):
            best = m
    return best


def is_removable(device: str, sys_block: str = "/sys/dev/block") -> bool:
    """True when the block device "major:minor" (or the disk of that partition) is
    removable, as /sys says. Unknown devices (major 0, device-mapper's slaves) are not."""
    base = Path(sys_block, device)
    flag = base / "removable" if (base / "removable").exists() else base / ".." / "removable"
    try:
        return flag.read_text().strip() == "1"
    except OSError:
        return False


def _block_device(mount: Mount) -> str:
    """The mount's device, or for an anonymous one (btrfs) that of its /dev source."""
    if not mount.device.startswith("0:") or not mount.source.startswith("/dev/"):
        return mount.device
    try:
        rdev = os.stat(mount.source).st_rdev
    except OSError:
        return mount.device
    return f"{os.major(rdev)}:{os.minor(rdev)}"


def _probe(path: str) -> str:
    """Why no file can be created in *path*, or "" when one can. The probe file has no
    name (O_TMPFILE) or is unlinked at once, and is closed before returning."""
    tmpfile = getattr(os, "O_TMPFILE", 0)
    try:
        if tmpfile:
            try:
                os.close(os.open(path, tmpfile | os.O_RDWR, 0o600))
                return ""
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                    raise
        fd, name = tempfile.mkstemp(prefix=".greed-probe-", dir=path)
        try:
            os.close(fd)
        finally:
            os.unlink(name)
    except OSError as e:
        return f"a file cannot be created in it ({e.strerror or e})"
    return ""


def refusal(
    path: str,
    mounts: t.Callable[[], t.Sequence[Mount]] | None = None,
    removable: t.Callable[[str], bool] | None = None,
) -> str:
    """Why the absolute *path* is refused for paging files, or "" when it is usable.

    Checked in order: it exists and is a directory; its filesystem (from *mounts*,
    read after the path was reached so that an automount has happened) is not a
    pseudo, RAM, network or FUSE one, nor on a removable device, nor mounted
    read-only; this process can create a file in it. "Writable" means exactly
    that last probe: root creates files in a mode 0o555 directory, so as root
    such a directory is accepted. The probe runs only where the rest passed.
    *mounts* and *removable* default to `read_mounts` and `is_removable` (looked up
    when called, so tests can replace them).
    """
    if path.startswith("~"):
        return "its ~ cannot be expanded (no such home directory)"
    try:
        if not stat.S_ISDIR(os.stat(path).st_mode):
            return "it is not a directory"
        mount = mount_of(os.path.realpath(path), (mounts or read_mounts)())
        ro = bool(os.statvfs(path).f_flag & getattr(os, "ST_RDONLY", 1))
    except FileNotFoundError:
        return "it does not exist"
    except OSError as e:
        return f"it cannot be reached ({e.strerror or e})"
    if mount is not None:
        fs = mount.fstype
        if fs in PSEUDO_FILESYSTEMS:
            return f"it is on {fs}, a pseudo filesystem that stores no files"
        if fs in RAM_FILESYSTEMS:
            return f"it is on {fs}, in RAM: paging there frees nothing"
        if fs in NETWORK_FILESYSTEMS or fs.startswith("fuse"):
            return f"it is on {fs}, a network or FUSE filesystem: {_SIGBUS}"
        device = _block_device(mount)
        if (removable or is_removable)(device):
            return f"it is on a removable device ({mount.source or device}): {_SIGBUS}"
        ro = ro or mount.read_only
    if ro:
        return "it is on a read-only mount"
    if not os.access(path, os.W_OK | os.X_OK):
        return "it is not writable"
    return _probe(path)


def _fallbacks() -> list[str]:
    try:
        temporary = [tempfile.gettempdir()]
    except OSError:  # no usable temporary directory at all
        temporary = []
    return [*temporary, "/var/tmp", os.path.expanduser("~/.cache")]


def choose(
    requested: str,
    *,
    setting: str = "paging_dir",
    mounts: t.Callable[[], t.Sequence[Mount]] | None = None,
    removable: t.Callable[[str], bool] | None = None,
) -> Choice:
    """The directory paging files go to: *requested* if usable, else the first usable
    of the temporary directory ($TMPDIR or /tmp), /var/tmp and ~/.cache.

    ``~`` in *requested* is expanded; a relative path is taken from the current
    directory. When *requested* (the value of the setting named *setting*) is
    refused, the Choice's notice says why and what is used instead; a refused
    fallback is skipped silently. Raises OSError(ENOENT) listing every refusal
    when no candidate is usable. Nothing is created anywhere but the probe file.
    """
    reasons: list[str] = []
    seen: set[str] = set()
    first = ""
    if requested:
        wanted = os.path.expanduser(requested)
        wanted = wanted if wanted.startswith("~") else os.path.abspath(wanted)
        shown = repr(requested) + ("" if wanted == requested else f" ({wanted})")
        reason = refusal(wanted, mounts, removable)
        if not reason:
            return Choice(Path(wanted))
        first = f"{setting} {shown} is refused: {reason}"
        reasons.append(first)
        seen.add(os.path.realpath(wanted))
    for candidate in _fallbacks():
        real = os.path.realpath(candidate)
        if real in seen:
            continue
        seen.add(real)
        reason = refusal(candidate, mounts, removable)
        if not reason:
            return Choice(Path(candidate), f"{first}; using {candidate} instead" if first else "")
        reasons.append(f"{candidate}: {reason}")
    raise OSError(errno.ENOENT, "no usable disk directory for paging: " + "; ".join(reasons))
