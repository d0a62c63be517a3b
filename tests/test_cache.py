"""The parse-once cache: used when valid, rebuilt when the CSV changes, never trusted when broken."""
import os
import stat

import numpy as np
import pytest

import exercise_code.util.atomic_file as atomic_file_module
import exercise_code.util.cache as cache
from exercise_code.util.atomic_file import atomic_file
from exercise_code.util.cache import cache_path_for, load_keypoints_data


@pytest.fixture
def no_parsing(monkeypatch):
    """Make any CSV parse fail, to prove that data came from the cache."""
    def fail(path):
        raise AssertionError("the CSV was parsed again")
    monkeypatch.setattr(cache, "read_keypoints_csv", fail)


def test_second_load_comes_from_the_cache(make_csv, monkeypatch):
    """Is the CSV parsed once, and then read from the cache file beside it?"""
    path = make_csv("training.csv")
    first = load_keypoints_data(path)
    assert cache_path_for(path) == path.with_name("training.cache.npz") and cache_path_for(path).is_file()
    monkeypatch.setattr(cache, "read_keypoints_csv", lambda p: pytest.fail("parsed again"))
    second = load_keypoints_data(path)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.keypoints, second.keypoints)


def test_changed_csv_rebuilds_the_cache(make_csv):
    """Does a new CSV content (same name) give the new data, not the cached one?"""
    path = make_csv("training.csv", seed=1)
    old = load_keypoints_data(path)
    make_csv("training.csv", seed=2)
    new = load_keypoints_data(path)
    assert not np.array_equal(old.images, new.images)
    np.testing.assert_array_equal(new.images, cache.read_keypoints_csv(path).images)


@pytest.mark.parametrize("garbage", [b"", b"not a zip at all", b"PK\x03\x04" + b"\x00" * 100])
def test_corrupt_cache_is_rebuilt(make_csv, garbage, capsys):
    """Is an unreadable cache ignored, said so, and replaced by a good one?"""
    path = make_csv("training.csv")
    expected = load_keypoints_data(path)
    cache_path_for(path).write_bytes(garbage)
    data = load_keypoints_data(path)
    np.testing.assert_array_equal(data.images, expected.images)
    assert "ignoring" in capsys.readouterr().out
    with np.load(cache_path_for(path)) as rebuilt:
        assert rebuilt["images"].shape == expected.images.shape


def test_malformed_cache_with_matching_hash_is_not_trusted(make_csv):
    """Does a cache with the right hash but wrong arrays get rebuilt instead of used?"""
    path = make_csv("training.csv")
    expected = load_keypoints_data(path)
    with np.load(cache_path_for(path)) as good:
        fields = dict(good)
    fields["images"] = fields["images"][:, :10]  # wrong shape
    np.savez(cache_path_for(path), **fields)
    np.testing.assert_array_equal(load_keypoints_data(path).images, expected.images)


def test_cache_holds_no_pickles(make_csv):
    """Can the cache be read with allow_pickle=False (plain arrays only)?"""
    path = make_csv("training.csv")
    load_keypoints_data(path)
    with np.load(cache_path_for(path), allow_pickle=False) as data:
        assert {"images", "keypoints", "csv_sha256", "version", "num_dropped"} <= set(data.files)


def test_unwritable_folder_still_loads(make_csv, monkeypatch, capsys):
    """When the cache cannot be written, is the data still returned, with a note?"""
    path = make_csv("training.csv")
    def refuse(*args, **kwargs):
        raise PermissionError("read-only folder")
    monkeypatch.setattr(atomic_file_module, "create_temporary", refuse)   # no temporary file can be made
    assert len(load_keypoints_data(path).images) == 3
    assert "cannot write the cache" in capsys.readouterr().out
    assert not cache_path_for(path).exists()


def test_failed_cache_write_leaves_no_files(make_csv, monkeypatch):
    """If writing the cache fails half-way, are no temporary or partial files left?"""
    path = make_csv("training.csv")
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(cache.np, "savez", disk_full)
    load_keypoints_data(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["training.csv"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_atomic_file_keeps_the_umask(tmp_path, umask, mode):
    """Does atomic_file give a new file, and a replaced one, the mode open() would: 0666 less the umask?"""
    path = tmp_path / "grades.csv"
    path.write_text("old")
    path.chmod(0o600 if mode == 0o644 else 0o644)   # the old file's mode is not kept either
    for _ in ("replace", "create"):
        old = os.umask(umask)
        try:
            with atomic_file(path, "w") as f:
                f.write("new")
        finally:
            os.umask(old)
        assert stat.S_IMODE(path.stat().st_mode) == mode, oct(path.stat().st_mode)
        assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == [path.name]
        path.unlink()
