"""
KeypointModel: the CNN you design to find 15 facial keypoints.
"""
import torch
from torch import nn
from torch.nn import functional as F

from ..keypoints import FLIP_PAIRS, IMAGE_SIZE, NUM_KEYPOINTS


class KeypointModel(nn.Module):
    """
    A CNN mapping 96x96 grayscale faces to 15 keypoints.

    forward takes images of shape (N, 1, 96, 96) with values in [0, 1], or one
    image of shape (1, 96, 96), and returns a tensor of shape (N, 30): (x, y) of
    each keypoint in the order of KEYPOINT_NAMES, in unit coordinates
    (pixel - 48) / 48, so about [-1, 1].

    Limits: fewer than 5,000,000 parameters, and the saved file under 20 MB.
    """

    def __init__(self, hparams):
        """
        Inputs:
        - hparams: Dict of your hyperparameters. It is saved with the model as
          JSON, and the grader rebuilds your model as KeypointModel(hparams), so
          keep to numbers, strings, booleans, lists and dicts.
        """
        super().__init__()
        self.hparams = hparams
        # TODO: Build the layers of your network here, from self.hparams.
        # A good start: a few blocks of Conv2d -> BatchNorm2d -> ReLU -> MaxPool2d
        # that shrink 96x96 to a small map, then Flatten and a Linear layer with
        # 30 outputs. Watch the parameter count: a Linear layer on a large
        # flattened map gets big fast.
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, x):
        """
        Inputs:
        - x: Images of shape (N, 1, 96, 96), or one image of shape (1, 96, 96)

        Returns:
        - Tensor of shape (N, 30), unit coordinates
        """
        if x.dim() == 3:  # one image: make it a batch of one
            x = x.unsqueeze(0)
        out = None
        # TODO: Run x through your layers; store the (N, 30) result in `out`.
        # YOUR CODE HERE
        raise NotImplementedError()
        return out

    def forward_with_heatmaps(self, x):
        """
        Optional, for a model that reads its keypoints from heatmaps: forward, and
        also the heatmaps, for a training loss that shapes the maps too (as the
        course's reference model does).
        The grader and evaluate_model only call forward; a model without
        heatmaps can leave this as it is.

        Inputs:
        - x: Images of shape (N, 1, 96, 96)

        Returns a tuple of:
        - out: Tensor of shape (N, 30), as forward returns
        - heatmaps: Tensor of shape (N, 15, H, W), each map a softmax that sums to 1
        """
        out, heatmaps = None, None
        # TODO (optional): Run x through your layers; store the (N, 30) keypoints
        # in `out` and the (N, 15, H, W) maps they were read from in `heatmaps`.
        # YOUR CODE HERE
        raise NotImplementedError()
        return out, heatmaps
