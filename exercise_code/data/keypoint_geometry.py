"""
Geometry on images and keypoints, as pure functions: they return new tensors and
never change their inputs. The transforms in transforms.py call these.

Conventions (see keypoints.py): keypoints are (K, 2) tensors of (x, y) pixels,
origin top-left, pixel-index convention (pixel column c has x = c). Images are
(C, H, W) tensors. Affine maps are 3x3 matrices acting on column vectors
(x, y, 1): they map a point of the input image to the output image.
"""
import math

import torch
import torch.nn.functional as F

from ..keypoints import FLIP_PAIRS, IMAGE_SIZE

# The middle of the image in the pixel-index convention: (47.5, 47.5).
IMAGE_CENTER = ((IMAGE_SIZE - 1) / 2, (IMAGE_SIZE - 1) / 2)


def flip_image_horizontal(image):
    """Mirror an image (C, H, W) left to right. Returns a new tensor."""
    return image.flip(-1)


def flip_keypoints_horizontal(keypoints, width):
    """
    Mirror keypoints to match flip_image_horizontal.

    Inputs:
    - keypoints: Tensor of shape (15, 2), (x, y) in pixels
    - width: Image width W in pixels

    Returns:
    - New tensor of shape (15, 2): x becomes (W - 1) - x, and each subject-left
      point trades places with its right twin (a mirrored left eye is a right eye)
    """
    out = keypoints.clone()
    out[:, 0] = (width - 1) - out[:, 0]  # pixel-index convention, as torchvision v2
    for left, right in FLIP_PAIRS:
        out[[left, right]] = out[[right, left]]
    return out


def affine_matrix(angle=0.0, scale=1.0, shift=(0.0, 0.0), center=IMAGE_CENTER):
    """
    The map that rotates and scales about `center`, then shifts.

    Inputs:
    - angle: Rotation in degrees, counter-clockwise as seen on screen
    - scale: Zoom factor (> 1 makes the face larger)
    - shift: (dx, dy) in pixels, applied last
    - center: (cx, cy), the fixed point of rotation and scaling

    Returns:
    - matrix: float64 tensor of shape (3, 3) mapping input (x, y, 1) to output
    """
    a = math.radians(angle)
    cos, sin = scale * math.cos(a), scale * math.sin(a)
    cx, cy = center
    # y points down, so a counter-clockwise turn on screen is x' = cos x + sin y,
    # y' = -sin x + cos y (relative to the centre).
    linear = torch.tensor([[cos, sin], [-sin, cos]], dtype=torch.float64)
    c = torch.tensor([cx, cy], dtype=torch.float64)
    offset = c - linear @ c + torch.tensor(shift, dtype=torch.float64)
    matrix = torch.eye(3, dtype=torch.float64)
    matrix[:2, :2], matrix[:2, 2] = linear, offset
    return matrix


def transform_keypoints(keypoints, matrix):
    """
    Move keypoints with an affine map.

    Inputs:
    - keypoints: Tensor of shape (K, 2), pixels
    - matrix: Tensor of shape (3, 3) from affine_matrix

    Returns:
    - New tensor of shape (K, 2), same dtype as keypoints
    """
    m = matrix.to(torch.float64)
    moved = _apply(m, keypoints[:, 0].double(), keypoints[:, 1].double())  # (K, 2)
    return moved.to(keypoints.dtype)


def _apply(matrix, xs, ys):
    """
    Apply a 3x3 affine map to points given as coordinate tensors xs, ys (any shape S).

    Written out elementwise rather than as a matmul: for a (N, 2) @ (2, 2) product
    PyTorch starts its thread pool, which costs far more than the arithmetic.

    Returns:
    - Tensor of shape S + (2,)
    """
    (a, b, c), (d, e, f) = matrix[:2].tolist()
    return torch.stack([a * xs + b * ys + c, d * xs + e * ys + f], dim=-1)


def warp_image(image, matrix):
    """
    Resample an image so that its content moves by an affine map.

    Inputs:
    - image: Tensor of shape (C, H, W)
    - matrix: Tensor of shape (3, 3) from affine_matrix

    Returns:
    - New tensor of shape (C, H, W): output pixel p shows input point
      matrix^-1 p (bilinear), and black where that point is outside the input
    """
    _, height, width = image.shape
    inverse = torch.linalg.inv(matrix.to(torch.float64))
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                            torch.arange(width, dtype=torch.float64), indexing="ij")
    source = _apply(inverse, xs, ys)                                   # (H, W, 2) input pixels
    # grid_sample wants [-1, 1] with align_corners=True: -1 and 1 are the centres
    # of the first and last pixel, which is the pixel-index convention.
    size = torch.tensor([width - 1, height - 1], dtype=torch.float64)
    grid = (2 * source / size - 1).to(image.dtype).unsqueeze(0)        # (1, H, W, 2)
    warped = F.grid_sample(image.unsqueeze(0), grid, mode="bilinear",
                           padding_mode="zeros", align_corners=True)   # (1, C, H, W)
    return warped.squeeze(0)


def adjust_brightness_contrast(image, brightness=1.0, contrast=1.0):
    """
    Scale brightness, then stretch contrast about the image's mean.

    Inputs:
    - image: Tensor of shape (C, H, W), values in [0, 1]
    - brightness: Factor for every pixel (1 = unchanged)
    - contrast: Factor for each pixel's distance from the mean (1 = unchanged)

    Returns:
    - New tensor of shape (C, H, W), clipped to [0, 1]
    """
    bright = image * brightness
    mean = bright.mean()
    return ((bright - mean) * contrast + mean).clamp(0.0, 1.0)
