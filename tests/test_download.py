"""Getting the data: from a zip or a URL, checked, atomic, with clear messages."""
import hashlib
import shutil
import subprocess
import sys
import zipfile

import pytest

import exercise_code.util.download as download
from exercise_code.util.download import DataSourceError, fetch_dataset


@pytest.fixture
def small_zip(make_csv, tmp_path):
    """A zip with synthetic training.csv and val.csv (inside a folder, as some course zips have)."""
    path = tmp_path / "faces.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("training.csv", "val.csv"):
            archive.write(make_csv(name), f"facial_keypoints/{name}")
    return path


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder):
    """Temporary files or folders left beside the destination."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_local_zip(small_zip, tmp_path):
    """Are the CSVs unpacked (flat) into dest, with nothing else left behind?"""
    dest = fetch_dataset(small_zip, tmp_path / "out" / "facial_keypoints")
    assert sorted(p.name for p in dest.iterdir()) == [".source.json", "training.csv", "val.csv"]
    assert leftovers(dest.parent) == []


def test_second_fetch_is_a_no_op(small_zip, tmp_path, capsys):
    """Does fetching the same source again keep the folder (and its caches) as it is?"""
    dest = fetch_dataset(small_zip, tmp_path / "d")
    (dest / "training.cache.npz").write_text("cache")
    fetch_dataset(small_zip, dest)
    assert (dest / "training.cache.npz").exists()
    assert "already holds" in capsys.readouterr().out


def test_force_replaces_the_folder(small_zip, tmp_path):
    """Does force=True unpack again, dropping stale files?"""
    dest = fetch_dataset(small_zip, tmp_path / "d")
    (dest / "training.cache.npz").write_text("stale")
    fetch_dataset(small_zip, dest, force=True)
    assert not (dest / "training.cache.npz").exists() and (dest / "val.csv").exists()


def test_known_hash_is_checked(small_zip, tmp_path):
    """Is a zip with a known name but other content refused, leaving dest untouched?"""
    renamed = tmp_path / "facial_keypoints.zip"  # a name with a known hash
    shutil.copy(small_zip, renamed)
    with pytest.raises(DataSourceError, match="expected a0e16b7c"):
        fetch_dataset(renamed, tmp_path / "d")
    assert not (tmp_path / "d").exists() and leftovers(tmp_path) == []


def test_explicit_hash(small_zip, tmp_path):
    """Is --sha256 checked, and accepted when right?"""
    with pytest.raises(DataSourceError, match="SHA-256"):
        fetch_dataset(small_zip, tmp_path / "d", sha256="0" * 64)
    assert fetch_dataset(small_zip, tmp_path / "d", sha256=sha256(small_zip)).is_dir()


@pytest.mark.parametrize("content", [b"", b"this is not a zip", b"PK\x03\x04truncated"])
def test_corrupt_zip(tmp_path, content):
    """Is a corrupt zip a clear error, with nothing unpacked?"""
    bad = tmp_path / "bad.zip"
    bad.write_bytes(content)
    with pytest.raises(DataSourceError, match="not a valid zip"):
        fetch_dataset(bad, tmp_path / "d")
    assert not (tmp_path / "d").exists() and leftovers(tmp_path) == []


def test_truncated_zip_member(small_zip, tmp_path):
    """Is a zip cut short (a broken download) refused without a half-written folder?"""
    cut = tmp_path / "cut.zip"
    cut.write_bytes(small_zip.read_bytes()[: small_zip.stat().st_size // 2])
    with pytest.raises(DataSourceError, match="not a valid zip"):
        fetch_dataset(cut, tmp_path / "d")
    assert not (tmp_path / "d").exists() and leftovers(tmp_path) == []


def test_zip_without_csvs(tmp_path):
    """Is a zip that holds none of the data files refused?"""
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(DataSourceError, match="holds none of training.csv"):
        fetch_dataset(other, tmp_path / "d")


def test_interrupted_unpack_leaves_nothing(small_zip, tmp_path, monkeypatch):
    """Does a Ctrl-C in the middle of unpacking leave the old folder intact and no temp files?"""
    dest = fetch_dataset(small_zip, tmp_path / "d")
    before = sorted(p.name for p in dest.iterdir())
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(download.shutil, "copyfileobj", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fetch_dataset(small_zip, dest, force=True)
    assert sorted(p.name for p in dest.iterdir()) == before and leftovers(tmp_path) == []


def test_file_url(small_zip, tmp_path):
    """Does a URL source download (here file://) and unpack?"""
    dest = fetch_dataset(small_zip.as_uri(), tmp_path / "d")
    assert (dest / "val.csv").is_file() and leftovers(tmp_path) == []


def test_unreachable_url(tmp_path):
    """Is a network failure a clear message that says what to run instead?"""
    with pytest.raises(DataSourceError, match="(?s)Could not download .*--source"):
        fetch_dataset("http://127.0.0.1:9/facial_keypoints.zip", tmp_path / "d")
    assert leftovers(tmp_path) == []


def test_no_source(tmp_path, monkeypatch):
    """Without a source or the environment variable, is the user told what to set or run?"""
    monkeypatch.delenv("FACIAL_KEYPOINTS_SOURCE", raising=False)
    with pytest.raises(DataSourceError, match="FACIAL_KEYPOINTS_SOURCE"):
        fetch_dataset(None, tmp_path / "d")


def test_missing_zip(tmp_path):
    """Is a wrong zip path named in the message?"""
    with pytest.raises(DataSourceError, match="nope.zip does not exist"):
        fetch_dataset(tmp_path / "nope.zip", tmp_path / "d")


def test_environment_variable_source(small_zip, tmp_path, monkeypatch):
    """Is $FACIAL_KEYPOINTS_SOURCE used when no source is passed?"""
    monkeypatch.setenv("FACIAL_KEYPOINTS_SOURCE", str(small_zip))
    assert (fetch_dataset(None, tmp_path / "d") / "training.csv").is_file()


def test_real_zips(data_dir, test_data_dir):
    """Do the course zips pass their known hashes and give the documented files?"""
    assert sorted(p.name for p in data_dir.glob("*.csv")) == ["training.csv", "val.csv"]
    assert sorted(p.name for p in test_data_dir.glob("*.csv")) == ["test.csv"]


def test_command_line_error_is_one_clear_line(tmp_path):
    """Does the CLI print 'error: ...' and exit 1, with no traceback?"""
    result = subprocess.run(
        [sys.executable, "-m", "exercise_code.util.download", "--source", str(tmp_path / "x.zip"),
         "--dest", str(tmp_path / "d")], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
