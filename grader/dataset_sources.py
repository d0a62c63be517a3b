"""
Read the public data the course data is built from, checking every row.

    tree = open_source("train-test-data.zip", workdir)    # a zip, a folder, a file or a URL
    frames = read_udacity(tree)                           # Udacity P1: frames with 68 iBUG points
    table = read_kaggle_csv(tree, "training.csv")         # Kaggle / I2DL: 96x96 faces, 15 keypoints

Every problem with the input is a DatasetSourceError that names the file and the
line (line 1 is the header), and says what was expected.
"""
import csv
import io
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from exercise_code.util.download import DataSourceError, download_file
from .ibug_keypoints import NUM_IBUG_POINTS
from .trusted import KEYPOINT_COLUMNS

UDACITY_CSVS = {"training_frames_keypoints.csv": "training", "test_frames_keypoints.csv": "test"}
IMAGE_COLUMN = "Image"
NUM_PIXELS = 96 * 96


class DatasetSourceError(ValueError):
    """The source data is missing or malformed; the message names the file and line."""


class SourceTree:
    """
    The files of a source, whether it is a folder, a zip or a single file.

    - label: how messages name the source
    - names: posix paths of its files, relative to the folder or inside the zip
    """

    def __init__(self, path, label=None):
        self.path = Path(path)
        self.label = label or str(path)
        if self.path.is_dir():
            self._zip = None
            self.names = sorted(p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file())
        elif zipfile.is_zipfile(self.path):
            self._zip = zipfile.ZipFile(self.path)
            self.names = sorted(i.filename for i in self._zip.infolist() if not i.is_dir())
        elif self.path.is_file():
            self._zip = None
            self.names = [self.path.name]
            self.path = self.path.parent
        else:
            raise DatasetSourceError(f"{self.label} does not exist: give a zip, a folder, a CSV file or a URL")

    def __repr__(self):
        return f"SourceTree({self.label!r}, {len(self.names)} files)"

    def find(self, basename):
        """The one file named basename, at any depth (None if there is none)."""
        found = [n for n in self.names if PurePosixPath(n).name == basename]
        if len(found) > 1:
            found.sort(key=lambda n: n.count("/"))
            if found[0].count("/") == found[1].count("/"):
                raise DatasetSourceError(f"{self.label} holds {len(found)} files named {basename} ({', '.join(found)}): "
                                         "give the folder or zip of one copy of the data")
        return found[0] if found else None

    def read(self, name):
        """The bytes of the file name (a posix path from names)."""
        if self._zip is not None:
            return self._zip.read(name)
        return (self.path / name).read_bytes()

    def where(self, name):
        """name as messages show it: inside the source."""
        return f"{self.label}:{name}" if self._zip is not None else str(self.path / name)


def open_source(source, workdir):
    """
    Open a source: a local folder, zip or file, or a URL (downloaded into workdir).

    Inputs:
    - source: Path or URL (http, https, file)
    - workdir: A folder for the download

    Returns:
    - A SourceTree
    """
    text = str(source)
    if text.split(":", 1)[0].lower() in ("http", "https", "file"):
        target = Path(workdir) / (PurePosixPath(text.split("?", 1)[0]).name or "download")
        try:
            download_file(text, target)   # the pack's download helper: streamed, with a clear message on failure
        except DataSourceError as error:
            raise DatasetSourceError(str(error).split(" Check the URL")[0] + ". Check the URL and your network, "
                                     "or download it some other way and give its path.") from None
        if zipfile.is_zipfile(target) or target.suffix == ".csv":
            return SourceTree(target, label=text)
        raise DatasetSourceError(f"{text} is not a zip file: give the URL of the data's zip (or download it and "
                                 "give the zip, folder or CSV)")
    return SourceTree(source)


@dataclass
class UdacityFrames:
    """
    The annotated frames of the Udacity P1 data, in CSV order (training CSV first).

    - names: list of N frame file names, like "Luis_Fonsi_21.jpg"
    - images: list of N paths of the image files in the tree
    - landmarks: float64 array of shape (N, 68, 2), (x, y) in the frame's pixels
    - rows: list of N "file, line L" strings, for messages
    """
    names: list
    images: list
    landmarks: np.ndarray
    rows: list


def read_udacity(tree):
    """
    Read training_frames_keypoints.csv and test_frames_keypoints.csv (whichever the tree holds).

    Each CSV row is a frame's file name, then 136 numbers: the 68 iBUG points as x0, y0, x1, y1, ...
    The frame itself is in the folder training/ or test/ beside its CSV.

    Inputs:
    - tree: A SourceTree

    Returns:
    - UdacityFrames
    """
    names, images, landmarks, rows = [], [], [], []
    found = {csv_name: tree.find(csv_name) for csv_name in UDACITY_CSVS}
    if not any(found.values()):
        raise DatasetSourceError(
            f"{tree.label} holds neither {' nor '.join(UDACITY_CSVS)}: give the Udacity P1 data (the data/ folder "
            "of github.com/udacity/P1_Facial_Keypoints, or its train-test-data.zip)")
    present = set(tree.names)
    for csv_name, folder in UDACITY_CSVS.items():
        path = found[csv_name]
        if path is None:
            continue
        image_folder = PurePosixPath(path).parent / folder
        where = tree.where(path)
        text = tree.read(path).decode("utf-8-sig", errors="replace")
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header is None:
            raise DatasetSourceError(f"{where}: the file is empty")
        for record in reader:
            line = reader.line_num
            if not record or all(not field.strip() for field in record):
                continue   # a blank line, as at the end of some files
            name, values = record[0].strip(), record[1:]
            if len(values) != 2 * NUM_IBUG_POINTS:
                raise DatasetSourceError(
                    f"{where}, line {line}: {len(values)} numbers after the file name, expected "
                    f"{2 * NUM_IBUG_POINTS} ({NUM_IBUG_POINTS} points as x, y in the iBUG 300-W order)"
                    + (" (is the row cut short?)" if len(values) < 2 * NUM_IBUG_POINTS else ""))
            if not name:
                raise DatasetSourceError(f"{where}, line {line}: the row has no file name in its first column")
            try:
                points = np.array([float(v) for v in values])
            except ValueError:
                bad = next(v for v in values if not _is_number(v))
                raise DatasetSourceError(f"{where}, line {line}: {bad!r} is not a number "
                                         f"(column {values.index(bad) + 2})") from None
            if not np.isfinite(points).all():
                raise DatasetSourceError(f"{where}, line {line}: the points hold an empty, NaN or infinite value")
            image = (image_folder / name).as_posix()
            if image not in present:
                raise DatasetSourceError(
                    f"{where}, line {line}: the image {image} is not in {tree.label} (an incomplete download or "
                    "unpacking? Get the data again)")
            names.append(name)
            images.append(image)
            landmarks.append(points.reshape(NUM_IBUG_POINTS, 2))
            rows.append(f"{where}, line {line}")
    if not names:
        raise DatasetSourceError(f"{tree.label}: the keypoint CSVs have a header but no rows")
    return UdacityFrames(names, images, np.stack(landmarks), rows)


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def person_of(frame_name):
    """The person of a Udacity frame: its file name without the extension and the frame number."""
    return re.sub(r"_\d+$", "", PurePosixPath(frame_name).stem)


@dataclass
class KeypointTable:
    """
    The rows of a Kaggle-format CSV (15 keypoints, then a 96x96 Image).

    - keypoints: float64 array of shape (N, 15, 2), NaN where a value is missing
    - images: uint8 array of shape (N, 96, 96)
    - rows: list of N "file, line L" strings
    """
    keypoints: np.ndarray
    images: np.ndarray
    rows: list


def read_kaggle_csv(tree, basename):
    """
    Read a CSV in the Kaggle format (Kaggle's training.csv, I2DL's training.csv and val.csv).

    Missing keypoints are kept as NaN (the caller drops those rows); anything else malformed raises.
    A leading index column, as in I2DL's files, is ignored.

    Inputs:
    - tree: A SourceTree
    - basename: The file's name, found at any depth in the tree

    Returns:
    - KeypointTable
    """
    path = tree.find(basename)
    if path is None:
        raise DatasetSourceError(f"{tree.label} holds no {basename}")
    where = tree.where(path)
    try:
        table = pd.read_csv(io.BytesIO(tree.read(path)), dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DatasetSourceError(f"{where}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DatasetSourceError(f"{where}: not a readable CSV ({error})") from None
    if len(table.columns) and (table.columns[0] == "" or table.columns[0].startswith("Unnamed: 0")):
        table = table.iloc[:, 1:]
    expected = KEYPOINT_COLUMNS + [IMAGE_COLUMN]
    if list(table.columns) != expected:
        missing = [c for c in expected if c not in table.columns]
        raise DatasetSourceError(f"{where}, line 1: not the Kaggle header ({'missing ' + ', '.join(missing) if missing else 'columns out of order'}); "
                                 f"expected {KEYPOINT_COLUMNS[0]} ... {KEYPOINT_COLUMNS[-1]}, {IMAGE_COLUMN}")
    lines = [f"{where}, line {i + 2}" for i in range(len(table))]
    text = table[KEYPOINT_COLUMNS].to_numpy(dtype=str)                        # (N, 30)
    missing = np.isin(np.char.strip(text), ["", "nan", "NaN", "NA"])
    values = table[KEYPOINT_COLUMNS].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = np.isnan(values) & ~missing
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DatasetSourceError(f"{lines[row]}: {KEYPOINT_COLUMNS[col]} is {text[row, col]!r}, not a number")
    images = np.zeros((len(table), 96, 96), dtype=np.uint8)
    for i, pixels in enumerate(table[IMAGE_COLUMN]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # numpy warns when it stops at a token it cannot read; we count instead
            parsed = np.fromstring(pixels, dtype=np.int64, sep=" ")
        if parsed.size != NUM_PIXELS or len(pixels.split()) != NUM_PIXELS:
            raise DatasetSourceError(f"{lines[i]}: the Image has {len(pixels.split())} values, expected {NUM_PIXELS} "
                                     "integers (96x96)" + (", some not integers" if parsed.size != len(pixels.split()) else ""))
        if parsed.min() < 0 or parsed.max() > 255:
            raise DatasetSourceError(f"{lines[i]}: the Image has pixel values outside 0..255")
        images[i] = parsed.reshape(96, 96)
    return KeypointTable(values.reshape(-1, 15, 2), images, lines)
