"""
Get the facial keypoints data into datasets/facial_keypoints/.

    python -m exercise_code.util.download --source URL_OR_ZIP

The source is a URL (http, https, file) or the path of a local zip; without
--source we read the environment variable FACIAL_KEYPOINTS_SOURCE. A zip whose
name is in KNOWN_SHA256 is checked against that hash (or pass --sha256), unless
it says (in its zip comment) that an instructor built it with
`python -m grader dataset`: such a zip has other content under the same name.

Nothing is half-written: the zip is downloaded and unpacked in a temporary folder
beside the destination, which takes the destination's place only when complete.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from .cache import file_sha256
from .layout import default_data_dir

SOURCE_ENV = "FACIAL_KEYPOINTS_SOURCE"
DATA_FILES = ("training.csv", "val.csv", "test.csv")
MARKER = ".source.json"  # written last: a folder with it is complete

KNOWN_SHA256 = {
    "facial_keypoints.zip": "a0e16b7ca80278b3a49ada32d55eb0da1c4118f91408d2e0a5fdc9dc1b6e83aa",
}

# The zip comment of the zips that `python -m grader dataset` builds (grader/dataset_build.py).
BUILT_ZIP_COMMENT = b"facial keypoints data built by python -m grader dataset"

HOW_TO_GET = (
    "Get the zip your course gives you and run\n"
    "    python -m exercise_code.util.download --source PATH_OR_URL_OF_THE_ZIP\n"
    f"(or set {SOURCE_ENV} to that path or URL).\n"
    "Instructors: the course data is built from the public Udacity \"Facial Keypoint Detection\" (P1) data, "
    "the data/ folder of https://github.com/udacity/P1_Facial_Keypoints, with\n"
    "    python -P -m grader dataset --from udacity PATH_OR_URL --out datasets/built   (or: make data)\n"
    "which writes the course's data zips (see the README, \"Making the course data\")."
)


class DataSourceError(RuntimeError):
    """The data could not be fetched; the message says why and what to do."""



def fetch_dataset(source=None, dest=None, sha256=None, force=False, known_sha256=None):
    """
    Put the CSV files of a dataset zip into a folder.

    Inputs:
    - source: URL or local path of the zip; default $FACIAL_KEYPOINTS_SOURCE
    - dest: Destination folder; default default_data_dir()
    - sha256: Expected SHA-256 of the zip; default known_sha256 by file name
    - force: Fetch again even if dest already holds this zip's files
    - known_sha256: Dict {file name: SHA-256} of the published zips; default KNOWN_SHA256. A zip
      of such a name that an instructor rebuilt (python -m grader dataset) is accepted with a note

    Returns:
    - dest, as a Path, holding training.csv / val.csv / test.csv (those in the zip)
    """
    source = str(source or os.environ.get(SOURCE_ENV) or "")
    if not source:
        raise DataSourceError(f"No data source given. {HOW_TO_GET}")
    dest = Path(dest or default_data_dir())
    by_name = (KNOWN_SHA256 if known_sha256 is None else known_sha256).get(PurePosixPath(source).name, "")
    expected = (sha256 or by_name).lower() or None

    marker = _read_marker(dest)
    same = marker and (marker.get("sha256") == expected if expected else marker.get("source") == source)
    if marker and not sha256 and marker.get("rebuilt"):
        same = marker.get("source") == source   # a rebuilt zip: like a zip of no known name
    if same and not force:
        print(f"{dest} already holds {', '.join(marker['files'])}")
        return dest

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-") as tmp:
        tmp = Path(tmp)
        zip_path = download_file(source, tmp / "download.zip") if _is_url(source) else _local_zip(source)
        digest = file_sha256(zip_path)
        rebuilt = False
        if expected and digest != expected:
            # The published zip's hash is known by its name; an instructor's own build has the same name and
            # other content. Its members' CRCs, checked as we unpack, still catch a corrupt copy.
            rebuilt = not sha256 and _built_by_pack(zip_path)
            if not rebuilt:
                raise DataSourceError(
                    f"{source} has SHA-256 {digest}, expected {expected}: the file is corrupt, "
                    "incomplete or not this dataset. Delete it and download it again. (A zip you built "
                    "yourself with python -m grader dataset is accepted as it is; for another, pass its SHA-256 "
                    "with --sha256.)")
            print(f"{source} was built with python -m grader dataset (SHA-256 {digest}), "
                  "not the course's published zip of that name: using it")
        unpacked = tmp / "unpacked"
        files = _unpack_csvs(zip_path, unpacked, source)
        (unpacked / MARKER).write_text(json.dumps({"source": source, "sha256": digest, "files": files,
                                                   "rebuilt": rebuilt}))
        if dest.exists():
            os.replace(dest, tmp / "previous")  # removed with tmp
        os.replace(unpacked, dest)
    print(f"Unpacked {', '.join(files)} into {dest}")
    return dest


def _read_marker(dest):
    try:
        return json.loads((dest / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _is_url(source):
    return source.split(":", 1)[0].lower() in ("http", "https", "file")


def _local_zip(source):
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataSourceError(f"{path} does not exist. {HOW_TO_GET}")
    return path


def _built_by_pack(zip_path):
    """Does the zip say, in its comment, that python -m grader dataset built it?"""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            return archive.comment.startswith(BUILT_ZIP_COMMENT)
    except (zipfile.BadZipFile, OSError):
        return False   # _unpack_csvs says what is wrong with it


def download_file(url, target):
    """
    Stream a URL into a file (also used by python -m grader dataset).

    Inputs:
    - url: http, https or file URL
    - target: Path of the file to write

    Returns:
    - target; raises DataSourceError, saying what to do, if the download fails
    """
    print(f"Downloading {url} ...")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as f:
            shutil.copyfileobj(response, f, length=1 << 20)
    except (urllib.error.URLError, OSError) as error:
        raise DataSourceError(
            f"Could not download {url} ({getattr(error, 'reason', error)}). Check the URL and "
            f"your network, or download the zip some other way. {HOW_TO_GET}") from None
    return target


def _unpack_csvs(zip_path, folder, source):
    """Extract the known CSV files (by base name, so no path from the zip is used)."""
    folder.mkdir()
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = {PurePosixPath(m.filename).name: m for m in archive.infolist()
                       if not m.is_dir() and PurePosixPath(m.filename).name in DATA_FILES}
            if not members:
                raise DataSourceError(
                    f"{source} holds none of {', '.join(DATA_FILES)}: is it the facial keypoints zip?")
            for name, member in sorted(members.items()):
                with archive.open(member) as src, open(folder / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)  # checks the CRC at the end
    except (zipfile.BadZipFile, EOFError) as error:
        raise DataSourceError(
            f"{source} is not a valid zip file ({error}): it is corrupt or incomplete. "
            "Delete it and download it again.") from None
    return sorted(members)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Get the facial keypoints data.")
    parser.add_argument("--source", help=f"URL or zip path (default: ${SOURCE_ENV})")
    parser.add_argument("--dest", type=Path, help=f"folder to fill (default: {default_data_dir()})")
    parser.add_argument("--sha256", help="expected SHA-256 of the zip (default: known by file name)")
    parser.add_argument("--force", action="store_true", help="fetch again even if already there")
    args = parser.parse_args(argv)
    try:
        fetch_dataset(args.source, args.dest, args.sha256, args.force)
    except DataSourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
