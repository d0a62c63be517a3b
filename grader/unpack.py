"""
Step 1: unpack a submission into a fresh scratch folder, safely.

A submission is a zip (what create_submission_zip writes) or an unpacked folder.
Everything about it is untrusted, so before writing a single byte we check every
entry and refuse the submission when one of them:
- has an absolute path, a drive letter or a `..` part (zip-slip),
- is a symlink, a device or another special file,
- is encrypted, or appears twice;
and when there are more than MAX_FILES entries, more than MAX_TOTAL_BYTES in all,
or an entry that compresses suspiciously well (a zip bomb). While writing we
count the bytes again: the sizes in a zip's header can lie. Nested archives are
copied as plain files, never unpacked. Files are created with O_EXCL and
O_NOFOLLOW, in folders we made, so nothing can be written outside dest.
"""
import hashlib
import io
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import messages
from .errors import CheckFailed
from .trusted import LEFT_OUT_DIRS, file_sha256

MAX_FILES = 2000                 # the submission zip holds a few dozen files
MAX_TOTAL_BYTES = 200_000_000    # the model (< 20 MB) plus notebooks and code, with room to spare
MAX_RATIO = 100                  # uncompressed / compressed; text is ~5, a zip bomb ~1000
RATIO_MIN_BYTES = 1_000_000      # small files may compress well, and cannot hurt
CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One file to write: its safe relative path, declared size, and how to read it."""
    parts: tuple
    size: int
    open: object  # () -> binary file object


def unpack(source, dest):
    """
    Check every entry of a submission, then copy its files into dest.

    Inputs:
    - source: Path of a .zip file or of an unpacked submission folder
    - dest: Where to write: a new folder, or an empty one

    Returns:
    - The number of files written

    Raises CheckFailed("unpack", message for the student).
    """
    source, dest = Path(source), Path(dest)
    dest.mkdir(mode=0o755, exist_ok=True)
    dest.chmod(0o755)   # readable by the worker's user, whatever our umask
    if source.is_dir():
        return _write_all(_folder_entries(source), dest)
    check_zip_size(source)
    if not zipfile.is_zipfile(source):
        with open(source, "rb") as f:
            start = f.read(8)
        raise _refused(messages.NOT_A_ZIP, name=source.name, start=start)
    try:
        with zipfile.ZipFile(source) as archive:
            return _write_all(_zip_entries(archive), dest)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as error:
        raise _refused(messages.DAMAGED_ZIP, name=source.name, error=error) from None


def submission_sha256(source):
    """
    The SHA-256 of a submission's content: of the file for a .zip, of every file
    unpack would copy (paths and contents) for a folder. None if unpack would refuse
    the folder. Results are reused only for a submission with the same digest.
    """
    source = Path(source)
    if not source.is_dir():
        return file_sha256(source)
    try:
        entries = _folder_entries(source)
    except CheckFailed:
        return None
    digest = hashlib.sha256()
    for entry in entries:
        with entry.open() as f:
            digest.update(f"{'/'.join(entry.parts)}\0{hashlib.file_digest(f, 'sha256').hexdigest()}\n".encode())
    return digest.hexdigest()


def pack(source):
    """
    A submission as the bytes of a zip, to send to a cluster worker, which unpacks it.

    Inputs:
    - source: Path of a .zip file (sent as it is) or of an unpacked submission folder

    Returns:
    - bytes. Raises CheckFailed("unpack", ...) for a folder unpack would refuse: its
      links are never followed, so nothing outside it is read.
    """
    source = Path(source)
    if not source.is_dir():
        check_zip_size(source)   # read whole into memory, and sent: bounded first
        return source.read_bytes()
    entries = _folder_entries(source)
    if not entries:
        raise _refused(messages.NO_FILES)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry in entries:
            with entry.open() as f:
                archive.writestr("/".join(entry.parts), f.read())
    return buffer.getvalue()


def find_submission_root(folder):
    """
    The folder holding models/ and exercise_code/: folder itself, or its only
    subfolder when the student zipped a whole folder.
    """
    folder = Path(folder)
    entries = [p for p in folder.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]  # macOS zips
    if not holds_submission(folder) and len(entries) == 1 and holds_submission(entries[0]):
        return entries[0]
    return folder


def holds_submission(folder):
    """Whether folder holds a submission's models/ or exercise_code/."""
    return (Path(folder) / "models").is_dir() or (Path(folder) / "exercise_code").is_dir()


def safe_parts(name):
    """The parts of an entry name, or CheckFailed for one that could leave the folder."""
    path = PurePosixPath(name.replace("\\", "/"))   # Windows tools may use backslashes
    if path.is_absolute() or (path.parts and ":" in path.parts[0]):
        raise _refused(messages.ABSOLUTE_PATH, name=name)
    if ".." in path.parts:
        raise _refused(messages.OUTSIDE, name=name)
    return tuple(part for part in path.parts if part not in ("", "."))


def _zip_entries(archive):
    """Check a zip's entries (names, types, sizes, ratios); return the files as Entries."""
    infos = archive.infolist()
    if not infos:
        raise _refused(messages.EMPTY_ZIP)
    _check_counts(len(infos), sum(info.file_size for info in infos))
    entries, seen = [], set()
    for info in infos:
        parts = safe_parts(info.filename)
        mode = info.external_attr >> 16 if info.create_system == 3 else 0   # Unix zips carry st_mode
        if stat.S_ISLNK(mode):
            raise _refused(messages.ENTRY_SYMLINK, name=info.filename)
        if info.is_dir() or stat.S_ISDIR(mode):
            continue
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            raise _refused(messages.ENTRY_NOT_PLAIN, name=info.filename)
        if info.flag_bits & 0x1:
            raise _refused(messages.ENCRYPTED, name=info.filename)
        if parts in seen:
            raise _refused(messages.TWICE, name=info.filename)
        seen.add(parts)
        if info.file_size > RATIO_MIN_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise _refused(messages.ZIP_BOMB, name=info.filename, packed=info.compress_size, size=info.file_size,
                           ratio=MAX_RATIO)
        if not LEFT_OUT_DIRS & set(parts):
            entries.append(Entry(parts, info.file_size, lambda info=info: archive.open(info)))
    return entries


def _folder_entries(folder):
    """Check an unpacked submission folder (no links, no special files); return its files as Entries."""
    entries, total = [], 0
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in LEFT_OUT_DIRS)
        for name in sorted(dirs + files):
            path = Path(here) / name
            relative = path.relative_to(folder).as_posix()
            if path.is_symlink():
                raise _refused(messages.FILE_SYMLINK, path=relative)
            if name in files and not path.is_file():
                raise _refused(messages.FILE_NOT_PLAIN, path=relative)
        for name in sorted(files):
            path = Path(here) / name
            size = path.stat().st_size
            entries.append(Entry(path.relative_to(folder).parts, size, lambda path=path: open(path, "rb")))
            total += size
            _check_counts(len(entries), total)  # stop walking a huge tree early
    return entries


def check_zip_size(source):
    """A zip file larger than its files may add up to holds junk besides them (say, 5 GB of it)."""
    size = source.stat().st_size
    if size > MAX_TOTAL_BYTES:
        raise _refused(messages.TOO_LARGE, limit_mb=MAX_TOTAL_BYTES / 1e6, mb=size / 1e6)


def _check_counts(files, total_bytes):
    if files > MAX_FILES:
        raise _refused(messages.TOO_MANY_FILES, limit=MAX_FILES)
    if total_bytes > MAX_TOTAL_BYTES:
        raise _refused(messages.TOO_LARGE, limit_mb=MAX_TOTAL_BYTES / 1e6, mb=total_bytes / 1e6)


def _write_all(entries, dest):
    """Write the checked entries below dest, counting the bytes actually read."""
    if not entries:
        raise _refused(messages.NO_FILES)
    written = 0
    for entry in entries:
        folder = dest
        for part in entry.parts[:-1]:
            folder = folder / part
            if not folder.is_dir():
                try:
                    folder.mkdir(mode=0o755)
                except OSError:
                    raise _refused(messages.FOLDER_CLASH, path="/".join(entry.parts)) from None
                folder.chmod(0o755)
        written += _write_file(folder / entry.parts[-1], entry, MAX_TOTAL_BYTES - written)
    return len(entries)


def _write_file(target, entry, budget):
    """Copy one entry to target (a new file, never through a link); return the bytes written."""
    limit = min(entry.size, budget)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except (FileExistsError, IsADirectoryError):
        raise _refused(messages.FILE_CLASH, path="/".join(entry.parts)) from None
    count = 0
    with os.fdopen(fd, "wb") as out, entry.open() as stream:
        os.fchmod(fd, 0o644)
        while chunk := stream.read(CHUNK):
            count += len(chunk)
            if count > limit:  # more bytes than the header said: a lying zip bomb
                raise _refused(messages.LYING_SIZE, path="/".join(entry.parts), size=entry.size)
            out.write(chunk)
    return count


def _refused(template, **fields):
    """The CheckFailed of the unpack check, its message one of messages' templates."""
    return CheckFailed("unpack", template.format(**fields))
