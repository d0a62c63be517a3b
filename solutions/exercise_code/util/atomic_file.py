"""
atomic_file: write a file so that readers see the old file or the new one, never half of one.
"""
import os
import secrets
from contextlib import contextmanager
from pathlib import Path


def create_temporary(path):
    """
    Create a new, empty temporary file beside `path`, with the mode open() would give it.

    tempfile.mkstemp would make every file private (0600) whatever the umask; we
    create with 0666 and let the umask take its bits away, as open() does, so a
    file written here is as readable as any other file the user writes.

    Returns a tuple of:
    - fd: The file descriptor, open for writing
    - tmp: The temporary file's path
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:   # a name another writer holds: draw again
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


@contextmanager
def atomic_file(path, mode="wb", **open_kwargs):
    """
    Open a temporary file beside `path` for writing; it takes the place of `path`
    when the block ends without an error, and is removed otherwise. The file gets
    mode 0666 less the umask, as a file written with open() does.

    Inputs:
    - path: The file to write (its folder must exist)
    - mode: "wb" or "w"; open_kwargs go to open() (newline="", say)

    Yields:
    - The open temporary file
    """
    path = Path(path)
    fd, tmp = create_temporary(path)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
        os.replace(tmp, path)  # a crash before this line leaves any old file as it was
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
