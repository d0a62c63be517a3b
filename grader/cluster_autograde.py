"""
The tasks of a class autograde's step 2 (grader/class_autograde.py), on Dask workers:
one student's nbgrader autograde, with Replay.record on (grader/replay.py).

autograde_here       python -m grader autograde --jobs N: a local cluster of N worker
                     processes, on the machine of the course folder. A worker process
                     autogrades in the course folder itself, with a throwaway copy of
                     the gradebook of its own (sqlite has one writer: this process's
                     step 3), and saves into the run's replay folder.

autograde_on_worker  python -m grader autograde --scheduler ADDRESS: a worker machine
                     does not see the course folder, so each task gets what nbgrader's
                     autograde of one student needs, and no more:

    CourseCopy, once per run     the course's nbgrader_config.py (its text); the assignment's
                                 source files that autograde copies over the student's (not
                                 the notebooks, nothing of Autograde.exclude_overwriting); a
                                 gradebook holding the course's assignments and no student;
                                 the run's nbgrader settings
    per student                  the submitted folder, as a zip (unpack.pack)

Never the hidden test data: in record mode TrustedGrades leaves the trusted cells
to the process that writes the gradebook. The worker autogrades the student in a
temporary course, with Replay.record on, and returns what the steps saved
(grader/replay.py); the client puts it in the run's replay folder, where step 3 finds
it. The keys are the same on every machine: they name the student and the contents,
not the folders.

The kernels there run at another path: a cell that prints its own folder shows the
worker's. Every point comes from trusted code, so the grades cannot differ.
"""
import io
import os
import re
import shutil
import sqlite3
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from nbgrader.utils import find_all_files

from . import cluster
from .errors import CheckFailed
from .kernel_jail import PASSED_ENV, JailedExecute, StudentCodeIsolation
from .unpack import pack, unpack

RECORD = re.compile(r"kernel-[0-9a-f]{64}\.json")   # what replay.Replay saves, and nothing else
LAYOUT = {"source_directory": "source", "submitted_directory": "submitted", "autograded_directory": "autograded"}


def submitter_here(client, api, assignment, args, replay, gradebook, scratch):
    """
    submit(student) -> the future of autograde_here for that student, on a local cluster.

    Inputs:
    - client: The local cluster's Dask client
    - api: The course's CourseAPI (grader/class_autograde.py)
    - assignment: The assignment's name
    - args: The nbgrader settings of the run's autogrades (never the hidden data)
    - replay: The run's replay folder, where the workers save
    - gradebook: The course's sqlite gradebook file, which each worker process copies
    - scratch: The run's scratch folder, for those copies
    """
    course = CourseHere(str(api.course), (*args, f"--Replay.folder={replay}"), str(gradebook), str(scratch))
    return lambda student: cluster.submit_large(client, autograde_here, course, assignment, student,
                                                key=f"autograde-{student}")


def submitter_remote(client, api, assignment, args, gradebook, scratch):
    """
    submit(student) -> the future of autograde_on_worker for that student, or None when its
    submitted folder cannot be sent (unpack would refuse it, and step 3 will). Every worker
    is probed first (worker_problem): the run refuses, with ClusterError, if one fails.

    Inputs: as submitter_here's (but replay), on a cluster's client.
    """
    cluster.require_workers(client, worker_problem, StudentCodeIsolation(config=api.config).isolation,
                            passed_environment(), JailedExecute(config=api.config).kernel_name)
    course = cluster.shared(client, course_copy(api, assignment, args, gradebook, scratch), "course")
    coursedir = api.coursedir

    def submit(student):
        try:
            submission = pack(coursedir.format_path(coursedir.submitted_directory, student, assignment))
        except CheckFailed:
            return None
        return cluster.submit_large(client, autograde_on_worker, course, assignment, student, submission,
                                    key=f"autograde-{student}")
    return submit


@dataclass(frozen=True)
class CourseHere:
    """The course of a local cluster's tasks: its folder, the run's nbgrader settings, its gradebook, the run's
    scratch folder (for the workers' gradebooks)."""
    folder: str
    args: tuple
    gradebook: str
    scratch: str


_here = {}   # CourseHere -> this worker process's CourseAPI


def autograde_here(course, assignment, student):
    """
    The task on a local cluster's worker process: nbgrader's autograde of one student in the course folder.

    Inputs:
    - course: CourseHere
    - assignment: The assignment's name
    - student: The student's id

    Returns:
    - {"success": bool, "error": nbgrader's error, "records": {}} (the records are in the run's replay folder)
    """
    from .class_autograde import nbgrader_api   # imported here: it imports this module

    if course not in _here:   # once per worker process: its own gradebook
        gradebook = Path(course.scratch) / f"gradebook-{os.getpid()}.db"
        shutil.copyfile(course.gradebook, gradebook)
        _here[course] = nbgrader_api(Path(course.folder), [*course.args, f"--CourseDirectory.db_url=sqlite:///{gradebook}"],
                                     record=True)
    result = _here[course].autograde(assignment, student, force=True, create=True)
    return {"success": result["success"], "error": result.get("error", ""), "records": {}}


@dataclass(frozen=True)
class CourseCopy:
    """What every task of a run needs of the course (the same for all its students)."""
    config: str         # nbgrader_config.py
    source: bytes       # a zip of the assignment's source files that autograde copies
    gradebook: bytes    # the sqlite gradebook, without students
    args: tuple         # nbgrader settings, as on its command line


def course_copy(api, assignment, args, gradebook, scratch):
    """
    The CourseCopy of a course.

    Inputs:
    - api: The course's CourseAPI (grader/class_autograde.py)
    - assignment: The assignment's name
    - args: The nbgrader settings of the run (never the hidden test data)
    - gradebook: The course's sqlite gradebook file
    - scratch: A folder of this run, for the gradebook's copy

    Returns:
    - CourseCopy
    """
    coursedir = api.coursedir
    source = Path(coursedir.format_path(coursedir.source_directory, ".", assignment))
    excluded = {source / name for name in api.config.get("Autograde", {}).get("exclude_overwriting", {}).get(
        assignment, [])}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        # The selection nbgrader's Autograde.init_assignment copies over each student's files.
        for path in sorted(map(Path, find_all_files(str(source), [*coursedir.ignore, "*.ipynb"]))):
            if path not in excluded and not path.is_symlink():
                archive.write(path, path.relative_to(source).as_posix())
    return CourseCopy(config=(api.course / "nbgrader_config.py").read_text(), source=buffer.getvalue(),
                      gradebook=_without_students(gradebook, Path(scratch) / "gradebook-copy.db"),
                      args=tuple(args))


def _without_students(gradebook, copy):
    """The bytes of a copy of the sqlite gradebook file with every student, and so their grades, removed."""
    from nbgrader.api import Gradebook

    shutil.copyfile(gradebook, copy)
    with Gradebook(f"sqlite:///{copy}") as gradebook:
        for student in gradebook.students:
            gradebook.remove_student(student.id)
    with sqlite3.connect(copy) as db:
        db.execute("VACUUM")   # removed rows would otherwise stay in the file's free pages
    return copy.read_bytes()


def autograde_on_worker(course, assignment, student, submission):
    """
    The task, on a Dask worker: nbgrader's autograde of one student, recording.

    Inputs:
    - course: CourseCopy
    - assignment: The assignment's name
    - student: The student's id
    - submission: The student's submitted folder, as the bytes of a zip (unpack.pack)

    Returns:
    - {"success": bool, "error": nbgrader's error, "records": {file name: JSON text}}
    """
    from .class_autograde import nbgrader_api   # imported here: it imports this module

    with tempfile.TemporaryDirectory(prefix="cluster-autograde-") as root:
        root = Path(root)
        (root / "nbgrader_config.py").write_text(course.config)
        (root / "gradebook.db").write_bytes(course.gradebook)
        replay = root / "replay"
        replay.mkdir()
        api = nbgrader_api(root, [*course.args, f"--CourseDirectory.root={root}",
                                  *(f"--CourseDirectory.{name}={folder}" for name, folder in LAYOUT.items()),
                                  f"--CourseDirectory.db_url=sqlite:///{root / 'gradebook.db'}",
                                  f"--Replay.folder={replay}"], record=True)
        coursedir = api.coursedir
        with zipfile.ZipFile(io.BytesIO(course.source)) as archive:
            archive.extractall(coursedir.format_path(coursedir.source_directory, ".", assignment))
        submitted = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
        submitted.parent.mkdir(parents=True)
        zipped = root / "submission.zip"
        zipped.write_bytes(submission)
        unpack(zipped, submitted)   # checked as any submission is
        result = api.autograde(assignment, student, force=True, create=True)
        return {"success": result["success"], "error": result.get("error", ""),
                "records": {path.name: path.read_text() for path in replay.iterdir() if RECORD.fullmatch(path.name)}}


def save_records(records, folder):
    """Write a task's records into the run's replay folder (names checked: a worker writes nowhere else)."""
    for name, text in records.items():
        if RECORD.fullmatch(name):
            partial = Path(folder) / f"{name}.partial"
            partial.write_text(text)
            partial.replace(Path(folder) / name)


def worker_problem(isolation, environment, kernel_name):
    """
    None if this worker can run the class's kernels as this process would; else why not.
    Run on every worker before any task.

    Inputs:
    - isolation: What student code runs in ("jail")
    - environment: {name: value or None} of kernel_jail.PASSED_ENV in the grader's process
    - kernel_name: The kernelspec every notebook runs with (JailedExecute.kernel_name)
    """
    from jupyter_client.kernelspec import find_kernel_specs

    problem = cluster.jail_problem(isolation)
    if problem:
        return problem
    if kernel_name not in find_kernel_specs():
        return (f"it has no kernelspec {kernel_name!r}: run `python -m grader.kernel_jail install` "
                "in the worker's environment")
    differ = {name: value for name, value in passed_environment().items() if value != environment.get(name)}
    if differ:
        return (f"its kernels would get {differ}, and this process's {({n: environment.get(n) for n in differ})}: "
                "start the worker with the same values of " + ", ".join(PASSED_ENV))
    return None


def passed_environment():
    """The environment variables that reach a kernel (kernel_jail.PASSED_ENV), as this process has them."""
    return {name: os.environ.get(name) for name in PASSED_ENV}
