"""
`nbgrader autograde` of a whole class, `jobs` students at once:

    python -m grader autograde exercise_09 --test-data /secret/test.csv --jobs 2 [--force] \
        [--scheduler tls://host:8786] [-- --Execute.timeout=60 ...]

Run it where nbgrader runs (the folder of nbgrader_config.py). It does what plain
`nbgrader autograde` does, which keeps working, and gives the same grades, the
same autograded folders and the same export flags:

    1. models     every submitted model scored in ONE batch of grader.api.grade, `jobs`
                  at once (or on the Dask cluster of `scheduler`), into TrustedGrades.results_dir
                  (reused while content and settings are unchanged), with the trusted checks of
                  every notebook, run by the model's own worker; the trusted cells then read
                  their student's result
    2. workers    a local Dask cluster of `jobs` worker processes (started before step 1, as
                  copies of this process), each running nbgrader's autograde for one student
                  after another, with a throwaway gradebook of its own; the jailed kernels
                  save what they computed (grader/replay.py). With a
                  scheduler, the Dask cluster's workers do it instead, each student in a copy
                  of the course of its own, and send back what they saved
                  (grader/cluster_autograde.py)
    3. gradebook  this process, the only one that writes course/gradebook.db, runs nbgrader's
                  autograde for every student again, each as soon as step 2 is done with it
                  (while the workers go on); those steps load what step 2 saved

No worker, in a process or on a cluster, is given the hidden test data: the model
scores are computed in step 1, and written into the notebooks in step 3.

nbgrader's own gradebook is sqlite: one writer means no "database is locked". A
worker that fails costs time, never a grade: step 3 computes what it finds unsaved.
"""
import glob
import os
import re
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.converters import Autograde
from traitlets.config.loader import KVArgParseConfigLoader, PyFileConfigLoader

from . import jail, replay
from .kernel_jail import DATA_ENV, JailedExecute, StudentCodeIsolation
from .nbgrader_plugins import MODEL_SCORE_CELL, TrustedGrades, hidden_data_problem
from .unpack import find_submission_root

STOPPED = "nbgrader autograde stopped"   # kernel_jail.stop_autograde: the whole run must stop
KERNEL_STEP = (JailedExecute, f"{JailedExecute.__module__}.{JailedExecute.__name__}")   # as a config names it


class ClassAutogradeError(RuntimeError):
    """The class autograde cannot run, or was stopped; the message says why and what to do."""


@dataclass
class ClassAutograde:
    """What a class autograde did: the students autograded, those that failed, and the time of each step."""
    students: list
    failed: dict = field(default_factory=dict)       # student -> nbgrader's error
    skipped: list = field(default_factory=list)      # already autograded (without force)
    seconds: dict = field(default_factory=dict)      # "models", "students" (steps 2 and 3), "gradebook" (3) -> s
    on_workers: bool = False                         # whether step 2 ran (on Dask workers)
    replayed: dict = field(default_factory=dict)     # ("loaded" | "computed", step) -> count in step 3
    logs: dict = field(default_factory=dict)         # student -> nbgrader's log of step 3


def autograde_class(assignment, *, test_data, jobs=1, scheduler=None, force=False, course=".", nbgrader_args=(),
                    log=None):
    """
    Autograde every submitted student of an assignment, `jobs` at once.

    Inputs:
    - assignment: The assignment's name (exercise_09)
    - test_data: The hidden test CSV, or a folder holding test.csv (TrustedGrades.test_data)
    - jobs: Students autograded at once (worker processes)
    - scheduler: Address of a Dask scheduler whose workers do steps 1 and 2 instead (then jobs is unused)
    - force: Autograde again the students autograde already did (as nbgrader's --force)
    - course: The folder holding nbgrader_config.py
    - nbgrader_args: More nbgrader settings, as on its command line ("--Execute.timeout=60")
    - log: A function called with each student's nbgrader log as it is written (default: stderr)

    Returns:
    - ClassAutograde

    Raises ClassAutogradeError before anything is written if the run cannot start
    (the jail included: it never runs student code unjailed), or when nbgrader was
    stopped midway. Stopped, by that or by Ctrl-C, it first removes the autograded
    folders of the students whose grades it had not written yet, so that the next
    run, even without force, autogrades them (see _remove_unwritten).
    """
    if jobs < 1:
        raise ClassAutogradeError(f"--jobs must be 1 or more (got {jobs})")
    course = Path(course).resolve()
    log = log or (lambda text: print(text, end="", file=sys.stderr))
    if not (course / "nbgrader_config.py").is_file():
        raise ClassAutogradeError(f"{course} holds no nbgrader_config.py: run this in the course folder")
    scratch = Path(tempfile.mkdtemp(prefix="class-autograde-"))   # mode 0700: no kernel sees it
    try:
        # Students at once: each kernel gets its share of the cores (one on a cluster) for its numerical threads.
        threads = 1 if scheduler else max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
        api, nbgrader_args = _course_api(course, test_data, nbgrader_args, scratch, threads)
        _preflight(api)
        students, skipped = _students(api.coursedir, assignment, force)
        run = ClassAutograde(students=students, skipped=skipped)
        run.on_workers = bool(scheduler) or (jobs > 1 and len(students) > 1)
        gradebook = _sqlite_path(api.coursedir.db_url) if run.on_workers else None
        begun = set()   # students whose autograde a local worker began, in the course's autograded folder
        try:
            # Step 2's workers start first: a local cluster's are copies of this process (cluster.connect),
            # made before step 1 reads the hidden data.
            with _workers(jobs, scheduler) if run.on_workers else nullcontext() as client:
                with _timed(run.seconds, "models"):   # on step 2's workers, idle until then (never the labels)
                    _score_models(api, assignment, students, jobs, scheduler or (client and client.scheduler.address))
                replay.SEEN.clear()
                with _timed(run.seconds, "students"):
                    recorded = _record(client, api, nbgrader_args, assignment, students, scheduler, gradebook,
                                       scratch, log, begun) if client else iter(students)
                    for student in recorded:   # each student's gradebook pass once the workers are done with it
                        _write_gradebook(api, assignment, student, run, log)
        except BaseException:   # stopped (Ctrl-C included); the workers are stopped by now
            _remove_unwritten(api.coursedir, assignment, begun - run.logs.keys())
            raise
        run.replayed = dict(replay.SEEN)
        return run
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _course_api(course, test_data, nbgrader_args, scratch, kernel_threads):
    """
    (the CourseAPI of step 3, the nbgrader settings of every autograde of the run).

    Step 3 gets the course's config, the settings, the hidden data and the run's replay
    folder. kernel_threads (None: the config's) becomes JailedProvisioner.threads unless the
    config sets it: two kernels of two numerical threads each on two cores spin on each
    other's cores, which cost a quarter more CPU for nothing.
    """
    for arg in nbgrader_args:   # nbgrader's own flags (--force, --log-level) are its command line's, not settings
        if not re.fullmatch(r"--\w+\.\w+=.*", arg, re.S):
            raise ClassAutogradeError(f"The nbgrader settings after -- must read --Class.setting=value, as "
                                      f"--Execute.timeout=60 or --Application.log_level=DEBUG (got {arg!r})")
    nbgrader_args = list(nbgrader_args)
    args = [f"--TrustedGrades.test_data={Path(test_data).resolve()}", f"--Replay.folder={scratch / 'replay'}"]
    (scratch / "replay").mkdir()
    api = nbgrader_api(course, [*nbgrader_args, *args])
    if kernel_threads and "threads" not in api.config.get("JailedProvisioner", {}):
        nbgrader_args.append(f"--JailedProvisioner.threads={kernel_threads}")
    if not api.trusted.results_dir:   # step 1's batch and step 3's model_score cells share the models' results
        args.append(f"--TrustedGrades.results_dir={scratch / 'model_grades'}")
    return nbgrader_api(course, [*nbgrader_args, *args]), nbgrader_args


class CourseAPI:
    """nbgrader's API for the course in folder `course`, its config, and the TrustedGrades step of that config."""

    def __init__(self, course, config):
        from nbgrader.apps import NbGraderAPI   # imported here: nbgrader is slow to import

        self.course = course
        self.api = NbGraderAPI(config=config)
        self.coursedir = self.api.coursedir
        self.config = config
        self.trusted = TrustedGrades(config=config)
        self.engines = {}   # database URL -> the SQLAlchemy engine of every autograde of this API

    def autograde(self, assignment, student, **kwargs):
        with shared_engines(self.engines):
            return self.api.autograde(assignment, student, **kwargs)


@contextmanager
def shared_engines(engines):
    """
    with shared_engines(engines): every nbgrader Gradebook opened within takes its
    SQLAlchemy engine from the dict engines {database URL: engine}, adding it the first time.

    nbgrader opens the gradebook about a dozen times per student, each time with an engine
    of its own, which compiles every SQL statement again: a fifth of a class autograde's
    gradebook pass. A shared engine compiles once. Its NullPool opens and closes a
    database connection for each Gradebook, as separate engines did, so nothing else
    changes (no connection is held between two Gradebooks, or across a fork).
    """
    import nbgrader.api
    from sqlalchemy.pool import NullPool

    create_engine = nbgrader.api.create_engine

    def shared(url, **kwargs):
        if str(url) not in engines:
            engines[str(url)] = create_engine(url, poolclass=NullPool, **kwargs)
        return engines[str(url)]

    nbgrader.api.create_engine = shared
    try:
        yield
    finally:
        nbgrader.api.create_engine = create_engine


def nbgrader_api(course, args, record=False):
    """
    A CourseAPI configured as `nbgrader ... <args>` run in the course folder would be.
    With record: as a step-2 worker's (Replay.record on), whose autograde stops after the
    kernel's step: what the steps after it write is thrown away (a third of a second each).
    """
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    config.merge(KVArgParseConfigLoader(argv=list(args)).load_config())
    if "root" not in config.get("CourseDirectory", {}):
        config.CourseDirectory.root = str(course)
    if record:
        config.Replay.record = True
        steps = list(config.Autograde.get("autograde_preprocessors", Autograde.autograde_preprocessors.default()))
        kernel = [n for n, step in enumerate(steps) if step in KERNEL_STEP]
        if kernel:
            config.Autograde.autograde_preprocessors = steps[:kernel[0] + 1]
    return CourseAPI(course, config)


def _preflight(api):
    """Refuse before writing anything: no jail, no hidden data, or hidden data in sight of the kernels."""
    isolation = StudentCodeIsolation(config=api.config).isolation
    try:
        jail.require(isolation)
    except jail.JailUnavailable as error:
        raise ClassAutogradeError(f"{STOPPED}: it will not run student code: {error}") from None
    from .api import GradingConfigError, test_csv_path   # imported here: it imports torch

    try:
        test_csv_path(api.trusted.test_data)
    except GradingConfigError as error:
        raise ClassAutogradeError(str(error)) from None
    problem = hidden_data_problem(api.trusted.test_data, os.environ.get(DATA_ENV))
    if problem:
        raise ClassAutogradeError(problem)


def _students(coursedir, assignment, force):
    """(students to autograde, students skipped as autograded already), both sorted."""
    pattern = coursedir.format_path(coursedir.submitted_directory, "*", assignment)
    submitted = sorted(Path(path).parent.name for path in glob.glob(pattern) if Path(path).is_dir())
    if not submitted:
        raise ClassAutogradeError(f"No student has submitted {assignment} (nothing matches {pattern}): "
                                  "collect the submissions first (nbgrader zip_collect, or nbgrader collect)")
    if force:
        return submitted, []
    done = {s for s in submitted if Path(coursedir.format_path(coursedir.autograded_directory, s, assignment)).exists()}
    return [s for s in submitted if s not in done], sorted(done)


def _score_models(api, assignment, students, jobs, scheduler):
    """Score every student's model in one batch, before any notebook (see TrustedGrades.grade_models)."""
    from nbgrader.api import Gradebook

    with Gradebook(api.coursedir.db_url) as gradebook:
        cells = [cell for notebook in gradebook.find_assignment(assignment).notebooks
                 for cell in notebook.grade_cells if cell.name == MODEL_SCORE_CELL]
        max_points = cells[0].max_score if cells else None
    if max_points is None or not students:
        return
    coursedir = api.coursedir
    submissions = {s: find_submission_root(coursedir.format_path(coursedir.submitted_directory, s, assignment))
                   for s in students}
    api.trusted.grade_models(submissions, max_points, api.trusted.results_dir, jobs=jobs, scheduler=scheduler)


@contextmanager
def _workers(jobs, scheduler):
    """with _workers(jobs, scheduler) as client: the Dask client of step 2 (a local cluster of `jobs` processes)."""
    from . import cluster

    try:
        with cluster.connect(jobs, scheduler, processes=True) as client:
            yield client
    except cluster.ClusterError as error:
        raise ClassAutogradeError(f"{STOPPED}: {error}") from None


def _record(client, api, nbgrader_args, assignment, students, scheduler, gradebook, scratch, log, begun):
    """
    Step 2: every student's autograde on the Dask workers of client, recording (nothing they write is kept).

    Without a scheduler, a local cluster's worker processes autograde in the course
    folder itself, each process with a throwaway copy of the gradebook. With one, each
    student is autograded in a copy of the course on a worker (grader/cluster_autograde.py),
    and what it recorded comes back here. Either way a task is retried once; a student
    whose task still fails is autograded by step 3, which computes what it finds unsaved.

    Yields each student as the workers are done with it, in the order they finish. Adds to
    begun each student sent to a local worker, which autogrades in the course's folder.
    """
    from . import cluster, cluster_autograde

    replay = scratch / "replay"
    try:
        if scheduler:
            submit = cluster_autograde.submitter_remote(client, api, assignment, nbgrader_args, gradebook, scratch)
        else:
            submit_here = cluster_autograde.submitter_here(client, api, assignment, nbgrader_args, replay,
                                                           gradebook, scratch)

            def submit(student):
                begun.add(student)
                return submit_here(student)
    except cluster.ClusterError as error:
        raise ClassAutogradeError(f"{STOPPED}: {error}") from None
    for student, done in cluster.in_flight(client, students, submit):
        if done is None:   # nothing to send: step 3 refuses the submission, as TrustedGrades does
            yield student
            continue
        try:
            result = done.result()
        except Exception as error:   # its worker died twice, or a bug: step 3 computes what is missing
            result = {"success": False, "error": f"{type(error).__name__}: {error}", "records": {}}
        cluster_autograde.save_records(result["records"], replay)
        if not result["success"]:
            log(f"[class autograde] the autograde of {student} on a worker failed "
                f"({result['error'].strip()[-300:]}); it is autograded again in this process\n")
        yield student


def _remove_unwritten(coursedir, assignment, students):
    """
    Remove the autograded folders of students a local worker began and step 3 never wrote.

    A run without --force skips a student whose autograded folder exists, as nbgrader does;
    a folder without the student's grades would keep them out of the gradebook for good.
    nbgrader, stopped, removes the folder of the student it was at in the same way.
    """
    from nbgrader.utils import rmtree   # it removes nbgrader's read-only files too

    for student in sorted(students):
        folder = Path(coursedir.format_path(coursedir.autograded_directory, student, assignment))
        if folder.exists():   # said on stderr, not through log: what stopped the run may be log itself
            print(f"[class autograde] stopped before the grades of {student} were written: removing {folder}, "
                  "which the next run autogrades again", file=sys.stderr)
            rmtree(str(folder))


def _sqlite_path(db_url):
    """The file of an sqlite gradebook; each worker (a local one, or a cluster's) gets a copy of it."""
    if not db_url.startswith("sqlite:///"):
        raise ClassAutogradeError(f"--jobs above 1 and --scheduler copy nbgrader's sqlite gradebook for each "
                                  f"worker; this course's is {db_url.split(':')[0]}. Run with --jobs 1.")
    return db_url.removeprefix("sqlite:///").split("?")[0]


def _write_gradebook(api, assignment, student, run, log):
    """Step 3 for one student: its autograde in this process, replaying; fills in run.failed, run.logs."""
    start = time.perf_counter()
    result = api.autograde(assignment, student, force=True, create=True)
    run.seconds["gradebook"] = run.seconds.get("gradebook", 0.0) + time.perf_counter() - start
    run.logs[student] = result.get("log", "")
    log(run.logs[student])
    if not result["success"]:
        if STOPPED in result.get("error", ""):   # the jail failed midway: nothing more may run
            raise ClassAutogradeError(result["error"].strip().splitlines()[-1])
        run.failed[student] = result.get("error", "")
        log(run.failed[student])


@contextmanager
def _timed(seconds, name):
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = time.perf_counter() - start
