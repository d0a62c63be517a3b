"""
The grader's trusted surface: everything it uses of exercise_code, named here.

The grader's own processes run the instructor's copy of these, from the installed
exercise_code, which is the solved package (solutions/exercise_code/, see
pyproject.toml). A student's exercise_code only ever runs in the jail.

`python -m` puts the current folder first on sys.path, so at the repo root
`import exercise_code` finds the generated student copy, whose TODOs raise
NotImplementedError (and whose layers.py the trusted checks would take as the
reference). We refuse it: the solved package keeps its solution markers, the
student copy never has them.
"""
from pathlib import Path

from exercise_code import layers as reference_layers   # the solution of the optional part
from exercise_code.evaluation import keypoint_errors, keypoint_score
from exercise_code.gradient_check import rel_error
from exercise_code.keypoints import KEYPOINT_COLUMNS, KEYPOINT_NAMES, pixels_to_unit, unit_to_pixels
from exercise_code.util.atomic_file import atomic_file
from exercise_code.util.cache import file_sha256
from exercise_code.util.csv_reader import DataFormatError, read_keypoints_csv
from exercise_code.util.layout import ASSIGNMENT, MODEL_ENTRY
from exercise_code.util.limits import (
    MAX_FILE_BYTES, MAX_PARAMETERS, count_saved_parameters, file_size_problem, parameter_problem,
)
from exercise_code.util.model_files import ModelFileError, read_model_file
from exercise_code.util.submission import LEFT_OUT_DIRS, submission_files

PACKAGE = Path(reference_layers.__file__).parent

if "### BEGIN SOLUTION" not in Path(reference_layers.__file__).read_text():
    raise ImportError(
        f"The grader imported the student copy of exercise_code ({PACKAGE}), not the solved package it trusts: "
        "`python -m` puts the current folder first on sys.path. Run it from another folder, or as `python -P -m ...`.",
        name="exercise_code")

__all__ = [
    "ASSIGNMENT", "DataFormatError", "KEYPOINT_COLUMNS", "KEYPOINT_NAMES", "LEFT_OUT_DIRS", "MAX_FILE_BYTES", "MAX_PARAMETERS",
    "MODEL_ENTRY", "ModelFileError", "atomic_file", "count_saved_parameters", "file_sha256", "file_size_problem",
    "keypoint_errors", "keypoint_score", "parameter_problem", "pixels_to_unit", "read_keypoints_csv", "read_model_file", "reference_layers",
    "rel_error", "submission_files", "unit_to_pixels",
]
