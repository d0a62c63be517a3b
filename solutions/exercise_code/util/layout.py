"""
Where things are: the one place that names the pack's folders and files.

A workspace is the folder that holds exercise_code/ (this package) and the
notebooks' folder, exercise_09/. Everything the exercise writes goes below it:

    exercise_09/*.ipynb              the notebooks
    exercise_code/                   this package
    datasets/facial_keypoints/       training.csv, val.csv (python -m exercise_code.util.download)
    models/keypoint_model.pt         your saved model (save_model)
    output/<id>_exercise_09.zip      your submission (create_submission_zip)
"""
import os
from pathlib import Path

ASSIGNMENT = "exercise_09"                     # the notebooks' folder, and the course's assignment name
MODEL_ENTRY = "models/keypoint_model.pt"       # the model file, in a workspace and in the submission zip
WORKSPACE = Path(__file__).resolve().parents[2]
DATA_DIR_ENV = "FACIAL_KEYPOINTS_DIR"          # overrides where the data is read from and written to


def default_data_dir():
    """The data folder: $FACIAL_KEYPOINTS_DIR, else datasets/facial_keypoints in the workspace."""
    return Path(os.environ.get(DATA_DIR_ENV) or WORKSPACE / "datasets" / "facial_keypoints")


def submission_zip_name(student_id=None):
    """The submission's file name: <student_id>_exercise_09.zip, or exercise_09.zip without an id."""
    return f"{student_id}_{ASSIGNMENT}.zip" if student_id else f"{ASSIGNMENT}.zip"
