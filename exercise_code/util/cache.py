"""
Parse each CSV once: keep the parsed arrays in a cache file beside it.

`training.csv` gets `training.cache.npz`. The cache records the SHA-256 of the CSV
it was made from, so it is rebuilt whenever the CSV's content changes, and a cache
that cannot be read or does not look right is ignored and rebuilt: it is never
trusted. It holds plain arrays only (no pickles).
"""
import hashlib
import zipfile
from pathlib import Path

import numpy as np

from .atomic_file import atomic_file
from .csv_reader import KeypointsData, read_keypoints_csv
from ..keypoints import IMAGE_SIZE, NUM_KEYPOINTS

CACHE_VERSION = 1  # bump when the cache layout or the parsing rules change


def cache_path_for(csv_path):
    """Where the cache of csv_path lives: `name.csv` -> `name.cache.npz` beside it."""
    csv_path = Path(csv_path)
    return csv_path.with_name(csv_path.stem + ".cache.npz")


def load_keypoints_data(csv_path, use_cache=True):
    """
    Read a facial keypoints CSV, from its cache when the cache is valid.

    Inputs:
    - csv_path: Path of the CSV file
    - use_cache: If False, always parse the CSV and write no cache

    Returns:
    - KeypointsData (images uint8 (N, 96, 96), keypoints float32 (N, 15, 2) in pixels)
    """
    csv_path = Path(csv_path)
    if not use_cache:
        return read_keypoints_csv(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: no such file")
    digest = file_sha256(csv_path)
    cache_path = cache_path_for(csv_path)
    data = _read_cache(cache_path, digest)
    if data is None:
        data = read_keypoints_csv(csv_path)
        _write_cache(cache_path, data, digest)
    return data


def file_sha256(path):
    """SHA-256 of a file's content, as a hex string."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _read_cache(cache_path, digest):
    """Return the cached KeypointsData, or None if the cache is missing, stale or broken."""
    if not cache_path.is_file():
        return None
    try:
        with np.load(cache_path, allow_pickle=False) as cache:
            if int(cache["version"]) != CACHE_VERSION or str(cache["csv_sha256"]) != digest:
                return None
            images, keypoints = cache["images"], cache["keypoints"]
            num_dropped = int(cache["num_dropped"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        print(f"Note: ignoring unreadable cache {cache_path}; parsing the CSV again.")
        return None
    n = len(images)
    if (images.dtype != np.uint8 or images.shape != (n, IMAGE_SIZE, IMAGE_SIZE)
            or keypoints.dtype != np.float32 or keypoints.shape != (n, NUM_KEYPOINTS, 2)):
        print(f"Note: ignoring malformed cache {cache_path}; parsing the CSV again.")
        return None
    return KeypointsData(images=images, keypoints=keypoints, num_dropped=num_dropped)


def _write_cache(cache_path, data, digest):
    """Write the cache atomically (temp file + rename); skip it if the folder is read-only."""
    try:
        with atomic_file(cache_path) as f:
            np.savez(f, images=data.images, keypoints=data.keypoints,
                     num_dropped=np.int64(data.num_dropped), csv_sha256=np.str_(digest),
                     version=np.int64(CACHE_VERSION))
    except OSError as error:  # a read-only folder or a full disk: the data is fine, only the cache is lost
        print(f"Note: cannot write the cache {cache_path} ({error}); the CSV will be parsed each time.")
