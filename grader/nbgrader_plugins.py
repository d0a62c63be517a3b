"""
The course's nbgrader plugins, wired up in nbgrader_config.py:

- SUBMISSION_FILE_REGEXP: how `nbgrader zip_collect` reads the zips that
  create_submission_zip(student_id) writes
- WARNINGS_ONLY: the stderr that IgnorePattern drops from graded cells
- ScoreModelFile: an autograde step that fills the `model_score` cell with the
  grader's result for the submitted model
- FlaggedCsvExport: nbgrader's CSV export plus a column that flags submissions
  whose autograde did not finish (nbgrader's own CSV shows them as 0.0)
"""
import csv
import io
import os
import shutil
import tempfile
from pathlib import Path

from nbformat.v4 import new_output
from nbgrader.coursedir import CourseDirectory
from nbgrader.plugins.export import CsvExportPlugin
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer, Unicode

from exercise_code.submission import ASSIGNMENT

from .results import write_text_atomic

HIDDEN_TEST_ENV = "FACIAL_KEYPOINTS_HIDDEN_TEST"
MODEL_SCORE_CELL = "model_score"
# <student_id>_exercise_09.zip is unpacked by zip_collect into extracted/<student_id>_exercise_09/.
# Notebooks sit in its exercise_09/ and land at the top of the assignment folder;
# exercise_code/... and models/... keep their paths. Student ids may contain "_".
SUBMISSION_FILE_REGEXP = rf".*/(?P<student_id>[^/]+)_{ASSIGNMENT}/(?:{ASSIGNMENT}/)?(?P<file_id>.+)"
# stderr text made of Python warnings only: each line names a Warning, or is the indented
# source line Python prints under it. IgnorePattern drops such output from graded cells.
WARNINGS_ONLY = r"\A(?:(?:.*Warning.*|  .*)(?:\n|\Z))+\Z"
FAILED_ENAMES = {"CellTimeoutError", "DeadKernelError", "TimeoutError"}


class ScoreModelFile(NbGraderPreprocessor):
    """
    Put the grader's result for the submitted model into the `model_score` cell.

    This runs in nbgrader's own process after the notebook has executed, so no code
    in the student's kernel can change the number. The grader (grader.api.grade)
    loads the model file the student submitted, course/submitted/<student>/<assignment>/,
    with the student's exercise_code, in its isolated worker, and scores it on the
    hidden test split. The cell's outputs become the grader's explanation (stdout)
    and the points earned (an execute_result, which nbgrader takes as partial credit).
    """

    test_data = Unicode("", help="The hidden test CSV, or a folder holding test.csv").tag(config=True)
    results_dir = Unicode("", help="Where the grader writes its results (JSON, grades.csv, "
                                   "leaderboard.md); default: a temporary folder").tag(config=True)
    cell_id = Unicode(MODEL_SCORE_CELL, help="grade_id of the cell to fill").tag(config=True)
    timeout_s = Integer(120, help="Wall-clock seconds for the grader's worker").tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Kernels inherit nbgrader's environment: take the hidden data's location out of it.
        os.environ.pop(HIDDEN_TEST_ENV, None)

    def preprocess(self, nb, resources):
        cells = [cell for cell in nb.cells
                 if cell.metadata.get("nbgrader", {}).get("grade_id") == self.cell_id]
        if not cells:
            return nb, resources
        if not self.test_data:
            raise RuntimeError(f"No hidden test data for the {self.cell_id} cell: set ${HIDDEN_TEST_ENV} to the "
                               "hidden test CSV (or its folder) before running nbgrader autograde")
        student, assignment = resources["nbgrader"]["student"], resources["nbgrader"]["assignment"]
        coursedir = CourseDirectory(config=self.config)
        submitted = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
        for cell in cells:
            points = float(cell.metadata["nbgrader"]["points"])
            text, earned = self.grade_model(submitted, student, points)
            cell.outputs = [new_output("stream", name="stdout", text=text),
                            new_output("execute_result", data={"text/plain": repr(earned)},
                                       execution_count=cell.get("execution_count"))]
        return nb, resources

    def grade_model(self, submitted, student, points):
        """
        Grade the model of one submitted assignment folder.

        Inputs:
        - submitted: Folder holding models/ and exercise_code/
        - student: The student id (names the grader's result)
        - points: The cell's points: the most a model can earn

        Returns a tuple of:
        - text: What the grader says about the model
        - earned: Points, between 0 and `points`
        """
        from grader.api import grade  # imported here: it imports torch, which only this step needs

        with tempfile.TemporaryDirectory(prefix="score-model-") as scratch:
            copy = Path(scratch) / student   # the grader names each result after its folder
            shutil.copytree(submitted, copy, ignore=shutil.ignore_patterns("*.ipynb", "timestamp.txt"))
            out_dir = self.results_dir or Path(scratch) / "results"
            result = grade(submissions=[copy], test_data=self.test_data, out_dir=out_dir, force=True,
                           max_points=points, timeout_s=self.timeout_s)[0]
        return result["output"], float(result["score"])


class FlaggedCsvExport(CsvExportPlugin):
    """
    nbgrader's CSV export with one more column, autograde_status:

    - "ok": every submitted notebook was autograded and ran to its end
    - "not submitted"
    - "FAILED: ...": autograde did not finish a notebook (a cell that never ended,
      a dead kernel, a failed grading step). nbgrader gives such a submission 0.0
      and says nothing in the CSV; regrade it after looking at the autograde log.
    """

    def export(self, gradebook):
        super().export(gradebook)
        dest = Path(self.to or "grades.csv")
        with dest.open(newline="") as f:
            rows = list(csv.DictReader(f))
        coursedir = self.parent.coursedir
        for row in rows:
            row["autograde_status"] = autograde_status(coursedir, gradebook, row["assignment"], row["student_id"])
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else ["autograde_status"])
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(dest, text.getvalue())


def autograde_status(coursedir, gradebook, assignment, student):
    """"ok", "not submitted" or "FAILED: <why>" for one student's assignment (see FlaggedCsvExport)."""
    import nbformat
    from nbgrader.api import MissingEntry

    try:
        gradebook.find_submission(assignment, student)
    except MissingEntry:
        return "not submitted"
    submitted = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
    autograded = Path(coursedir.format_path(coursedir.autograded_directory, student, assignment))
    problems = []
    for notebook in gradebook.find_assignment(assignment).notebooks:
        name = f"{notebook.name}.ipynb"
        if not (submitted / name).is_file():
            continue   # nbgrader already gives a missing notebook 0, and the feedback says so
        if not (autograded / name).is_file():
            problems.append(f"{name} was not autograded (a cell never finished, or the kernel died)")
            continue
        for cell in nbformat.read(autograded / name, as_version=4).cells:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error" and output.get("ename") in FAILED_ENAMES:
                    problems.append(f"{name}: {output['ename']} in cell {cell.get('id', '?')}")
    return "FAILED: " + "; ".join(problems) if problems else "ok"
