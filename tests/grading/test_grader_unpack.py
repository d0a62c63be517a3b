"""Safe unpacking: every refusal with its reason, and nothing ever written outside the scratch folder."""
import io
import os
import stat
import zipfile

import pytest

import grader.unpack as unpack_module
from grader.errors import CheckFailed
from grader.unpack import Entry, _write_file, find_submission_root, pack, safe_parts, unpack

VALID = {"models/keypoint_model.pt": b"weights", "exercise_code/__init__.py": b"", "exercise_09/a.ipynb": b"{}"}


def make_zip(path, entries, compression=zipfile.ZIP_DEFLATED):
    """entries: name or ZipInfo -> bytes."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def test_valid_zip_unpacks(tmp_path):
    """Are the files of a valid zip written below dest, readable by anyone (the worker's user)?"""
    dest = tmp_path / "out"
    assert unpack(make_zip(tmp_path / "s.zip", VALID), dest) == 3
    assert (dest / "models" / "keypoint_model.pt").read_bytes() == b"weights"
    assert stat.S_IMODE((dest / "models" / "keypoint_model.pt").stat().st_mode) == 0o644
    assert stat.S_IMODE((dest / "models").stat().st_mode) == 0o755


@pytest.mark.parametrize("name, words", [
    ("../evil.py", "points outside the submission"),
    ("exercise_code/../../evil.py", "points outside the submission"),
    ("..\\evil.py", "points outside the submission"),          # a Windows-style separator
    ("/tmp/evil.py", "has an absolute path"),
    ("C:/evil.py", "has an absolute path"),
])
def test_paths_that_leave_the_folder_are_refused(tmp_path, name, words):
    """Is an entry that would land outside dest refused before anything is written?"""
    dest = tmp_path / "deep" / "out"
    dest.parent.mkdir()   # where "../evil.py" would land
    with pytest.raises(CheckFailed, match=words):
        unpack(make_zip(tmp_path / "s.zip", {**VALID, name: b"x"}), dest)
    assert not list(tmp_path.rglob("evil.py")) and not os.path.exists("/tmp/evil.py")
    assert not (dest / "models").exists()   # all entries are checked first: nothing was written


@pytest.mark.parametrize("kind, content, words", [
    (stat.S_IFLNK, "/etc/passwd", "is a symlink"),    # pointing at, say, the hidden test file
    (stat.S_IFIFO, "", "not a plain file"),
    (stat.S_IFCHR, "", "not a plain file"),
])
def test_links_and_special_files_are_refused(tmp_path, kind, content, words):
    """Is an entry that is a symlink, a FIFO or a device refused?"""
    entry = zipfile.ZipInfo("exercise_code/data.csv")
    entry.create_system, entry.external_attr = 3, (kind | 0o777) << 16   # Unix st_mode, as zip -y writes it
    with pytest.raises(CheckFailed, match=words):
        unpack(make_zip(tmp_path / "s.zip", {**VALID, entry: content}), tmp_path / "out")


def test_too_many_files_are_refused(tmp_path, monkeypatch):
    """Is a zip with more entries than the bound refused?"""
    monkeypatch.setattr(unpack_module, "MAX_FILES", 10)
    entries = {f"exercise_code/f{i}.py": b"" for i in range(11)}
    with pytest.raises(CheckFailed, match="more than 10 files"):
        unpack(make_zip(tmp_path / "s.zip", entries), tmp_path / "out")


def test_too_many_bytes_are_refused(tmp_path, monkeypatch):
    """Is a zip whose files add up to more than the bound refused (random bytes: no bomb ratio)?"""
    monkeypatch.setattr(unpack_module, "MAX_TOTAL_BYTES", 1_000_000)
    with pytest.raises(CheckFailed, match="more than 1 MB"):
        unpack(make_zip(tmp_path / "s.zip", {**VALID, "big.bin": os.urandom(1_200_000)}), tmp_path / "out")


def test_a_zip_file_over_the_bound_is_refused_unread(tmp_path, monkeypatch):
    """Is a zip file larger than the bound (a valid zip, then junk) refused, by unpack and by pack (which would
    read it into memory to send it to a cluster) alike?"""
    monkeypatch.setattr(unpack_module, "MAX_TOTAL_BYTES", 1_000_000)
    path = make_zip(tmp_path / "s.zip", VALID)
    with open(path, "ab") as f:
        f.write(os.urandom(1_200_000))
    for run in (lambda: unpack(path, tmp_path / "out"), lambda: pack(path)):
        with pytest.raises(CheckFailed, match="more than 1 MB"):
            run()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_pack_refuses_what_unpack_refuses_and_keeps_the_rest(tmp_path):
    """Does pack refuse a folder with a symlink (never reading its target), and pack a good folder into a zip
    that unpacks to the same files?"""
    source = tmp_path / "sub"
    for name, data in VALID.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    packed = tmp_path / "packed.zip"
    packed.write_bytes(pack(source))
    assert unpack(packed, tmp_path / "out") == len(VALID)
    assert {p.relative_to(tmp_path / "out").as_posix(): p.read_bytes()
            for p in (tmp_path / "out").rglob("*") if p.is_file()} == VALID
    (tmp_path / "secret.csv").write_text("labels")
    (source / "models" / "link").symlink_to(tmp_path / "secret.csv")
    with pytest.raises(CheckFailed, match="is a symlink"):
        pack(source)


def test_zip_bomb_ratio_is_refused(tmp_path):
    """Is an entry that expands more than 100x (and past 1 MB) refused as a zip bomb?"""
    with pytest.raises(CheckFailed, match="looks like a zip bomb"):
        unpack(make_zip(tmp_path / "s.zip", {**VALID, "zeros.bin": bytes(5_000_000)}), tmp_path / "out")


def test_small_files_may_compress_well(tmp_path):
    """Is a small file that compresses well (a source file of blank lines, say) accepted?"""
    assert unpack(make_zip(tmp_path / "s.zip", {**VALID, "blank.py": b"\n" * 500_000}), tmp_path / "out") == 4


def test_more_bytes_than_declared_are_refused(tmp_path):
    """Does the writer stop at the declared size, whatever the zip header said?"""
    entry = Entry(("x.bin",), 10, lambda: io.BytesIO(b"y" * 100))
    with pytest.raises(CheckFailed, match="holds more data than its size says"):
        _write_file(tmp_path / "x.bin", entry, budget=1_000)


def test_duplicate_entries_are_refused(tmp_path):
    """Is a zip holding the same name twice refused (the second would replace the checked first)?"""
    path = tmp_path / "s.zip"
    with pytest.warns(UserWarning), zipfile.ZipFile(path, "w") as archive:   # zipfile warns about duplicates
        for name, data in [*VALID.items(), ("models/keypoint_model.pt", b"other")]:
            archive.writestr(name, data)
    with pytest.raises(CheckFailed, match="appears twice"):
        unpack(path, tmp_path / "out")


def test_encrypted_entry_is_refused(tmp_path):
    """Is a password-protected entry refused with a message (not a crash asking for a password)?"""
    path = make_zip(tmp_path / "s.zip", VALID, compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):   # set bit 0 of every general-purpose flag
        start = 0
        while (start := data.find(signature, start)) != -1:
            data[start + offset] |= 1
            start += 4
    path.write_bytes(bytes(data))
    with pytest.raises(CheckFailed, match="password-protected"):
        unpack(path, tmp_path / "out")


@pytest.mark.parametrize("content, words", [
    (b"", "is not a zip file"),
    (b"PK\x03\x04 but truncated", "is not a zip file"),
    (b"%PDF-1.4 a report", "is not a zip file"),
])
def test_not_a_zip(tmp_path, content, words):
    """Is a file that is not a zip refused, saying what it starts with?"""
    path = tmp_path / "s.zip"
    path.write_bytes(content)
    with pytest.raises(CheckFailed, match=words):
        unpack(path, tmp_path / "out")


def test_empty_zip(tmp_path):
    """Is an empty zip refused, saying what it must hold?"""
    with pytest.raises(CheckFailed, match="The zip is empty: it must hold models/keypoint_model.pt"):
        unpack(make_zip(tmp_path / "s.zip", {}), tmp_path / "out")


def test_nested_archives_are_not_unpacked(tmp_path):
    """Is a zip inside the zip copied as a plain file, its contents never unpacked?"""
    inner = make_zip(tmp_path / "inner.zip", {"../../nested_evil.py": b"x"})
    dest = tmp_path / "out"
    unpack(make_zip(tmp_path / "s.zip", {**VALID, "extra/inner.zip": inner.read_bytes()}), dest)
    assert (dest / "extra" / "inner.zip").read_bytes() == inner.read_bytes()
    assert not list(tmp_path.rglob("nested_evil.py"))


def test_folder_submission_is_copied(tmp_path):
    """Is an unpacked submission folder copied (caches left out) like a zip?"""
    source = tmp_path / "alice"
    for name, data in VALID.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    (source / "exercise_code" / "__pycache__").mkdir()
    (source / "exercise_code" / "__pycache__" / "x.pyc").write_bytes(b"")
    dest = tmp_path / "out"
    assert unpack(source, dest) == 3 and not (dest / "exercise_code" / "__pycache__").exists()


def test_folder_with_symlink_is_refused(tmp_path):
    """Is a folder submission holding a symlink (to a file or a folder) refused?"""
    for target in (tmp_path / "secret.csv", tmp_path):
        source = tmp_path / f"sub-{target.name}"
        (source / "models").mkdir(parents=True)
        (tmp_path / "secret.csv").write_text("labels")
        (source / "models" / "link").symlink_to(target)
        with pytest.raises(CheckFailed, match="is a symlink"):
            unpack(source, tmp_path / f"out-{target.name}")


def test_root_is_found_inside_a_wrapper_folder(tmp_path):
    """When the student zipped their whole folder (on a Mac, with __MACOSX), is the inner folder the root?"""
    entries = {f"my_folder/{name}": data for name, data in VALID.items()}
    entries["__MACOSX/my_folder/._a.ipynb"] = b""
    dest = tmp_path / "out"
    unpack(make_zip(tmp_path / "s.zip", entries), dest)
    assert find_submission_root(dest) == dest / "my_folder"


def test_root_is_the_folder_itself_otherwise(tmp_path):
    """Is a folder holding models/ its own root, and one holding neither returned as it is?"""
    unpack(make_zip(tmp_path / "s.zip", VALID), tmp_path / "out")
    assert find_submission_root(tmp_path / "out") == tmp_path / "out"
    (tmp_path / "empty" / "a" / "b").mkdir(parents=True)
    assert find_submission_root(tmp_path / "empty") == tmp_path / "empty"


def test_safe_parts_drops_dots():
    """Are '.' parts and doubled slashes harmless (kept inside), not refused?"""
    assert safe_parts("./exercise_code//x.py") == ("exercise_code", "x.py")
