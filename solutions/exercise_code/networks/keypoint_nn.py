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
        ### BEGIN SOLUTION
        # The reference is a small U-Net that draws one heatmap per keypoint and
        # reads each keypoint off its heatmap as the expected position under a
        # softmax ("soft-argmax"). Unlike Flatten -> Linear, this keeps the map's
        # layout: a keypoint is found where the features fire, to a fraction of a
        # cell, and the whole thing stays differentiable for an MSE loss.
        channels = list(hparams.get("channels", [24, 48, 96, 192]))  # one per level: 48, 24, 12, 6 px
        stem = hparams.get("stem", 16)

        def conv_bn_relu(c_in, c_out, stride=1):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),  # BN has the bias
                                 nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

        # Encoder: 96 -> 48 (stem), then each level halves the map: 48 -> 24 -> 12 -> 6.
        self.stem = nn.Sequential(conv_bn_relu(1, stem), conv_bn_relu(stem, channels[0], stride=2),
                                  conv_bn_relu(channels[0], channels[0]))
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), conv_bn_relu(c_in, c_out), conv_bn_relu(c_out, c_out))
            for c_in, c_out in zip(channels, channels[1:]))
        # Decoder: back up to the second level (24x24 for 96x96 input), adding the
        # encoder's map of the same size (a skip connection) at each step.
        top = min(1, len(channels) - 1)        # the level the heatmaps are drawn at
        self.lateral = nn.ModuleList(nn.Conv2d(channels[i + 1], channels[i], 1)
                                     for i in reversed(range(top, len(channels) - 1)))
        self.up = nn.ModuleList(conv_bn_relu(channels[i], channels[i])
                                for i in reversed(range(top, len(channels) - 1)))
        self.heatmap = nn.Conv2d(channels[top], NUM_KEYPOINTS, 1)  # one logit map per keypoint

        # Soft-argmax reads positions in unit coordinates: cell i of a map with
        # stride s covers pixels [i*s, (i+1)*s), centred at i*s + (s-1)/2.
        side = IMAGE_SIZE // 2 ** (top + 1)
        stride = IMAGE_SIZE / side
        centres = (torch.arange(side) * stride + (stride - 1) / 2 - IMAGE_SIZE / 2) / (IMAGE_SIZE / 2)
        self.register_buffer("centres", centres, persistent=False)  # (side,)

        # Test-time flip averaging: the keypoint each keypoint becomes in a mirror image.
        self.mirror = list(range(NUM_KEYPOINTS))
        for left, right in FLIP_PAIRS:
            self.mirror[left], self.mirror[right] = right, left
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
        out, _ = self.forward_with_heatmaps(x)                    # (N, 30)
        ### END SOLUTION
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
        ### BEGIN SOLUTION
        def predict(images):  # (N, 1, 96, 96) -> (N, 15, 2), (N, 15, S, S): one pass
            levels = [self.stem(images)]                       # (N, C0, 48, 48)
            for down in self.down:
                levels.append(down(levels[-1]))                # ..., (N, C3, 6, 6)
            features = levels[-1]
            for lateral, up, skip in zip(self.lateral, self.up, reversed(levels[1:-1])):
                features = up(F.interpolate(lateral(features), scale_factor=2) + skip)
            logits = self.heatmap(features)                    # (N, 15, S, S)
            n, k, side, _ = logits.shape
            heatmaps = logits.flatten(2).softmax(-1).view(n, k, side, side)
            x_coord = (heatmaps.sum(2) * self.centres).sum(-1)  # expected column: (N, 15)
            y_coord = (heatmaps.sum(3) * self.centres).sum(-1)  # expected row: (N, 15)
            return torch.stack([x_coord, y_coord], dim=-1), heatmaps

        out, heatmaps = predict(x)                                # (N, 15, 2), (N, 15, S, S)
        if self.flip_test and not self.training:
            # Also look at the mirrored face, mirror the answer back, and average:
            # x -> 95 - x in pixels is u -> -u - 1/48 in unit coordinates.
            # The heatmaps stay those of the faces as given.
            mirrored = predict(x.flip(-1))[0][:, self.mirror]     # (N, 15, 2)
            mirrored[..., 0] = -mirrored[..., 0] - 1 / 48
            out = (out + mirrored) / 2
        out = out.reshape(-1, 2 * NUM_KEYPOINTS)                  # (N, 30)
        ### END SOLUTION
        return out, heatmaps
