"""
Shared fixtures. The tests import the installed exercise_code, which is the solved
package (solutions/exercise_code/, see pyproject.toml). Tests of the student stubs
run the generated copy, exercise_code/, in a subprocess.
"""
import os
import shutil
from pathlib import Path

import pytest
import torch

from grader import release
from grader.release import REPO_ROOT, SOLUTION_NOTEBOOKS, SOLUTION_PACKAGE

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two test processes (pytest -n 2). With torch's default of one thread per core in
    # each, their OpenMP threads spin on each other's cores: 16 min of CPU instead of 10 for the same tests.
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"   # and in every subprocess
    torch.set_num_threads(1)

# The longest test files, longest first. `make test` hands whole files to its two test processes in the
# order collected (--dist loadfile --no-loadscope-reorder): a long file left for the end would run alone.
LONGEST_FIRST = ["grading/test_nbgrader_course.py", "browser/test_student_notebook.py", "browser/test_formgrader.py",
                 "test_main_job.py", "test_notebooks.py", "grading/test_grader_scenarios.py",
                 "grading/test_gradescope.py", "grading/test_class_report.py", "grading/test_prairielearn.py",
                 "grading/test_class_autograde.py", "grading/test_cluster.py", "grading/test_hostile_students.py",
                 "grading/test_trusted_checks.py", "grading/test_user_isolation.py", "grading/test_grader_cli.py"]


def pytest_collection_modifyitems(items):
    rank = {REPO_ROOT / "tests" / name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path, len(rank)))   # stable: the rest keep their order

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
    from exercise_code.util.download import fetch_dataset
    return fetch_dataset(train_zip, tmp_path_factory.mktemp("data") / "facial_keypoints")


@pytest.fixture(scope="session")
def test_data_dir(test_zip, tmp_path_factory):
    """A folder with the hidden test.csv, unpacked from the instructor's zip."""
    from exercise_code.util.download import fetch_dataset
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

    from exercise_code.keypoints import KEYPOINT_COLUMNS

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


@pytest.fixture(scope="session")
def student_files():
    """{path: text} of every student file as the solutions generate it (nbgrader runs once per session)."""
    return release.student_versions()


@pytest.fixture(scope="session")
def solved_workspace():
    """
    solved_workspace(dest) makes dest a workspace as a student who solved everything
    has it: exercise_code/ and exercise_09/ copied from solutions/. Returns dest.
    """
    def make(dest):
        dest = Path(dest)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
        shutil.copytree(SOLUTION_PACKAGE, dest / "exercise_code", ignore=ignore)
        shutil.copytree(SOLUTION_NOTEBOOKS, dest / SOLUTION_NOTEBOOKS.name, ignore=ignore)
        return dest
    return make


@pytest.fixture(scope="session")
def isolation():
    """The isolation grade() and autograde use by default: the jail. Where it cannot start, tests that
    grade are skipped (the grader would refuse), but never in CI, which must prove the jail works."""
    from grader.sandbox import IsolationError, detect_isolation

    try:
        return detect_isolation()
    except IsolationError as error:
        if os.environ.get("CI"):
            pytest.fail(str(error))
        pytest.skip(str(error))
