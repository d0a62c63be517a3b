"""
atomic_file: write a file so that readers see the old file or the new one, never half of one.
"""
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_file(path, mode="wb", **open_kwargs):
    """
    Open a temporary file beside `path` for writing; it takes the place of `path`
    when the block ends without an error, and is removed otherwise.

    Inputs:
    - path: The file to write (its folder must exist)
    - mode: "wb" or "w"; open_kwargs go to open() (newline="", say)

    Yields:
    - The open temporary file
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
        os.replace(tmp, path)  # a crash before this line leaves any old file as it was
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
