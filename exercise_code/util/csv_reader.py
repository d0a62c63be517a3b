"""
Read a facial keypoints CSV (the Kaggle / I2DL exercise 9 format) into arrays.

The file has a header with 30 keypoint columns (see keypoints.KEYPOINT_COLUMNS)
and an `Image` column of 9216 space-separated integers 0..255 (a 96x96 image,
row-major). Line numbers in error messages count the header as line 1.

We parse the whole file in one vectorized pass, which is fast, and only when that
pass finds something wrong do we walk the rows one by one to say exactly which row
is bad and why.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..keypoints import IMAGE_SIZE, KEYPOINT_COLUMNS, NUM_KEYPOINTS

IMAGE_COLUMN = "Image"
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE
# The image spans x, y in [-0.5, 95.5] under the pixel-index convention.
KEYPOINT_MIN, KEYPOINT_MAX = -0.5, IMAGE_SIZE - 0.5
_MISSING = {"", "nan", "NaN", "NA"}
_FIRST_DATA_LINE = 2  # line 1 is the header
_DIGITS_AND_SPACES = b"0123456789 \t\n\r\x0b\x0c"  # what an Image may hold


class DataFormatError(ValueError):
    """A data file is not in the facial keypoints format; the message says where and why."""


@dataclass
class KeypointsData:
    """
    The parsed content of one CSV.

    - images: uint8 array of shape (N, 96, 96)
    - keypoints: float32 array of shape (N, 15, 2), (x, y) in pixels
    - num_dropped: rows left out because some keypoints were missing
    """
    images: np.ndarray
    keypoints: np.ndarray
    num_dropped: int


def read_keypoints_csv(path):
    """
    Parse a facial keypoints CSV, dropping rows with missing keypoints.

    Inputs:
    - path: Path of the CSV file

    Returns:
    - KeypointsData with the images and keypoints of the complete rows

    Raises DataFormatError (naming the file and line) for a wrong header, a row
    with other than 9216 pixels, non-numeric or out-of-range pixels, keypoints
    outside the image, and an empty or truncated file.
    """
    path = Path(path)
    table = _read_table(path)
    lines = np.arange(len(table)) + _FIRST_DATA_LINE

    keypoints, missing = _parse_keypoints(path, table, lines)
    keep = ~missing.any(axis=1)
    images = _parse_images(path, table[IMAGE_COLUMN].to_numpy()[keep], lines[keep])
    return KeypointsData(
        images=images,
        keypoints=keypoints[keep].reshape(-1, NUM_KEYPOINTS, 2),
        num_dropped=int((~keep).sum()),
    )


def _read_table(path):
    """Read the CSV as strings and check its header. Returns a DataFrame."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        # Everything as text: we convert and check the columns ourselves.
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataFormatError(f"{path}: the file is empty; download or unpack it again") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataFormatError(f"{path}: not a readable CSV ({error})") from None

    columns = list(table.columns)
    if columns and (columns[0] == "" or columns[0].startswith("Unnamed: 0")):
        columns, table = columns[1:], table.iloc[:, 1:]  # a leading index column, as in I2DL's files
    expected = KEYPOINT_COLUMNS + [IMAGE_COLUMN]
    if columns != expected:
        missing = [c for c in expected if c not in columns]
        unknown = [c for c in columns if c not in expected]
        problem = (f"missing columns {missing}" if missing else "") + \
                  ("; " if missing and unknown else "") + \
                  (f"unknown columns {unknown}" if unknown else "")
        raise DataFormatError(
            f"{path}, line 1: wrong header ({problem or 'columns out of order'}). "
            f"Expected the 30 keypoint columns {KEYPOINT_COLUMNS[0]} ... {KEYPOINT_COLUMNS[-1]}, "
            f"then {IMAGE_COLUMN}"
        )
    if len(table) == 0:
        raise DataFormatError(f"{path}: the file has a header but no data rows")
    image = table[IMAGE_COLUMN]
    no_image = (image.isna() | (image.fillna("").str.strip() == "")).to_numpy()  # short rows are padded
    if no_image.any():
        line = np.flatnonzero(no_image)[0] + _FIRST_DATA_LINE
        raise DataFormatError(
            f"{path}, line {line}: the row has no {IMAGE_COLUMN} (is the file truncated?)")
    return table


def _parse_keypoints(path, table, lines):
    """
    Convert the keypoint columns to numbers.

    Returns a tuple of:
    - keypoints: float32 array of shape (N, 30), NaN where missing
    - missing: bool array of shape (N, 30)
    """
    text = table[KEYPOINT_COLUMNS].to_numpy(dtype=str)              # (N, 30)
    missing = np.isin(np.char.strip(text), list(_MISSING))
    values = pd.DataFrame(text).apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = np.isnan(values) & ~missing
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataFormatError(
            f"{path}, line {lines[row]}: {KEYPOINT_COLUMNS[col]} is {text[row, col]!r}, not a number")
    outside = ~missing & ((values < KEYPOINT_MIN) | (values > KEYPOINT_MAX))
    if outside.any():
        row, col = np.argwhere(outside)[0]
        raise DataFormatError(
            f"{path}, line {lines[row]}: {KEYPOINT_COLUMNS[col]} = {values[row, col]} is outside "
            f"the {IMAGE_SIZE}x{IMAGE_SIZE} image (allowed {KEYPOINT_MIN} to {KEYPOINT_MAX} pixels)")
    return values.astype(np.float32), missing


def _parse_images(path, image_strings, lines):
    """
    Parse the Image strings of the kept rows.

    Inputs:
    - image_strings: array of N strings, each 9216 space-separated integers
    - lines: int array of shape (N,), the file line of each string

    Returns:
    - images: uint8 array of shape (N, 96, 96)
    """
    n = len(image_strings)
    if n == 0:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    # One C-level parse of all rows, with -1 after each row as an end marker, so
    # the row lengths can be checked without splitting every row in Python.
    joined = " -1 ".join(image_strings) + " -1"
    # numpy warns, and stops, at text it cannot parse: only digits, spaces and our end markers
    # go to it (so the warning filters, which all threads share, are never touched).
    try:
        rest = joined.encode("ascii").translate(None, _DIGITS_AND_SPACES)
    except UnicodeEncodeError:
        rest = None
    if rest == b"-" * n:
        flat = np.fromstring(joined, dtype=np.int64, sep=" ")
        ends = np.flatnonzero(flat == -1)
        if (len(ends) == n and np.all(np.diff(ends, prepend=-1) == NUM_PIXELS + 1)
                and flat.max() <= 255 and np.count_nonzero(flat < 0) == n):
            pixels = np.delete(flat, ends)
            return pixels.astype(np.uint8).reshape(n, IMAGE_SIZE, IMAGE_SIZE)
    _raise_first_bad_image(path, image_strings, lines)


def _raise_first_bad_image(path, image_strings, lines):
    """Walk the rows one by one and raise a DataFormatError for the first bad image."""
    for text, line in zip(image_strings, lines):
        tokens = text.split()
        if len(tokens) != NUM_PIXELS:
            hint = " (is the file truncated?)" if line == lines[-1] else ""
            raise DataFormatError(
                f"{path}, line {line}: the Image has {len(tokens)} pixel values, "
                f"expected {NUM_PIXELS} ({IMAGE_SIZE}x{IMAGE_SIZE}){hint}")
        for token in tokens:
            if not (token.isascii() and token.isdigit()) or int(token) > 255:
                raise DataFormatError(
                    f"{path}, line {line}: pixel value {token!r} is not an integer from 0 to 255")
    raise DataFormatError(f"{path}: the Image column could not be parsed")  # not reached for real files
