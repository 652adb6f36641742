"""Writing results safely: the one atomic file writer every output goes through.

Readers see the old file or the new one, never half of one: data goes to a temporary file in
the target's directory, is flushed to disk (``fsync``), then renamed over the target. The
target must be a regular file or absent: a device, a FIFO, a directory or a symlink is refused
(``NotARegularFile``) rather than replaced, so a result path can never clobber ``/dev/full`` or
a file that a symlink points to.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


class NotARegularFile(OSError):
    """The output path exists and is not a regular file; nothing was written."""


def check_target(path: Path) -> None:
    """Refuse an output path that exists and is not a plain regular file (or is a symlink)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise NotARegularFile(f"{path} is a symbolic link; refusing to replace it")
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise NotARegularFile(f"{path} is {kind}; refusing to replace it")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is synced and renamed over ``path``.

    The temporary file keeps ``path``'s suffix, so writers that pick a format by extension
    (``savefig``, ``to_parquet``) work unchanged. On any error it is removed.
    """
    target = Path(path)
    check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{target.suffix}",
                                    dir=target.parent)
    os.close(handle)
    tmp = Path(name)
    # mkstemp creates 0600; results get the permissions any new file would (0666 less umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        with open(tmp, "rb") as stream:
            os.fsync(stream.fileno())
        check_target(target)  # the target may have changed kind while we wrote
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` (text is UTF-8) to ``path`` atomically; see the module docstring."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
