"""
FacialKeypointsDataset: 96x96 grayscale faces with 15 keypoints each.
"""
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..util.cache import load_keypoints_data
from ..keypoints import pixels_to_unit

# Which file of a dataset folder holds which split.
SPLIT_FILES = {"train": "training.csv", "val": "val.csv", "test": "test.csv"}


class FacialKeypointsDataset(Dataset):
    """
    Faces with keypoints, read from a CSV once (and from its cache after that).

    Each item is a dict:
    - "image": float32 tensor of shape (1, 96, 96), values in [0, 1]
    - "keypoints": float32 tensor of shape (15, 2), (x, y) per keypoint in unit
      coordinates (pixel - 48) / 48, in the CSV's column order

    A transform, if given, is called on {"image", "keypoints"} with keypoints in
    *pixels* (so flips and rotations can use pixel geometry), and must return a
    new dict of the same form; the dataset scales the keypoints afterwards.
    """

    def __init__(self, path, split=None, transform=None, use_cache=True):
        """
        Inputs:
        - path: A CSV file, or a dataset folder holding training.csv, val.csv, test.csv
        - split: With a folder: "train", "val" or "test"; with a file: None
        - transform: Optional callable on a sample dict (see the class docstring)
        - use_cache: Whether to keep the parsed arrays in a cache file beside the CSV
        """
        path = Path(path)
        if path.is_dir():
            if split not in SPLIT_FILES:
                raise ValueError(
                    f"{path} is a folder: pass split='train', 'val' or 'test' (got {split!r})")
            path = path / SPLIT_FILES[split]
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} is missing. Get the data first: python -m exercise_code.util.download")
        elif split is not None:
            raise ValueError(f"split={split!r} was given, but {path} is a file, not a dataset folder")
        elif not path.is_file():
            raise FileNotFoundError(
                f"{path}: no such file or folder. Get the data first: "
                "python -m exercise_code.util.download")

        data = load_keypoints_data(path, use_cache=use_cache)
        self.path, self.split, self.transform = path, split, transform
        self.num_dropped = data.num_dropped
        if data.num_dropped:
            print(f"{path.name}: dropped {data.num_dropped} rows with missing keypoints, "
                  f"kept {len(data.images)}")
        # Converted once here so that __getitem__ only has to index.
        self.images = torch.from_numpy(data.images).unsqueeze(1).float().div_(255)  # (N, 1, 96, 96)
        self.keypoints = torch.from_numpy(data.keypoints)                           # (N, 15, 2), pixels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        """
        Inputs:
        - index: Integer, 0 <= index < len(self)

        Returns:
        - sample: Dict with "image" (1, 96, 96) in [0, 1] and "keypoints" (15, 2)
          in unit coordinates, after self.transform if there is one
        """
        sample = None
        # TODO: Build the sample for `index` from self.images[index] and
        # self.keypoints[index] (pixels). Give the caller copies (.clone()), so
        # that changing a sample can never change the dataset. If self.transform
        # is set, call it on the sample (keypoints still in pixels), then scale
        # the keypoints to unit coordinates with pixels_to_unit.
        ### BEGIN SOLUTION
        sample = {"image": self.images[index].clone(), "keypoints": self.keypoints[index].clone()}
        if self.transform is not None:
            sample = self.transform(sample)
        sample = {"image": sample["image"], "keypoints": pixels_to_unit(sample["keypoints"])}
        ### END SOLUTION
        return sample

    def __repr__(self):
        split = f"split={self.split!r}, " if self.split else ""
        return (f"{type(self).__name__}({split}n={len(self)}, path='{self.path}', "
                f"transform={self.transform!r})")
