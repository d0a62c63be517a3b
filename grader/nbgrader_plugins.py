"""
The course's nbgrader plugins, wired up in nbgrader_config.py:

- WithholdFromRelease: keeps an instructor's model out of what
  `nbgrader generate_assignment` releases, however the generation is started
- SUBMISSION_FILE_REGEXP: how `nbgrader zip_collect` reads the zips that
  create_submission_zip(student_id) writes
- TrustedGrades and WriteTrustedGrades: the points of every autograded cell,
  decided by trusted code in nbgrader's own process, never by the student's kernel
- FlaggedCsvExport: nbgrader's CSV export plus the columns autograde_status
  (nbgrader's own CSV shows a submission whose autograde failed as 0.0) and
  isolation (what the student's code ran in)

The kernels themselves run in the jail (grader/kernel_jail.py).
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
from traitlets import Integer, List, Unicode

from . import jail
from .errors import CheckFailed
from .kernel_jail import METADATA_KEY as METADATA
from .kernel_jail import DATA_ENV, StudentCodeIsolation, stop_autograde
from .replay import SEEN, Replay
from .results import read_result, write_text_atomic
from .trusted import ASSIGNMENT, MODEL_ENTRY, file_sha256
from .trusted_checks import CELLS, CheckResult, run_checks
from .unpack import find_submission_root, submission_sha256, unpack

MODEL_SCORE_CELL = "model_score"
TRUSTED_CELLS = {*CELLS, MODEL_SCORE_CELL}   # every autograded cell of the assignment
# <student_id>_exercise_09.zip is unpacked by zip_collect into extracted/<student_id>_exercise_09/.
# Notebooks sit in its exercise_09/ and land at the top of the assignment folder;
# exercise_code/... and models/... keep their paths. Student ids may contain "_".
SUBMISSION_FILE_REGEXP = rf".*/(?P<student_id>[^/]+)_{ASSIGNMENT}/(?:{ASSIGNMENT}/)?(?P<file_id>.+)"
FAILED_ENAMES = {"CellTimeoutError", "DeadKernelError", "TimeoutError"}


class WithholdFromRelease(NbGraderPreprocessor):
    """
    Keep paths of the source folder out of the release (a GenerateAssignment step).

    generate_assignment copies every file beside the source notebooks into the
    release, and validating a source notebook writes an instructor's model there
    (models/keypoint_model.pt), which must never be handed out. CourseDirectory.ignore
    cannot say so: autograde and zip_collect copy with the same list, and would drop
    each student's model. As a step of the GenerateAssignment pipeline, this applies
    however generation starts: `nbgrader generate_assignment`, the formgrader, or
    nbgrader's Python API. It runs after nbgrader has copied the files and before the
    first notebook is written; if it fails, nbgrader removes the whole release.
    """

    paths = List(Unicode(), [Path(MODEL_ENTRY).parts[0]],
                 help="Files or folders, relative to the assignment's source folder, that are never "
                      "released").tag(config=True)

    def preprocess(self, nb, resources):
        coursedir = CourseDirectory(config=self.config)   # nbgrader runs this in the course root
        student, assignment = resources["nbgrader"]["student"], resources["nbgrader"]["assignment"]
        release = Path(coursedir.format_path(coursedir.release_directory, student, assignment))
        for name in self.paths:
            path = release / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        return nb, resources


class TrustedGrades(NbGraderPreprocessor):
    """
    Grade the notebook's autograded cells with trusted code, BEFORE its kernel runs.

    Runs in nbgrader's own process, first in the autograde pipeline. It copies
    the student's submitted folder (course/submitted/<student>/<assignment>/,
    which no kernel can reach) to a scratch folder, then:
    - the model_score cell: grader.api.grade scores the submitted model file on
      the hidden test split, in the jail (see grade_models);
    - the check cells: grader.trusted_checks runs the student's functions in the
      jail on fresh inputs and compares the raw outputs with the reference code.
      grade_models asks for them too: the model's worker runs them once it has
      sent its predictions, and its result (in results_dir) holds them for every
      notebook of the submission.
    The grades wait in resources for WriteTrustedGrades, after the kernel has run.
    A class autograde (grader/class_autograde.py) scores every model, with the
    checks, before any notebook; its workers (Replay.record) leave every trusted
    cell to the process that writes the gradebook, the only one given the hidden data.
    """

    test_data = Unicode("", help="The hidden test CSV, or a folder holding test.csv. Give it on the command "
                                 "line (--TrustedGrades.test_data=PATH) or in a config file no kernel sees; "
                                 "never in an environment variable").tag(config=True)
    results_dir = Unicode("", help="Where the grader writes its model results (JSON, grades.csv, "
                                   "leaderboard.md); default: a temporary folder").tag(config=True)
    timeout_s = Integer(120, help="Wall-clock seconds for the grader's model worker").tag(config=True)

    def preprocess(self, nb, resources):
        cells = {cell.metadata.nbgrader["grade_id"]: cell for cell in nb.cells
                 if cell.metadata.get("nbgrader", {}).get("grade_id") in TRUSTED_CELLS}
        if not cells:
            return nb, resources
        isolation = StudentCodeIsolation(parent=self).isolation
        try:
            jail.require(isolation)
        except jail.JailUnavailable as error:
            stop_autograde(str(error), resources, self.config)   # nbgrader would go on past an Exception
        if MODEL_SCORE_CELL in cells and not self.test_data and not Replay(parent=self).record:
            stop_autograde(f"the {MODEL_SCORE_CELL} cell needs the hidden test data: pass "
                           "--TrustedGrades.test_data=PATH (the test CSV or its folder, outside course/)",
                           resources, self.config)
        problem = hidden_data_problem(self.test_data, os.environ.get(DATA_ENV))
        if problem:
            stop_autograde(problem, resources, self.config)
        if Replay(parent=self).record:   # a class autograde's worker: its step 1 graded every cell already,
            resources[METADATA] = {"isolation": isolation, "model_sha256": None, "grades": {   # and its notebooks
                cell: (0.0, "Graded by the process that writes the gradebook\n") for cell in cells}}   # are thrown away
            return nb, resources
        student, assignment = resources["nbgrader"]["student"], resources["nbgrader"]["assignment"]
        coursedir = CourseDirectory(config=self.config)
        submitted = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
        with tempfile.TemporaryDirectory(prefix="trusted-grades-") as scratch:
            copy = Path(scratch) / student
            record = {"isolation": isolation, "model_sha256": None, "grades": {}}
            try:
                unpack(submitted, copy)
            except CheckFailed as error:
                record["grades"] = {cell: (0.0, f"Not graded: {error}\n") for cell in cells}
            else:
                record["model_sha256"] = _sha256(find_submission_root(copy) / MODEL_ENTRY)
                record["grades"] = self.grade(student, find_submission_root(copy), cells, isolation, scratch)
        resources[METADATA] = record
        return nb, resources

    def grade(self, student, submission, cells, isolation, scratch):
        """{grade_id: (points, text for the student)} for the cells, from the copy of the submission."""
        grades, model = {}, None
        if MODEL_SCORE_CELL in cells:
            points = float(cells[MODEL_SCORE_CELL].metadata.nbgrader["points"])
            out_dir = self.results_dir or Path(scratch) / "results"
            result = self.grade_models({student: submission}, points, out_dir)[0]
            grades[MODEL_SCORE_CELL] = (float(result["score"]), result["output"] + "\n")
            model = result["extra_data"]
        elif self.results_dir:   # the model's result, graded with the checks of every notebook
            saved = read_result(Path(self.results_dir) / f"{student}.json")
            model = saved and saved.extra
        digest = submission_sha256(submission)
        results = _checked(submission, digest, isolation, scratch, _checks_of(model, digest, isolation))
        for cell in cells:
            if cell != MODEL_SCORE_CELL:
                points = float(cells[cell].metadata.nbgrader["points"])
                grades[cell] = (points if results[cell].passed else 0.0, results[cell].text())
        return grades

    def grade_models(self, submissions, max_points, out_dir, jobs=1, scheduler=None):
        """
        Score models on the hidden test split with grader.api.grade, the only way this course does.

        Inputs:
        - submissions: Dict {student: submission folder}
        - max_points: The points of the model_score cell
        - out_dir: Where the results go (results_dir, when it is set)
        - jobs: Models scored at once
        - scheduler: Address of a Dask scheduler to score them on instead (see grader/cluster.py)

        Returns:
        - The results as dicts, in the order of the students' names. A result that
          out_dir already holds for the same content and settings is reused: a class
          autograde (grader/class_autograde.py) scores every model before the notebooks.
        """
        from .api import grade   # imported here: it imports torch, which only this step needs
        return grade(submissions=submissions, test_data=self.test_data, out_dir=out_dir,
                     max_points=max_points, timeout_s=self.timeout_s, isolation=StudentCodeIsolation(
                         parent=self).isolation, jobs=jobs, scheduler=scheduler, checks=tuple(CELLS))


class WriteTrustedGrades(NbGraderPreprocessor):
    """
    Put TrustedGrades' points into the autograded cells, AFTER the kernel has run.

    Each graded cell's outputs become: the grader's text, its points (an
    execute_result, which nbgrader reads as partial credit, and reads first),
    then whatever the student's kernel printed there, kept as feedback: it can
    no longer change the points. The notebook's metadata records how it was graded.
    """

    def preprocess(self, nb, resources):
        record = resources.get(METADATA)
        cells = [cell for cell in nb.cells if cell.metadata.get("nbgrader", {}).get("grade_id") in TRUSTED_CELLS]
        if record is None:
            if cells:   # never leave the points to the kernel
                raise RuntimeError("WriteTrustedGrades found no trusted grades: TrustedGrades must come first "
                                   "in c.Autograde.autograde_preprocessors (see nbgrader_config.py)")
            return nb, resources
        for cell in cells:
            points, text = record["grades"][cell.metadata.nbgrader["grade_id"]]
            cell.outputs = [new_output("stream", name="stdout", text=text),
                            new_output("execute_result", data={"text/plain": repr(points)},
                                       execution_count=cell.get("execution_count")), *cell.outputs]
        # Beside JailedExecute's record of the kernel's isolation (the same setting, so the same value).
        nb.metadata.setdefault(METADATA, {}).update(checks_isolation=record["isolation"],
                                                   model_sha256=record["model_sha256"])
        return nb, resources


_last_checked = {}   # (submission digest, isolation) -> its CheckResults: the last submission's only


def _checks_of(model, digest, isolation):
    """
    {grade_id: CheckResult} that the model's result (its extra_data) holds, if it was graded
    from this very submission (digest) in this isolation; else {}.
    """
    checks = (model or {}).get("trusted_checks")
    if not checks or digest is None or model.get("source_sha256") != digest or model.get("isolation") != isolation:
        return {}
    return {cell: CheckResult(**result) for cell, result in checks.items()}


def _checked(submission, digest, isolation, scratch, found):
    """
    The trusted checks of every check cell of the assignment (trusted_checks.CELLS) on a
    submission whose submission_sha256 is digest: those found in the model's result, the
    rest in one jailed run, shared by the submission's notebooks (autograde grades them
    one after another). A jailed run is mostly its start, torch's import.
    """
    key = (digest, isolation)
    if key[0] is None or key not in _last_checked:   # None: unpack refuses it, and run_checks says so
        missing = [cell for cell in CELLS if cell not in found]
        SEEN["computed" if missing else "loaded", "checks"] += 1   # a class autograde reports these
        results = {**found, **run_checks(submission, missing, isolation=isolation, scratch=scratch)}
        _last_checked.clear()
        _last_checked[key] = results
    return _last_checked[key]


def hidden_data_problem(test_data, data_dir):
    """
    None, or why the hidden test data would be in sight of the kernels: every kernel is
    shown the training data folder ($FACIAL_KEYPOINTS_DIR), so the hidden data must not
    lie inside it (say, datasets/ named as the training data, holding both splits).
    """
    if not test_data or not data_dir:
        return None
    hidden, shown = Path(test_data).resolve(), Path(data_dir).resolve()
    if hidden.is_relative_to(shown) or shown.is_relative_to(hidden):
        return (f"the hidden test data {hidden} is inside ${DATA_ENV}={shown}, which every kernel can read. "
                "Point $FACIAL_KEYPOINTS_DIR at the training data folder alone, and keep the hidden data elsewhere.")
    return None


def _sha256(path):
    return file_sha256(path) if path.is_file() else None


class FlaggedCsvExport(CsvExportPlugin):
    """
    nbgrader's CSV export with two more columns:

    - autograde_status: "ok" (every submitted notebook was autograded and ran to
      its end), "not submitted", or "FAILED: ..." (a notebook's kernel died or a
      cell never ended: its points still come from the trusted grader, but look
      at the autograde log and the feedback; or autograde itself could not
      finish a notebook, which nbgrader shows as 0.0: regrade it).
    - isolation: what the student's code ran in when it was graded ("jail", or
      "none" if an instructor opted out by name); empty if not autograded.
    """

    def export(self, gradebook):
        super().export(gradebook)
        dest = Path(self.to or "grades.csv")
        with dest.open(newline="") as f:
            rows = list(csv.DictReader(f))
        coursedir = self.parent.coursedir
        for row in rows:
            row.update(autograde_record(coursedir, gradebook, row["assignment"], row["student_id"]))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else ["autograde_status", "isolation"])
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(dest, text.getvalue())


def autograde_record(coursedir, gradebook, assignment, student):
    """The export's extra columns for one student's assignment: autograde_status and isolation."""
    import nbformat
    from nbgrader.api import MissingEntry

    try:
        gradebook.find_submission(assignment, student)
    except MissingEntry:
        return {"autograde_status": "not submitted", "isolation": ""}
    submitted = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
    autograded = Path(coursedir.format_path(coursedir.autograded_directory, student, assignment))
    problems, isolations = [], set()
    for notebook in gradebook.find_assignment(assignment).notebooks:
        name = f"{notebook.name}.ipynb"
        if not (submitted / name).is_file():
            continue   # nbgrader already gives a missing notebook 0, and the feedback says so
        if not (autograded / name).is_file():
            problems.append(f"{name} was not autograded (a cell never finished, or the kernel died)")
            continue
        graded = nbformat.read(autograded / name, as_version=4)
        record = graded.metadata.get(METADATA, {})
        isolations.add(record.get("isolation", "unknown"))
        if record.get("kernel_error"):   # JailedExecute went on past a dead or hung kernel
            problems.append(f"{name}: the kernel failed ({record['kernel_error'][:200]})")
            continue
        for cell in graded.cells:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error" and output.get("ename") in FAILED_ENAMES:
                    problems.append(f"{name}: {output['ename']} in cell {cell.get('id', '?')}")
    return {"autograde_status": "FAILED: " + "; ".join(problems) if problems else "ok",
            "isolation": "+".join(sorted(isolations))}
