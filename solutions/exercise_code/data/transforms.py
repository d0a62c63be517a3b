"""
Keypoint-aware augmentation.

Each transform is a callable on a sample {"image": (1, 96, 96) tensor in [0, 1],
"keypoints": (15, 2) tensor in pixels} that returns a new sample, moving the
keypoints together with the image. FacialKeypointsDataset calls its transform
before it scales the keypoints to unit coordinates.

Randomness comes from torch's generator (pass `generator=` for a private one),
which DataLoader seeds differently in every worker process.

    transform = Compose([RandomHorizontalFlip(), RandomAffine(), RandomBrightnessContrast()])
    train_set = FacialKeypointsDataset(data_dir, "train", transform=transform)
"""
import torch

from .keypoint_geometry import (
    adjust_brightness_contrast,
    affine_matrix,
    flip_image_horizontal,
    flip_keypoints_horizontal,
    transform_keypoints,
    warp_image,
)


def _copy(sample):
    """A new sample with the same values: what a transform returns when it changes nothing."""
    return {"image": sample["image"].clone(), "keypoints": sample["keypoints"].clone()}


def _uniform(low, high, generator):
    """One float drawn uniformly from [low, high)."""
    return low + (high - low) * torch.rand((), generator=generator).item()


class Compose:
    """Apply transforms one after the other."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, sample):
        sample = _copy(sample)   # a new sample even when there is nothing to apply
        for transform in self.transforms:
            sample = transform(sample)
        return sample

    def __repr__(self):
        return f"Compose({self.transforms!r})"


class RandomHorizontalFlip:
    """Mirror image and keypoints with probability p, swapping left and right points."""

    def __init__(self, p=0.5, generator=None):
        self.p, self.generator = p, generator

    def __call__(self, sample):
        if torch.rand((), generator=self.generator).item() >= self.p:
            return _copy(sample)
        image = sample["image"]
        return {"image": flip_image_horizontal(image),
                "keypoints": flip_keypoints_horizontal(sample["keypoints"], image.shape[-1])}

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class RandomAffine:
    """
    Rotate, scale and shift image and keypoints by a small random amount.

    Draws the rotation from [-degrees, degrees], the scale from `scale`, and each
    shift from [-translate, translate] pixels. A draw that would move a keypoint
    out of the image is drawn again, up to max_tries times; after that the sample
    is returned unchanged, so targets always stay inside the image.
    """

    def __init__(self, degrees=10.0, scale=(0.9, 1.1), translate=4.0, max_tries=10, generator=None):
        self.degrees, self.scale, self.translate = degrees, scale, translate
        self.max_tries, self.generator = max_tries, generator

    def __call__(self, sample):
        image, keypoints = sample["image"], sample["keypoints"]
        height, width = image.shape[-2:]
        g = self.generator
        for _ in range(self.max_tries):
            matrix = affine_matrix(
                angle=_uniform(-self.degrees, self.degrees, g),
                scale=_uniform(*self.scale, g),
                shift=(_uniform(-self.translate, self.translate, g),
                       _uniform(-self.translate, self.translate, g)))
            moved = transform_keypoints(keypoints, matrix)
            # The image spans [-0.5, W - 0.5] in the pixel-index convention.
            inside = ((moved >= -0.5) & (moved <= torch.tensor([width - 0.5, height - 0.5]))).all()
            if inside:
                return {"image": warp_image(image, matrix), "keypoints": moved}
        return _copy(sample)

    def __repr__(self):
        return (f"RandomAffine(degrees={self.degrees}, scale={self.scale}, "
                f"translate={self.translate})")


class RandomBrightnessContrast:
    """Scale brightness and contrast by factors drawn from [1 - b, 1 + b] and [1 - c, 1 + c]."""

    def __init__(self, brightness=0.2, contrast=0.2, generator=None):
        self.brightness, self.contrast, self.generator = brightness, contrast, generator

    def __call__(self, sample):
        g = self.generator
        image = adjust_brightness_contrast(
            sample["image"],
            brightness=_uniform(1 - self.brightness, 1 + self.brightness, g),
            contrast=_uniform(1 - self.contrast, 1 + self.contrast, g))
        return {"image": image, "keypoints": sample["keypoints"].clone()}

    def __repr__(self):
        return f"RandomBrightnessContrast(brightness={self.brightness}, contrast={self.contrast})"
