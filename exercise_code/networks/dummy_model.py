"""
DummyKeypointModel: the same keypoints for every face. Its score is the floor
every real model must beat.
"""
import torch
from torch import nn

from ..keypoints import NUM_KEYPOINTS, pixels_to_unit

# A generic frontal face, laid out by hand in pixels (x, y) on the 96x96 image,
# in KEYPOINT_NAMES order. The subject's left is on the image's right.
GENERIC_FACE = [
    (66, 38), (30, 38),             # left eye centre, right eye centre
    (59, 38), (73, 38),             # left eye inner and outer corner
    (37, 38), (23, 38),             # right eye inner and outer corner
    (57, 29), (79, 30),             # left eyebrow inner and outer end
    (39, 29), (17, 30),             # right eyebrow inner and outer end
    (48, 58),                       # nose tip
    (63, 75), (33, 75),             # mouth left and right corner
    (48, 72), (48, 80),             # top and bottom lip, centre
]


class DummyKeypointModel(nn.Module):
    """Predicts GENERIC_FACE, in unit coordinates, whatever the image."""

    def __init__(self):
        super().__init__()
        face = pixels_to_unit(torch.tensor(GENERIC_FACE, dtype=torch.float32))
        self.register_buffer("prediction", face.reshape(1, 2 * NUM_KEYPOINTS))  # (1, 30)

    def forward(self, x):
        """
        Inputs:
        - x: Images of shape (N, 1, 96, 96), or one image (1, 96, 96)

        Returns:
        - Tensor of shape (N, 30): (x, y) per keypoint, unit coordinates
        """
        n = 1 if x.dim() == 3 else x.shape[0]
        return self.prediction.expand(n, -1).clone()
