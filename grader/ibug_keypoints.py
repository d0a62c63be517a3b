"""
The 15 Kaggle / I2DL facial keypoints from the 68 iBUG 300-W landmarks.

The 68-point layout (0-based, as the Udacity P1 CSVs list them; "left" and
"right" are the subject's, so the subject's right eye is on the image's left):

    0-16   jaw line, from the subject's right ear to the left one
    17-21  right eyebrow, outer end (17) to inner end (21)
    22-26  left eyebrow, inner end (22) to outer end (26)
    27-30  nose bridge, top to tip (30)
    31-35  nostrils, right to left
    36-41  right eye: outer corner 36, inner corner 39 (clockwise in the image)
    42-47  left eye: inner corner 42, outer corner 45
    48-59  outer lip: right corner 48, top centre 51, left corner 54, bottom centre 57
    60-67  inner lip

The mapping, one row per Kaggle keypoint (in the CSV's order, see
exercise_code.keypoints.KEYPOINT_NAMES): the keypoint is the mean of its iBUG
points. An eye centre is the mean of the eye's six points; every other keypoint
is one iBUG point.
"""
import numpy as np

from .trusted import KEYPOINT_NAMES

NUM_IBUG_POINTS = 68

IBUG_FOR_KEYPOINT = {
    "left_eye_center": (42, 43, 44, 45, 46, 47),
    "right_eye_center": (36, 37, 38, 39, 40, 41),
    "left_eye_inner_corner": (42,),
    "left_eye_outer_corner": (45,),
    "right_eye_inner_corner": (39,),
    "right_eye_outer_corner": (36,),
    "left_eyebrow_inner_end": (22,),
    "left_eyebrow_outer_end": (26,),
    "right_eyebrow_inner_end": (21,),
    "right_eyebrow_outer_end": (17,),
    "nose_tip": (30,),
    "mouth_left_corner": (54,),
    "mouth_right_corner": (48,),
    "mouth_center_top_lip": (51,),
    "mouth_center_bottom_lip": (57,),
}
assert list(IBUG_FOR_KEYPOINT) == KEYPOINT_NAMES   # the CSV's order, so row k of the weights is keypoint k


def _mapping_weights():
    """(15, 68) weights whose rows average the iBUG points of each keypoint."""
    weights = np.zeros((len(KEYPOINT_NAMES), NUM_IBUG_POINTS))
    for row, points in enumerate(IBUG_FOR_KEYPOINT.values()):
        weights[row, list(points)] = 1 / len(points)
    return weights


MAPPING_WEIGHTS = _mapping_weights()


def ibug_to_kaggle(landmarks):
    """
    Turn 68-point iBUG landmarks into the 15 Kaggle keypoints.

    Inputs:
    - landmarks: Array of shape (N, 68, 2), (x, y) in any pixel convention

    Returns:
    - keypoints: float64 array of shape (N, 15, 2), in the same convention, in KEYPOINT_NAMES order
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (NUM_IBUG_POINTS, 2):
        raise ValueError(f"Expected landmarks of shape (N, {NUM_IBUG_POINTS}, 2), got {landmarks.shape}")
    return np.einsum("kp,npc->nkc", MAPPING_WEIGHTS, landmarks)   # (N, 15, 2)
