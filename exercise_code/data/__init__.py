"""
Facial keypoints data: reading, caching and augmentation.
Getting the data is `python -m exercise_code.util.download` (see util/download.py).
"""
from .facial_keypoints_dataset import FacialKeypointsDataset
from ..keypoints import KEYPOINT_NAMES, pixels_to_unit, unit_to_pixels
from .transforms import Compose, RandomAffine, RandomBrightnessContrast, RandomHorizontalFlip

__all__ = [
    "Compose", "FacialKeypointsDataset", "KEYPOINT_NAMES", "RandomAffine",
    "RandomBrightnessContrast", "RandomHorizontalFlip", "pixels_to_unit", "unit_to_pixels",
]
