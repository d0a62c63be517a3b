"""
`python -m grader autograde` (grader/class_autograde.py) against plain, serial
`nbgrader autograde`, on copies of one small course: the same grades cell by cell,
the same autograded folders and notebooks, the same export flags; and the workers'
kernel runs are the ones the gradebook's process uses. Its workers are local
processes (--jobs 2) in one copy, and a Dask cluster of separate processes on
127.0.0.1 (--scheduler) in another, which is never sent the hidden data and
loses a worker, killed while it autogrades a student.
"""
import io
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import distributed
import nbformat
import pytest
from dask_cluster import Cluster
from nbformat.v4 import new_code_cell, new_notebook

from grader.class_autograde import autograde_class, shared_engines
from grader.kernel_jail import METADATA_KEY
from grader.release import run_nbgrader
from small_course import SMALL_COURSE_CONFIG

pytestmark = [pytest.mark.slow, pytest.mark.jail]

CONFIG = SMALL_COURSE_CONFIG + "c.Execute.timeout = 2\n"
SOLUTION = "from pathlib import Path\nanswer = Path('answer.txt').read_text().strip()"
CHECK = "assert answer == '42', f'expected 42, got {answer}'\nprint('the answer is right')"
NEVER_ENDS = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.1)"
# student -> (their solution cell, their answer.txt)
CLASS = {"alice": (SOLUTION, "42"), "bob": (SOLUTION, "41"), "dave": (NEVER_ENDS, "42")}
HIDDEN_MARK = "hidden-label-7f3a9c"   # in the hidden test file; must never reach a Dask worker


def cell(source, grade_id, **nbgrader):
    meta = {"grade": False, "solution": False, "locked": False, "points": 0, "task": False, "schema_version": 3,
            "grade_id": grade_id, **nbgrader}
    return new_code_cell(source, metadata={"nbgrader": meta})


def small_course(root):
    """A one-notebook course, its assignment generated and the class's work submitted."""
    root.mkdir(parents=True)
    (root / "nbgrader_config.py").write_text(CONFIG)
    nb = new_notebook(cells=[cell(SOLUTION, "answer", solution=True),
                             cell(CHECK, "check", grade=True, locked=True, points=1)],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    (root / "source" / "ps1").mkdir(parents=True)
    nbformat.write(nb, root / "source" / "ps1" / "p1.ipynb")
    run_nbgrader(["generate_assignment", "ps1", "--force"], cwd=root)
    for student, (solution, answer) in CLASS.items():
        folder = root / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        released = nbformat.read(root / "release" / "ps1" / "p1.ipynb", as_version=4)
        released.cells[0].source = solution
        nbformat.write(released, folder / "p1.ipynb")
        (folder / "answer.txt").write_text(answer)
        (folder / "timestamp.txt").write_text("2026-11-30 10:00:00.000000 UTC")
    return root


def start(commands):
    """Start (argv, cwd) commands at once; returns their processes."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return [subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for argv, cwd in commands]


def finish(started):
    """Each started process's (exit code, stdout and stderr), once it ends."""
    outputs = [p.communicate(timeout=600)[0] for p in started]
    return [(p.returncode, output) for p, output in zip(started, outputs)]


@pytest.fixture(scope="module")
def courses(tmp_path_factory):
    """
    Three copies of one course with the class submitted, autograded at once: serially by
    nbgrader, with --jobs 2, and on a Dask cluster of two workers (with a spy on what is
    sent to it).
    """
    from grader.kernel_jail import install

    install()
    tmp = tmp_path_factory.mktemp("class")
    serial = small_course(tmp / "serial")
    parallel, on_cluster = tmp / "parallel", tmp / "cluster"
    shutil.copytree(serial, parallel)
    shutil.copytree(serial, on_cluster)
    hidden = tmp / "hidden.csv"   # this course has no model_score cell: only where it goes matters
    hidden.write_text(f"Image\n{HIDDEN_MARK}\n")
    nbgrader = [sys.executable, "-m", "nbgrader"]
    started = start([([*nbgrader, "autograde", "ps1"], serial),
                     ([sys.executable, "-m", "grader", "autograde", "ps1", "--test-data", str(hidden), "--jobs", "2"],
                      parallel)])
    dask, sent, killed = Cluster(tmp), [], []
    try:
        workers = [dask.add_worker(name) for name in ("w1", "w2")]
        killer = threading.Thread(target=kill_a_busy_worker, args=(workers, killed), daemon=True)
        killer.start()
        with pytest.MonkeyPatch.context() as patch:
            honest = distributed.Client.submit
            patch.setattr(distributed.Client, "submit", lambda self, *args, **kwargs: (
                sent.append((args, pickle.dumps((args, kwargs)))), honest(self, *args, **kwargs))[1])
            on_cluster_run = autograde_class("ps1", test_data=hidden, scheduler=dask.address, course=on_cluster,
                                             log=lambda text: None)
        killer.join()
    finally:
        dask.close()
        (serial_rc, serial_log), (rc, output) = finish(started)
    assert serial_rc == 0 and rc == 0, serial_log + output
    return {"serial": serial, "parallel": parallel, "cluster": on_cluster, "output": output,
            "cluster_run": on_cluster_run, "hidden": hidden, "sent": sent, "killed": killed}


def kill_a_busy_worker(workers, killed, timeout_s=120):
    """Kill (SIGKILL, with its kernels) the first worker seen autograding a student: one with a process
    of its own running, a jailed kernel or check. Appends its pid to killed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for worker in workers:
            if children(worker.pid):
                time.sleep(0.5)   # well inside that student's autograde
                if children(worker.pid):   # and still in it: the kill lands mid-task
                    os.killpg(worker.pid, signal.SIGKILL)
                    killed.append(worker.pid)
                    return
        time.sleep(0.1)


def children(pid):
    """The pids whose parent is pid."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return found


def gradebook_grades(root):
    """{(student, cell): (score, auto_score, max_score)} from the course's gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root}/gradebook.db") as gradebook:
        return {(student, grade.name): (grade.score, grade.auto_score, grade.max_score)
                for student in CLASS
                for notebook in gradebook.find_submission("ps1", student).notebooks for grade in notebook.grades}


def autograded(root):
    """{relative path: content} of the autograded folders; notebooks as their cells' sources and outputs."""
    out = {}
    base = root / "autograded"
    for path in sorted(base.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            out[str(path.relative_to(base))] = ([(c.source, c.get("outputs")) for c in nb.cells],
                                                 nb.metadata.get(METADATA_KEY))
        else:
            out[str(path.relative_to(base))] = path.read_bytes()
    return out


def export_flags(root):
    """{student: the columns FlaggedCsvExport adds to nbgrader's export (autograde_status, isolation)}."""
    from nbgrader.api import Gradebook
    from nbgrader.coursedir import CourseDirectory

    from grader.nbgrader_plugins import autograde_record

    with Gradebook(f"sqlite:///{root}/gradebook.db") as gradebook:
        return {student: autograde_record(CourseDirectory(root=str(root)), gradebook, "ps1", student)
                for student in CLASS}


@pytest.mark.parametrize("run", ["parallel", "cluster"])
def test_grades_are_those_of_serial_nbgrader_autograde(courses, run):
    """Cell by cell, does every student get in the gradebook what plain nbgrader autograde gives them?"""
    serial = gradebook_grades(courses["serial"])
    assert serial[("alice", "check")][0] == 1 and serial[("bob", "check")][0] == 0   # the course is not trivial
    assert gradebook_grades(courses[run]) == serial


@pytest.mark.parametrize("run", ["parallel", "cluster"])
def test_autograded_folders_and_export_flags_are_the_same(courses, run):
    """Are the autograded files, every cell's outputs, and the export's flags (dave's stuck cell) the same?"""
    assert autograded(courses[run]) == autograded(courses["serial"])
    flags = export_flags(courses[run])
    assert flags == export_flags(courses["serial"])
    assert flags["dave"]["autograde_status"].startswith("FAILED") and flags["alice"]["autograde_status"] == "ok"
    assert {flag["isolation"] for flag in flags.values()} == {"jail"}


def test_the_gradebook_process_takes_the_workers_kernel_runs(courses):
    """Did the one process that wrote the gradebook take every kernel run from the workers (local processes,
    or the Dask cluster's), running none again? (This course has no trusted checks: see test_nbgrader_course.)"""
    found = re.search(r"Taken from the workers: (\d+) kernel runs.*: (\d+) submissions' trusted checks; done "
                      r"again here: (\d+) kernel runs, (\d+) submissions' checks", courses["output"])
    assert found, courses["output"]
    assert [int(n) for n in found.groups()] == [len(CLASS), 0, 0, 0]
    run = courses["cluster_run"]
    assert (run.replayed.get(("loaded", "kernel")), run.replayed.get(("computed", "kernel"))) == (len(CLASS), None)
    assert not run.failed and set(run.seconds) == {"models", "students", "gradebook"} and run.on_workers


def test_a_worker_killed_mid_class_costs_no_grade(courses):
    """One of the two Dask workers was killed while it autograded a student (see courses): did the class still
    complete, every grade as serial nbgrader's (the tests above), with every kernel run from a worker?"""
    assert len(courses["killed"]) == 1
    run = courses["cluster_run"]
    assert not run.failed and sorted(run.students) == sorted(CLASS)


def test_the_cluster_is_never_sent_the_hidden_data(courses, tmp_path):
    """Was everything handed to Dask free of the hidden data (its content, and even where it is)? Did the
    cluster get each student's own work, and the gradebook without a single student in it?"""
    from nbgrader.api import Gradebook

    from grader.cluster_autograde import CourseCopy

    assert len(courses["sent"]) == 1 + len(CLASS)   # the course once, then one task per student
    for secret in (HIDDEN_MARK, str(courses["hidden"]), courses["hidden"].name):
        assert not any(secret.encode() in pickled for _, pickled in courses["sent"]), secret
    (_, course), _ = courses["sent"][0]
    assert isinstance(course, CourseCopy)
    (tmp_path / "gradebook.db").write_bytes(course.gradebook)
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gradebook:
        assert gradebook.students == [] and [a.name for a in gradebook.assignments] == ["ps1"]
    for (_, _, assignment, student, submission), _ in courses["sent"][1:]:
        assert assignment == "ps1"
        with zipfile.ZipFile(io.BytesIO(submission)) as archive:
            assert archive.read("answer.txt").decode() == CLASS[student][1]


def test_refuses_outside_a_course_and_without_the_hidden_data(tmp_path, courses, monkeypatch, capsys):
    """Does the verb say what is wrong, exit 2, and write nothing, outside a course, without the test data,
    with one of nbgrader's own flags where its settings go, or with workers and a gradebook they cannot copy?"""
    from grader import cli

    hidden = courses["parallel"].parent / "hidden.csv"
    for cwd, test_data, extra, expected in [
            (tmp_path, tmp_path / "x.csv", [], "holds no nbgrader_config.py"),
            (courses["parallel"], tmp_path / "missing.csv", [], "the hidden test file is not there"),
            (courses["parallel"], hidden, ["--", "--log-level=DEBUG"], "must read --Class.setting=value"),
            (courses["parallel"], hidden, ["--force", "--", "--CourseDirectory.db_url=postgresql://db/course"],
             "this course's is postgresql. Run with --jobs 1")]:
        monkeypatch.chdir(cwd)
        before = sorted(Path(cwd).rglob("*"))
        assert cli.main(["autograde", "ps1", "--test-data", str(test_data), "--jobs", "2", *extra]) == 2
        assert expected in capsys.readouterr().err
        assert sorted(Path(cwd).rglob("*")) == before


def test_a_second_run_skips_the_autograded_students(courses, monkeypatch, capsys):
    """Without --force, does a run again (say, after an interruption) leave the students already autograded be?"""
    from grader import cli

    monkeypatch.chdir(courses["parallel"])
    before = autograded(courses["parallel"])
    hidden = courses["parallel"].parent / "hidden.csv"
    assert cli.main(["autograde", "ps1", "--test-data", str(hidden), "--jobs", "2"]) == 0
    assert f"Skipped {len(CLASS)} already autograded" in capsys.readouterr().out
    assert autograded(courses["parallel"]) == before


def test_an_interrupted_run_resumes(courses, tmp_path):
    """Stopped (as by Ctrl-C) while its workers autograde, does a run leave no autograded folder without its
    grades (a run without --force skips a student whose folder exists), so that running it again autogrades
    the rest and the gradebook holds the grades of serial nbgrader autograde?"""
    course = small_course(tmp_path / "course")

    def interrupt(text):   # called with each student's log, once its grades are written
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        autograde_class("ps1", test_data=courses["hidden"], jobs=2, course=course, log=interrupt)
    folders = {student for student in CLASS if (course / "autograded" / student / "ps1").exists()}
    assert folders <= graded_students(course) and folders != set(CLASS)
    autograde_class("ps1", test_data=courses["hidden"], jobs=2, course=course, log=lambda text: None)
    assert gradebook_grades(course) == gradebook_grades(courses["serial"])


def graded_students(root):
    """The students the course's gradebook holds a submission of."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root}/gradebook.db") as gradebook:
        return {submission.student.id for submission in gradebook.find_assignment("ps1").submissions}


def test_gradebooks_share_one_engine_only_within_shared_engines(tmp_path, monkeypatch):
    from nbgrader.api import Gradebook
    from sqlalchemy.pool import NullPool

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")   # its alembic
    url, engines = f"sqlite:///{tmp_path / 'gradebook.db'}", {}
    with shared_engines(engines):
        with Gradebook(url) as first, Gradebook(url) as second:
            first.add_student("ada")
            assert first.engine is second.engine is engines[url] and second.find_student("ada")
    assert isinstance(engines[url].pool, NullPool)   # no connection outlives its Gradebook
    with Gradebook(url) as outside:   # nbgrader's own again
        assert outside.engine is not engines[url] and outside.find_student("ada")


def test_a_worker_whose_kernels_would_differ_is_refused(monkeypatch):
    """Does the probe every cluster worker runs first name what would make its kernels differ from this
    process's: another training data folder, or no jailed kernelspec?"""
    from grader.cluster_autograde import passed_environment, worker_problem
    from grader.kernel_jail import DATA_ENV, KERNEL_NAME, install

    install()
    here = passed_environment()
    assert worker_problem("jail", here, KERNEL_NAME) is None
    assert "python -m grader.kernel_jail install" in worker_problem("jail", here, "no-such-kernel")
    monkeypatch.setenv(DATA_ENV, "/elsewhere/facial_keypoints")
    problem = worker_problem("jail", here, KERNEL_NAME)
    assert "/elsewhere/facial_keypoints" in problem and "start the worker with the same values" in problem


def test_a_worker_stops_its_autograde_after_the_kernel_step(tmp_path):
    """A step-2 worker keeps only what the kernel's step records: does its nbgrader stop after JailedExecute
    (nothing after it is kept), while the process that writes the gradebook runs every step?"""
    from grader.class_autograde import nbgrader_api
    from grader.release import REPO_ROOT

    full = nbgrader_api(REPO_ROOT, []).config
    worker = nbgrader_api(REPO_ROOT, [], record=True).config
    steps = full.Autograde.autograde_preprocessors
    assert worker.Replay.record is True and "Replay" not in full
    assert worker.Autograde.autograde_preprocessors == steps[:steps.index("grader.kernel_jail.JailedExecute") + 1]
    assert len(steps) > len(worker.Autograde.autograde_preprocessors) + 3   # LimitOutput, SaveAutoGrades, ...
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")   # nbgrader's own steps: nothing to cut
    assert "autograde_preprocessors" not in nbgrader_api(tmp_path, [], record=True).config.Autograde
