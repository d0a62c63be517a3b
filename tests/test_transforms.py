"""Augmentation: the geometry is right, not just the shapes."""
import math

import pytest
import torch

from exercise_code.data.keypoint_geometry import affine_matrix, transform_keypoints, warp_image
from exercise_code.keypoints import FLIP_PAIRS, KEYPOINT_NAMES, LEFT_IDS, RIGHT_IDS
from exercise_code.data.transforms import (
    Compose, RandomAffine, RandomBrightnessContrast, RandomHorizontalFlip,
)


def blob(center, size=96, sigma=1.5):
    """A black (1, size, size) image with a bright Gaussian dot at center (x, y), in pixels."""
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64),
                            torch.arange(size, dtype=torch.float64), indexing="ij")
    dot = torch.exp(-((xs - center[0]) ** 2 + (ys - center[1]) ** 2) / (2 * sigma**2))
    return dot.unsqueeze(0).float()


def centroid(image):
    """Brightness-weighted centre (x, y) of a (1, H, W) image, in pixels."""
    weights = image[0].double()
    ys, xs = torch.meshgrid(torch.arange(image.shape[1], dtype=torch.float64),
                            torch.arange(image.shape[2], dtype=torch.float64), indexing="ij")
    return torch.stack([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()


def partner(i):
    """The keypoint a flip turns keypoint i into."""
    for left, right in FLIP_PAIRS:
        if i in (left, right):
            return right if i == left else left
    return i


@pytest.fixture
def face(train_set):
    """A real sample with keypoints in pixels, as transforms receive it."""
    return {"image": train_set.images[0].clone(), "keypoints": train_set.keypoints[0].clone()}


def always_flip():
    return RandomHorizontalFlip(p=1.0)


def test_flip_pairs_are_left_right_twins():
    """Does every pair name the subject's left point and its right twin, covering all sided points?"""
    for left, right in FLIP_PAIRS:
        assert KEYPOINT_NAMES[left].replace("left", "right") == KEYPOINT_NAMES[right]
    assert sorted(i for pair in FLIP_PAIRS for i in pair) == sorted(LEFT_IDS + RIGHT_IDS)


def test_flip_twice_is_identity(face):
    """Is flipping twice the original image (exactly) and keypoints (to float32 rounding)?"""
    twice = always_flip()(always_flip()(face))
    assert torch.equal(twice["image"], face["image"])
    torch.testing.assert_close(twice["keypoints"], face["keypoints"], atol=1e-5, rtol=0)


def test_flip_maps_x_to_95_minus_x_and_swaps_sides(face):
    """Does the flipped left eye sit at 95 - x of the original right eye?"""
    flipped = always_flip()(face)
    left_eye, right_eye = KEYPOINT_NAMES.index("left_eye_center"), KEYPOINT_NAMES.index("right_eye_center")
    assert flipped["keypoints"][left_eye, 0] == 95 - face["keypoints"][right_eye, 0]
    assert flipped["keypoints"][left_eye, 1] == face["keypoints"][right_eye, 1]
    assert torch.equal(flipped["image"], face["image"].flip(-1))


@pytest.mark.parametrize("k", [0, 3, 10, 12])
def test_flip_moves_a_painted_dot_with_its_keypoint(face, k):
    """Does a dot painted at keypoint k land where the flipped keypoints say (under k's twin)?"""
    point = face["keypoints"][k]
    flipped = always_flip()({"image": blob(point), "keypoints": face["keypoints"]})
    torch.testing.assert_close(centroid(flipped["image"]), flipped["keypoints"][partner(k)].double(),
                               atol=1e-3, rtol=0)


@pytest.mark.parametrize("angle, scale, shift", [
    (0, 1.0, (3.0, -2.0)), (10, 1.0, (0, 0)), (-15, 1.0, (0, 0)), (0, 1.15, (0, 0)), (8, 0.9, (2.5, 1.5)),
])
@pytest.mark.parametrize("k", [0, 9, 14])
def test_affine_moves_a_painted_dot_with_its_keypoint(face, angle, scale, shift, k):
    """Does a dot painted at a keypoint land where the transformed keypoint says (within 0.05 px)?"""
    matrix = affine_matrix(angle, scale, shift)
    moved = transform_keypoints(face["keypoints"], matrix)
    warped = warp_image(blob(face["keypoints"][k]), matrix)
    torch.testing.assert_close(centroid(warped), moved[k].double(), atol=0.05, rtol=0)


def test_rotation_is_counter_clockwise_on_screen():
    """Does +90 degrees take a point right of the centre to above it (smaller y)?"""
    right_of_centre = torch.tensor([[57.5, 47.5]])
    torch.testing.assert_close(transform_keypoints(right_of_centre, affine_matrix(90)),
                               torch.tensor([[47.5, 37.5]]), atol=1e-5, rtol=0)


def test_random_affine_keeps_keypoints_inside(face):
    """Do large random transforms never push a keypoint out of the image?"""
    transform = RandomAffine(degrees=40, scale=(0.7, 1.5), translate=20, generator=torch.Generator().manual_seed(0))
    for _ in range(50):
        out = transform(face)["keypoints"]
        assert out.min() >= -0.5 and out.max() <= 95.5


def test_transforms_do_not_change_their_input(face):
    """Do all transforms return new tensors and leave the input sample as it was?"""
    before = {key: value.clone() for key, value in face.items()}
    g = torch.Generator().manual_seed(1)
    # The no-op paths too: a flip that does not happen, an affine that finds no draw
    # keeping the keypoints inside (max_tries=0), and an empty Compose.
    for transform in (always_flip(), RandomHorizontalFlip(p=0.0), RandomAffine(generator=g),
                      RandomAffine(max_tries=0), RandomBrightnessContrast(generator=g), Compose([])):
        out = transform(face)
        assert out is not face, transform
        out["image"].add_(1)
        out["keypoints"].add_(1)
        assert all(torch.equal(face[key], before[key]) for key in face)


def test_brightness_contrast(face):
    """Does the photometric transform keep keypoints, stay in [0, 1], and do nothing at factor 1?"""
    out = RandomBrightnessContrast(0.5, 0.5, generator=torch.Generator().manual_seed(2))(face)
    assert torch.equal(out["keypoints"], face["keypoints"])
    assert 0 <= out["image"].min() and out["image"].max() <= 1 and not torch.equal(out["image"], face["image"])
    identity = RandomBrightnessContrast(0, 0)(face)
    torch.testing.assert_close(identity["image"], face["image"])


def test_same_generator_seed_same_augmentation(face):
    """Does a seeded generator make the whole pipeline reproducible?"""
    def pipeline(seed):
        g = torch.Generator().manual_seed(seed)
        return Compose([RandomHorizontalFlip(generator=g), RandomAffine(generator=g),
                        RandomBrightnessContrast(generator=g)])
    a, b = pipeline(7)(face), pipeline(7)(face)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["keypoints"], b["keypoints"])


def test_dataset_with_augmentation(data_dir):
    """Does the dataset apply a pipeline and still return unit-coordinate keypoints in range?"""
    from exercise_code.data import FacialKeypointsDataset
    transform = Compose([RandomHorizontalFlip(), RandomAffine(), RandomBrightnessContrast()])
    dataset = FacialKeypointsDataset(data_dir, "val", transform=transform)
    assert "RandomAffine(degrees=10.0" in repr(dataset)
    for i in range(20):
        sample = dataset[i]
        assert sample["image"].shape == (1, 96, 96) and sample["keypoints"].abs().max() <= 96 / 96 + 1e-6
    assert not math.isnan(float(sample["keypoints"].sum()))
