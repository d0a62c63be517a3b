"""
Synthetic data in the Udacity P1 layout, for the tests of python -m grader dataset (no real faces).

    write_udacity(folder, frames)   # folder/training/*.jpg, folder/test/*.jpg and the two keypoint CSVs

A frame is a dict: name ("Ann_Lee_03.jpg"), split ("training" or "test"), landmarks ((68, 2) in the
frame's pixels) and image ((H, W) or (H, W, 3) uint8). face_landmarks() draws a plausible face's 68
iBUG points; frame_image() makes a textured image with optional bright dots.
"""
import numpy as np
from PIL import Image

from grader.dataset_sources import UDACITY_CSVS


def _template():
    """68 iBUG points of an upright face, in units of half the eye distance, eyes on y = 0."""
    points = np.zeros((68, 2))
    t = np.linspace(-1, 1, 17)
    points[0:17] = np.c_[1.9 * t, 0.2 + 3.0 * np.sqrt(1 - 0.8 * t ** 2)]      # jaw: subject's right ear first (image left)
    points[17:22] = np.c_[np.linspace(-1.7, -0.35, 5), [-0.55, -0.75, -0.8, -0.75, -0.65]]
    points[22:27] = np.c_[-points[21:16:-1, 0], points[21:16:-1, 1]]          # the left eyebrow mirrors the right
    points[27:31] = np.c_[np.zeros(4), np.linspace(0.1, 1.3, 4)]              # nose bridge to tip (30)
    points[31:36] = np.c_[np.linspace(-0.4, 0.4, 5), [1.45, 1.5, 1.55, 1.5, 1.45]]
    angles = np.linspace(np.pi, -np.pi, 7)[:-1]                                # outer corner first, clockwise in the image
    right_eye = np.c_[-1 + 0.45 * np.cos(angles), 0.18 * np.sin(-angles)]
    points[36:42] = right_eye                                                  # 36 outer (image left), 39 inner
    points[42:48] = np.c_[-right_eye[[3, 2, 1, 0, 5, 4], 0], right_eye[[3, 2, 1, 0, 5, 4], 1]]   # 42 inner, 45 outer
    lip = np.linspace(np.pi, -np.pi, 13)[:-1]                                  # 48 right corner, 51 top, 54 left, 57 bottom
    points[48:60] = np.c_[0.95 * np.cos(lip), 2.25 - 0.4 * np.sin(lip)]
    inner = np.linspace(np.pi, -np.pi, 9)[:-1]
    points[60:68] = np.c_[0.6 * np.cos(inner), 2.25 - 0.12 * np.sin(inner)]
    return points


TEMPLATE = _template()


def face_landmarks(center, half_eye_distance, rng=None, jitter=0.0):
    """
    The 68 landmarks of a synthetic face.

    Inputs:
    - center: (x, y) of the point between the eyes, in frame pixels
    - half_eye_distance: half the distance between the eye centres, in frame pixels
    - rng, jitter: optional numpy Generator and the standard deviation (pixels) of noise added to each point

    Returns:
    - float array of shape (68, 2)
    """
    points = np.asarray(center, dtype=float) + half_eye_distance * TEMPLATE
    if rng is not None and jitter:
        points = points + rng.normal(0, jitter, points.shape)
    return points


def frame_image(size, rng, dots=(), dot_sigma=3.0, color=False):
    """
    A textured frame (a smooth random background), with optional bright Gaussian dots.

    Inputs:
    - size: (width, height)
    - rng: numpy Generator (each frame gets other pixels, so no two frames are duplicates)
    - dots: (x, y) centres of bright dots, in pixel-index coordinates; with dots, the background is black
    - dot_sigma: the dots' standard deviation in frame pixels

    Returns:
    - uint8 array of shape (H, W), or (H, W, 3) if color
    """
    width, height = size
    if dots:
        yy, xx = np.mgrid[0:height, 0:width]
        image = np.zeros((height, width))
        for x, y in dots:
            image += 250 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * dot_sigma ** 2))
    else:
        coarse = rng.uniform(40, 215, size=(height // 16 + 2, width // 16 + 2))
        image = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC),
                           dtype=float) + rng.normal(0, 6, (height, width))
    image = np.clip(image, 0, 255).astype(np.uint8)
    return np.repeat(image[..., None], 3, axis=2) if color else image


def write_udacity(folder, frames, quality=95):
    """
    Write frames in the Udacity P1 layout: training/ and test/ with JPEGs, and the two CSVs.

    Inputs:
    - folder: Path of the data folder (created)
    - frames: list of dicts with name, split, landmarks (68, 2) and image

    Returns:
    - folder
    """
    folder.mkdir(parents=True, exist_ok=True)
    rows = {split: [] for split in UDACITY_CSVS.values()}
    for frame in frames:
        (folder / frame["split"]).mkdir(exist_ok=True)
        Image.fromarray(frame["image"]).save(folder / frame["split"] / frame["name"], format="JPEG", quality=quality)
        rows[frame["split"]].append(",".join([frame["name"], *(f"{v:.1f}" for v in np.ravel(frame["landmarks"]))]))
    header = "," + ",".join(str(i) for i in range(136))   # as Udacity's: an unnamed first column, then 0..135
    for csv_name, split in UDACITY_CSVS.items():
        (folder / csv_name).write_text("\n".join([header, *rows[split]]) + "\n")
    return folder


def udacity_frames(people, frames_per_person, seed=0, size=(180, 200)):
    """
    Frames of several people, each frame its own image and a slightly moved face.

    Inputs:
    - people: Number of people (named Person_A_..., frames numbered _00, _01, ...)
    - frames_per_person: Frames of each
    - seed: Seed of the images and landmarks

    Returns:
    - list of frame dicts (see write_udacity); the last person's frames go to test/
    """
    rng = np.random.default_rng(seed)
    frames = []
    for p in range(people):
        for k in range(frames_per_person):
            center = (size[0] / 2 + rng.uniform(-8, 8), size[1] * 0.4 + rng.uniform(-8, 8))
            frames.append({"name": f"Person_{chr(65 + p % 26)}{p}_{k:02d}.jpg",
                           "split": "test" if p == people - 1 else "training",
                           "landmarks": face_landmarks(center, rng.uniform(20, 26), rng, jitter=0.5),
                           "image": frame_image(size, rng, color=bool(k % 2))})
    return frames
