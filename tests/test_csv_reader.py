"""Reading the CSV format: correct values, and a clear error for every kind of bad file."""
import warnings

import numpy as np
import pandas as pd
import pytest

from exercise_code.util.csv_reader import DataFormatError, read_keypoints_csv
from exercise_code.keypoints import KEYPOINT_COLUMNS


def test_values_match_a_plain_pandas_parse(make_csv):
    """Are images and keypoints exactly what the file says, in column order?"""
    path = make_csv(rows=4)
    data = read_keypoints_csv(path)
    table = pd.read_csv(path)
    assert data.images.dtype == np.uint8 and data.images.shape == (4, 96, 96)
    assert data.keypoints.dtype == np.float32 and data.keypoints.shape == (4, 15, 2)
    for i in range(4):
        pixels = np.array(table["Image"][i].split(), dtype=np.uint8).reshape(96, 96)
        np.testing.assert_array_equal(data.images[i], pixels)
        np.testing.assert_allclose(data.keypoints[i].ravel(), table[KEYPOINT_COLUMNS].iloc[i], rtol=1e-6)
    assert data.num_dropped == 0


def test_leading_index_column_is_accepted(make_csv):
    """Does a file with I2DL's unnamed index column read the same?"""
    def add_index(header, rows):
        header.insert(0, "")
        for i, row in enumerate(rows):
            row.insert(0, str(i))
    plain, indexed = read_keypoints_csv(make_csv("a.csv")), read_keypoints_csv(make_csv("b.csv", edit=add_index))
    np.testing.assert_array_equal(plain.images, indexed.images)
    np.testing.assert_array_equal(plain.keypoints, indexed.keypoints)


def test_rows_with_missing_keypoints_are_dropped_and_counted(make_csv):
    """Are incomplete rows (empty or NaN keypoints) left out and counted, as I2DL does?"""
    def blank(header, rows):
        rows[0][3] = ""
        rows[2][29] = "NaN"
    data = read_keypoints_csv(make_csv(rows=4, edit=blank))
    assert data.num_dropped == 2 and len(data.images) == 2


def assert_mentions(error, *words):
    """The error's message contains every word."""
    for word in words:
        assert word in str(error.value)


def _set(row, column, value):
    def edit(header, rows):
        rows[row][column] = value
    return edit


BAD_FILES = {
    # scenario: (edit, words the message must contain)
    "missing_column": (lambda h, r: (h.pop(20), [row.pop(20) for row in r]), ["line 1", "missing columns", "nose_tip_x"]),
    "unknown_column": (lambda h, r: (h.append("extra"), [row.append("1") for row in r]), ["line 1", "unknown columns", "extra"]),
    "short_image": (_set(1, 30, " ".join(["7"] * 9215)), ["line 3", "9215 pixel values", "9216"]),
    "long_image": (_set(0, 30, " ".join(["7"] * 9217)), ["line 2", "9217 pixel values"]),
    "non_numeric_pixel": (_set(2, 30, " ".join(["7"] * 9215 + ["abc"])), ["line 4", "'abc'"]),
    "pixel_over_255": (_set(0, 30, " ".join(["256"] + ["7"] * 9215)), ["line 2", "'256'", "0 to 255"]),
    "negative_pixel": (_set(1, 30, " ".join(["-1"] + ["7"] * 9215)), ["line 3", "'-1'"]),
    "fractional_pixel": (_set(1, 30, " ".join(["7.5"] + ["7"] * 9215)), ["line 3", "'7.5'"]),
    "keypoint_outside": (_set(2, 4, "97.0"), ["line 4", KEYPOINT_COLUMNS[4], "outside"]),
    "negative_keypoint": (_set(0, 1, "-3"), ["line 2", KEYPOINT_COLUMNS[1], "outside"]),
    "non_numeric_keypoint": (_set(1, 7, "left"), ["line 3", KEYPOINT_COLUMNS[7], "'left'"]),
}


@pytest.mark.parametrize("scenario", sorted(BAD_FILES))
def test_bad_file_names_file_line_and_problem(make_csv, scenario):
    """Does each kind of bad row give a DataFormatError naming the file, the line and the problem?"""
    edit, words = BAD_FILES[scenario]
    path = make_csv(f"{scenario}.csv", edit=edit)
    with pytest.raises(DataFormatError) as error:
        read_keypoints_csv(path)
    assert_mentions(error, str(path), *words)


def test_empty_file(tmp_path):
    """Is an empty file reported as empty?"""
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataFormatError, match="empty"):
        read_keypoints_csv(path)


def test_header_only(make_csv):
    """Is a file without rows reported as such?"""
    with pytest.raises(DataFormatError, match="no data rows"):
        read_keypoints_csv(make_csv(rows=0))


@pytest.mark.parametrize("cut, words", [(5000, ["line 3", "truncated"]), (40, ["line 3", "truncated"])])
def test_truncated_file(make_csv, cut, words):
    """Is a file cut off in its last row (in the image, or in the keypoints) reported as truncated?"""
    path = make_csv(rows=2)
    text = path.read_text()
    last_row_start = text.rindex("\n", 0, len(text) - 1) + 1
    path.write_text(text[:last_row_start + cut])
    with pytest.raises(DataFormatError) as error:
        read_keypoints_csv(path)
    assert_mentions(error, str(path), *words)


def test_not_a_csv(tmp_path):
    """Is a binary file a DataFormatError, not a bare pandas or unicode error?"""
    path = tmp_path / "training.csv"
    path.write_bytes(b"PK\x03\x04\xff\xfe\x00garbage\n\x80\x81")
    with pytest.raises(DataFormatError, match=str(path)):
        read_keypoints_csv(path)


def test_missing_file(tmp_path):
    """Is a missing file a FileNotFoundError naming it?"""
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_keypoints_csv(tmp_path / "nope.csv")


def test_reading_never_turns_warnings_into_errors(make_csv, monkeypatch):
    """The grader reads CSVs on several threads at once (the trusted checks' inputs), and a process's
    warning filters are shared by all its threads: a thread's temporary "error" filter, restored out of
    order by another, once turned every later warning of a class autograde into an exception. Does the
    reader refuse a bad image without a warning and without ever setting such a filter?"""
    bad = make_csv("bad.csv", edit=_set(2, 30, " ".join(["7"] * 9215 + ["abc"])))
    good = make_csv("good.csv")

    made_errors = []
    for name in ("simplefilter", "filterwarnings"):   # pandas' own "ignore" filters are none of ours
        honest = getattr(warnings, name)
        monkeypatch.setattr(warnings, name, lambda action, *args, honest=honest, **kwargs: (
            made_errors.append(action) if action == "error" else None, honest(action, *args, **kwargs))[1])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert len(read_keypoints_csv(good).images) == 3
        with pytest.raises(DataFormatError) as error:
            read_keypoints_csv(bad)
    monkeypatch.undo()
    assert made_errors == []
    assert_mentions(error, "line 4", "'abc'")
    assert seen == []


def test_a_plus_sign_or_a_dash_in_an_image_is_a_bad_pixel(make_csv):
    """Only digits and spaces make an image: '+7' and '7-3' are named as bad pixels."""
    for name, token in (("plus.csv", "+7"), ("dash.csv", "7-3")):
        path = make_csv(name, edit=_set(0, 30, " ".join([token] + ["7"] * 9215)))
        with pytest.raises(DataFormatError) as error:
            read_keypoints_csv(path)
        assert_mentions(error, "line 2", repr(token))
