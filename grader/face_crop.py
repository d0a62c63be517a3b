"""
Crop a face out of a frame into the course's 96x96 grayscale image, and move its keypoints with it.

The crop is a scale and a shift, never a rotation: faces keep their natural tilt,
as in the Kaggle data. For each face we fit the scale s and shift t that bring
four of its keypoints closest (least squares) to where the Kaggle training data
has them on average (REFERENCE_POINTS), so the course data's keypoint means are
close to Kaggle's. A keypoint at p in the frame is then at s * p + t in the crop.

Both images use the pack's pixel-index convention (see ../shared/datasets/README.md
or exercise_code/keypoints.py): the centre of pixel column c is at x = c, so an
image W pixels wide spans x in [-0.5, W - 0.5]. Pillow's resize(box=...) works in
edge coordinates instead (pixel c spans [c, c + 1]); crop_box converts.
"""
import math

import numpy as np
from PIL import Image

from .trusted import KEYPOINT_NAMES

OUTPUT_SIZE = 96

# Where the crop puts these keypoints, in output pixels: about their means in Kaggle's training.csv.
REFERENCE_POINTS = {
    "left_eye_center": (66.0, 37.0),
    "right_eye_center": (30.0, 37.0),
    "nose_tip": (48.0, 62.0),
    "mouth_center_bottom_lip": (48.0, 78.0),
}
_REFERENCE_IDS = [KEYPOINT_NAMES.index(name) for name in REFERENCE_POINTS]
_TARGETS = np.array(list(REFERENCE_POINTS.values()))   # (4, 2)

# Antialiased: Pillow's resize widens the filter by the scale factor when it shrinks.
RESAMPLING = Image.Resampling.BICUBIC


def fit_crop(keypoints):
    """
    Fit each face's crop: the scale and shift that bring its reference keypoints closest to REFERENCE_POINTS.

    Inputs:
    - keypoints: Array of shape (N, 15, 2), (x, y) in the frame's pixels, in KEYPOINT_NAMES order

    Returns a tuple of:
    - scale: float64 array of shape (N,), output pixels per frame pixel (above 1 enlarges)
    - shift: float64 array of shape (N, 2), so that a frame point p lands at scale * p + shift
    """
    points = np.asarray(keypoints, dtype=np.float64)[:, _REFERENCE_IDS]      # (N, 4, 2)
    centred = points - points.mean(axis=1, keepdims=True)                     # (N, 4, 2)
    targets = _TARGETS - _TARGETS.mean(axis=0)                                # (4, 2)
    # Least squares of sum_i |s p_i + t - q_i|^2: with both sides centred, s = <p, q> / <p, p>.
    spread = np.einsum("npc,npc->n", centred, centred)                        # (N,)
    scale = np.einsum("npc,pc->n", centred, targets) / np.maximum(spread, 1e-12)
    shift = _TARGETS.mean(axis=0) - scale[:, None] * points.mean(axis=1)      # (N, 2)
    return scale, shift


def move_keypoints(keypoints, scale, shift):
    """
    Where the crop puts points of the frame.

    Inputs:
    - keypoints: Array of shape (N, K, 2) in frame pixels
    - scale: Array of shape (N,); shift: array of shape (N, 2), from fit_crop

    Returns:
    - float64 array of shape (N, K, 2), in output pixels
    """
    return scale[:, None, None] * np.asarray(keypoints, dtype=np.float64) + shift[:, None, :]


def crop_box(scale, shift):
    """
    The frame region that becomes the output image, as Pillow's resize takes it.

    Inputs:
    - scale: float; shift: array of shape (2,), one face's crop from fit_crop

    Returns:
    - (left, top, right, bottom) in the frame's edge coordinates (pixel c spans [c, c + 1])

    Output pixel j's centre (edge coordinate j + 0.5) samples the frame at edge coordinate
    left + (j + 0.5) / scale, which is pixel-index coordinate left + (j + 0.5) / scale - 0.5.
    Setting that equal to (j - shift) / scale, the inverse of the crop, gives left.
    """
    left, top = 0.5 - (np.asarray(shift, dtype=np.float64) + 0.5) / scale
    size = OUTPUT_SIZE / scale
    return (float(left), float(top), float(left + size), float(top + size))


def crop_face(frame, scale, shift):
    """
    Cut one face out of a grayscale frame into OUTPUT_SIZE x OUTPUT_SIZE pixels, antialiased.

    Inputs:
    - frame: PIL image in mode "L"
    - scale: float; shift: array of shape (2,), from fit_crop

    Returns a tuple of:
    - image: uint8 array of shape (96, 96)
    - padded: True if the crop reached past the frame's border, which we filled by repeating the edge pixels
    """
    left, top, right, bottom = crop_box(scale, shift)
    width, height = frame.size
    # Pillow refuses a box outside the image, so we pad the frame first: as many whole pixels as needed.
    pad = [max(0, math.ceil(-left)), max(0, math.ceil(-top)),
           max(0, math.ceil(right - width)), max(0, math.ceil(bottom - height))]
    if any(pad):
        pixels = np.asarray(frame)                                            # (H, W)
        pixels = np.pad(pixels, ((pad[1], pad[3]), (pad[0], pad[2])), mode="edge")
        frame = Image.fromarray(pixels)
        left, right, top, bottom = left + pad[0], right + pad[0], top + pad[1], bottom + pad[1]
    image = frame.resize((OUTPUT_SIZE, OUTPUT_SIZE), RESAMPLING, box=(left, top, right, bottom))
    return np.asarray(image, dtype=np.uint8), any(pad)
