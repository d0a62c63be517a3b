"""FacialKeypointsDataset on the real data and on small synthetic files."""
import csv
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from exercise_code.data import FacialKeypointsDataset
from grader.release import REPO_ROOT


def test_split_sizes(train_set, val_set):
    """Do the splits have the documented sizes (2369 and 472 faces)?"""
    assert len(train_set) == 2369 and len(val_set) == 472
    assert train_set.num_dropped == 0


def test_item_format(train_set):
    """Is an item an image (1, 96, 96) in [0, 1] and keypoints (15, 2) in unit coordinates?"""
    sample = train_set[0]
    assert set(sample) == {"image", "keypoints"}
    image, keypoints = sample["image"], sample["keypoints"]
    assert image.shape == (1, 96, 96) and image.dtype == torch.float32
    assert keypoints.shape == (15, 2) and keypoints.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    assert keypoints.abs().max() <= 1.01


def test_items_match_the_csv(data_dir, train_set):
    """Are pixels / 255 and (keypoint - 48) / 48 exactly what the CSV's rows say, in column order?"""
    csv.field_size_limit(10**8)
    with open(data_dir / "training.csv") as f:
        rows = list(zip(range(3), csv.DictReader(f)))
    for i, row in rows:
        sample = train_set[i]
        pixels = np.array(row["Image"].split(), dtype=np.float32).reshape(1, 96, 96) / 255
        np.testing.assert_allclose(sample["image"].numpy(), pixels, atol=1e-7)
        values = list(row.values())[:30]
        keypoints = (np.array(values, dtype=np.float32).reshape(15, 2) - 48) / 48
        np.testing.assert_allclose(sample["keypoints"].numpy(), keypoints, atol=1e-6)


def test_folder_and_file_give_the_same_data(data_dir, val_set):
    """Does FacialKeypointsDataset(folder, 'val') equal FacialKeypointsDataset(folder / 'val.csv')?"""
    by_file = FacialKeypointsDataset(data_dir / "val.csv")
    assert torch.equal(by_file.images, val_set.images) and torch.equal(by_file.keypoints, val_set.keypoints)


def test_samples_are_copies(val_set):
    """Can a caller change a sample without changing the dataset?"""
    sample = val_set[5]
    sample["image"].zero_()
    sample["keypoints"].zero_()
    assert val_set[5]["image"].abs().sum() > 0 and val_set[5]["keypoints"].abs().sum() > 0


def test_transform_sees_pixels(make_csv):
    """Is the transform called with keypoints in pixels, before the scaling to unit coordinates?"""
    seen = []
    def spy(sample):
        seen.append(sample["keypoints"].clone())
        return {"image": sample["image"], "keypoints": sample["keypoints"] + 48}
    path = make_csv()
    dataset = FacialKeypointsDataset(path, transform=spy)
    plain = FacialKeypointsDataset(path)
    sample = dataset[1]
    assert seen[0].min() >= 10 and seen[0].max() <= 85  # the synthetic file's pixel range
    torch.testing.assert_close(sample["keypoints"], plain[1]["keypoints"] + 1)


def test_dropped_rows_are_reported(make_csv, capsys):
    """Is the number of rows dropped for missing keypoints printed and kept?"""
    def blank(header, rows):
        rows[1][0] = ""
    dataset = FacialKeypointsDataset(make_csv(rows=3, edit=blank))
    assert len(dataset) == 2 and dataset.num_dropped == 1
    assert "dropped 1 rows with missing keypoints, kept 2" in capsys.readouterr().out


def test_dataloader_batches(train_set):
    """Does a DataLoader stack items into (B, 1, 96, 96) and (B, 15, 2) batches?"""
    batch = next(iter(DataLoader(train_set, batch_size=8, shuffle=True)))
    assert batch["image"].shape == (8, 1, 96, 96) and batch["keypoints"].shape == (8, 15, 2)


@pytest.mark.parametrize("args, error, words", [
    (("folder",), ValueError, "pass split="),
    (("folder", "training"), ValueError, "pass split="),
    (("file", "train"), ValueError, "is a file"),
    (("nowhere",), FileNotFoundError, "python -m exercise_code.util.download"),
    (("empty_folder", "val"), FileNotFoundError, "python -m exercise_code.util.download"),
])
def test_bad_arguments(make_csv, tmp_path, args, error, words):
    """Do wrong paths and split names say what to pass or what to run?"""
    places = {"folder": make_csv("training.csv").parent, "file": make_csv("x.csv"),
              "nowhere": tmp_path / "missing.csv", "empty_folder": tmp_path / "sub"}
    places["empty_folder"].mkdir()
    with pytest.raises(error, match=words):
        FacialKeypointsDataset(places[args[0]], *args[1:])


def test_repr(val_set):
    """Does repr show the split, the size and the file?"""
    assert repr(val_set).startswith("FacialKeypointsDataset(split='val', n=472, path=")


def test_student_stub_raises_not_implemented(make_csv):
    """In the student package, is __getitem__ a clear NotImplementedError (and the rest working)?"""
    path = make_csv()
    code = ("from exercise_code.data import FacialKeypointsDataset\n"
            f"d = FacialKeypointsDataset({str(path)!r})\n"
            "print(len(d))\n"
            "try:\n    d[0]\nexcept NotImplementedError:\n    print('not implemented')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert result.stdout.split() == ["3", "not", "implemented"], result.stderr
