"""
The 15 facial keypoints: their names, sides and coordinate conventions.

Coordinates are (x, y) in pixels with the origin at the top-left corner and the
pixel-index convention: the centre of pixel column c has x = c (0..95), likewise
for rows. "left" and "right" are the subject's: the left eye is on the image's
right side. A horizontal flip maps x to (W - 1) - x = 95 - x and turns every
left point into a right point.

The network works in unit coordinates instead: (pixel - 48) / 48, about [-1, 1].
"""
import torch

IMAGE_SIZE = 96  # images are IMAGE_SIZE x IMAGE_SIZE grayscale

KEYPOINT_NAMES = [
    "left_eye_center", "right_eye_center",
    "left_eye_inner_corner", "left_eye_outer_corner",
    "right_eye_inner_corner", "right_eye_outer_corner",
    "left_eyebrow_inner_end", "left_eyebrow_outer_end",
    "right_eyebrow_inner_end", "right_eyebrow_outer_end",
    "nose_tip",
    "mouth_left_corner", "mouth_right_corner",
    "mouth_center_top_lip", "mouth_center_bottom_lip",
]
NUM_KEYPOINTS = len(KEYPOINT_NAMES)  # 15, so a model predicts 30 numbers

# The CSV's 30 keypoint columns, x before y for each point, in this order.
KEYPOINT_COLUMNS = [f"{name}_{axis}" for name in KEYPOINT_NAMES for axis in ("x", "y")]

# Ids of the subject's left points, right points and midline points.
LEFT_IDS = [i for i, name in enumerate(KEYPOINT_NAMES) if "left" in name]
RIGHT_IDS = [i for i, name in enumerate(KEYPOINT_NAMES) if "right" in name]
MIDLINE_IDS = [i for i in range(NUM_KEYPOINTS) if i not in LEFT_IDS + RIGHT_IDS]

# (left_id, right_id) twins: a mirrored left eye is a right eye.
FLIP_PAIRS = [
    (i, KEYPOINT_NAMES.index(KEYPOINT_NAMES[i].replace("left", "right")))
    for i in LEFT_IDS
]

# Unit coordinates, as in I2DL: (pixel - 48) / 48.
_CENTER = IMAGE_SIZE / 2
_HALF_RANGE = IMAGE_SIZE / 2


def pixels_to_unit(keypoints):
    """
    Scale keypoints from pixels to the network's unit coordinates.

    Inputs:
    - keypoints: Tensor or array of any shape, in pixels (0..95)

    Returns:
    - Same type and shape, (pixel - 48) / 48, in about [-1, 1]
    """
    return (keypoints - _CENTER) / _HALF_RANGE


def unit_to_pixels(keypoints):
    """
    Inverse of pixels_to_unit: unit coordinates back to pixels.

    Inputs:
    - keypoints: Tensor or array of any shape, in unit coordinates

    Returns:
    - Same type and shape, unit * 48 + 48, in pixels
    """
    return keypoints * _HALF_RANGE + _CENTER


def as_keypoint_array(keypoints):
    """
    View a batch of keypoints, flat or not, as (N, 15, 2).

    Inputs:
    - keypoints: Tensor of shape (N, 30), (N, 15, 2), (30,) or (15, 2)

    Returns:
    - Tensor of shape (N, 15, 2) (N = 1 for a single set)
    """
    keypoints = torch.as_tensor(keypoints)
    if keypoints.shape in ((2 * NUM_KEYPOINTS,), (NUM_KEYPOINTS, 2)):
        keypoints = keypoints.unsqueeze(0)
    if keypoints.dim() == 2 and keypoints.shape[1] == 2 * NUM_KEYPOINTS:
        return keypoints.reshape(-1, NUM_KEYPOINTS, 2)
    if keypoints.dim() == 3 and keypoints.shape[1:] == (NUM_KEYPOINTS, 2):
        return keypoints
    raise ValueError(
        f"Expected keypoints of shape (N, {2 * NUM_KEYPOINTS}) or (N, {NUM_KEYPOINTS}, 2), "
        f"got {tuple(keypoints.shape)}"
    )
