"""
KeypointModel: the CNN you design to find 15 facial keypoints.
"""
import torch
from torch import nn

from ..data.keypoints import FLIP_PAIRS, IMAGE_SIZE, NUM_KEYPOINTS


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
        ### BEGIN SOLUTION
        # Conv blocks: each halves the map, 96 -> 48 -> 24 -> 12 -> 6.
        channels = [1] + list(hparams.get("channels", [16, 32, 64, 128]))
        blocks = []
        for c_in, c_out in zip(channels, channels[1:]):
            blocks += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),   # BatchNorm has the bias
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
        self.features = nn.Sequential(*blocks)
        side = IMAGE_SIZE // 2 ** (len(channels) - 1)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(hparams.get("dropout", 0.2)),
            nn.Linear(channels[-1] * side * side, 2 * NUM_KEYPOINTS),
        )
        # Test-time flip averaging: the keypoint each keypoint becomes in a mirror image.
        mirror = list(range(NUM_KEYPOINTS))
        for left, right in FLIP_PAIRS:
            mirror[left], mirror[right] = right, left
        self.register_buffer("mirror", torch.tensor(mirror), persistent=False)
        self.flip_test = hparams.get("flip_test", True)
        ### END SOLUTION

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
        ### BEGIN SOLUTION
        def predict(images):  # (N, 1, 96, 96) -> (N, 15, 2), one pass
            return self.head(self.features(images)).view(-1, NUM_KEYPOINTS, 2)

        out = predict(x)                                          # (N, 15, 2)
        if self.flip_test and not self.training:
            # Also look at the mirrored face, mirror the answer back, and average:
            # x -> 95 - x in pixels is u -> -u - 1/48 in unit coordinates.
            mirrored = predict(x.flip(-1))[:, self.mirror]        # (N, 15, 2)
            mirrored[..., 0] = -mirrored[..., 0] - 1 / 48
            out = (out + mirrored) / 2
        out = out.reshape(-1, 2 * NUM_KEYPOINTS)                  # (N, 30)
        ### END SOLUTION
        return out
