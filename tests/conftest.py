"""
Shared fixtures. The tests run against the *solved* package: exercise_code/ with
every solution file from solutions/exercise_code/ in place (see grader/release.py).
Tests of the untouched student stubs run the real exercise_code/ in a subprocess.
"""
import os
import tempfile
from pathlib import Path

import pytest

from grader.release import REPO_ROOT, use_solved_package

SOLVED_WORKSPACE = use_solved_package(Path(tempfile.mkdtemp(prefix="solved-")))

# Where the course's data zips are: ../shared beside the repo unless set otherwise.
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"
TRAIN_ZIP = Path(os.environ.get("FACIAL_KEYPOINTS_SOURCE") or SHARED_DATASETS / "facial_keypoints.zip")
TEST_ZIP = Path(os.environ.get("FACIAL_KEYPOINTS_TEST_SOURCE") or SHARED_DATASETS / "facial_keypoints_test.zip")


def _require(path):
    if not path.is_file():
        message = f"{path} not found: set FACIAL_KEYPOINTS_SOURCE / FACIAL_KEYPOINTS_TEST_SOURCE"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must never pass by skipping the data tests
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def train_zip():
    """The students' data zip (training.csv, val.csv)."""
    return _require(TRAIN_ZIP)


@pytest.fixture(scope="session")
def test_zip():
    """The instructor's zip with the hidden test.csv."""
    return _require(TEST_ZIP)


@pytest.fixture(scope="session")
def data_dir(train_zip, tmp_path_factory):
    """A folder with training.csv and val.csv, unpacked from the course zip once per run."""
    from exercise_code.data.download import fetch_dataset
    return fetch_dataset(train_zip, tmp_path_factory.mktemp("data") / "facial_keypoints")


@pytest.fixture(scope="session")
def test_data_dir(test_zip, tmp_path_factory):
    """A folder with the hidden test.csv, unpacked from the instructor's zip."""
    from exercise_code.data.download import fetch_dataset
    return fetch_dataset(test_zip, tmp_path_factory.mktemp("hidden") / "facial_keypoints_test")


@pytest.fixture(scope="session")
def train_set(data_dir):
    from exercise_code.data import FacialKeypointsDataset
    return FacialKeypointsDataset(data_dir, "train")


@pytest.fixture(scope="session")
def val_set(data_dir):
    from exercise_code.data import FacialKeypointsDataset
    return FacialKeypointsDataset(data_dir, "val")


@pytest.fixture
def make_csv(tmp_path):
    """
    Write a small synthetic keypoints CSV (no real faces) and return its path.

    make_csv(name, rows=3, edit=None): each row has a random image and keypoints
    inside the image; `edit(header, rows)` may change the lists of string fields
    before they are written, to build a broken file.
    """
    import numpy as np

    from exercise_code.data.keypoints import KEYPOINT_COLUMNS

    def make(name="faces.csv", rows=3, edit=None, seed=0):
        rng = np.random.default_rng(seed)
        header = KEYPOINT_COLUMNS + ["Image"]
        table = []
        for _ in range(rows):
            keypoints = [f"{v:.4f}" for v in rng.uniform(10, 85, size=30)]
            image = " ".join(str(v) for v in rng.integers(0, 256, size=96 * 96))
            table.append(keypoints + [image])
        if edit:
            edit(header, table)
        path = tmp_path / name
        path.write_text("\n".join(",".join(fields) for fields in [header] + table) + "\n")
        return path

    return make


@pytest.fixture(autouse=True, scope="session")
def _tests_use_the_solved_package():
    """Guard: every test must see the solved package, not the student stubs or a stale build."""
    import exercise_code
    assert Path(exercise_code.__file__).is_relative_to(SOLVED_WORKSPACE), exercise_code.__file__
