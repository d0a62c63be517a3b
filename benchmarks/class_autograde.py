"""
Autograding a class: plain `nbgrader autograde` against `python -m grader autograde --jobs 2`.

    python benchmarks/class_autograde.py [--students N] [--jobs J] [--data DIR] [--test-data PATH] [--rows N]

Builds the pack's own nbgrader course in a scratch folder (the committed
nbgrader_config.py and source notebooks), N students each submitting the solved
work and a model with random weights, collected with `nbgrader zip_collect`;
every third student's model does not import (BROKEN), so valid and failing
submissions are mixed. Two copies of the course are autograded, one each way, in
the same run. Prints the seconds of each, the speed-up, and where a student's time
goes, and checks (exit 1 if one fails): the gradebooks hold the same grade in
every cell, J jobs are at least TARGET_SPEEDUP as fast as plain nbgrader, and the
per-student overhead is under TARGET_OVERHEAD_S.

The per-student overhead is everything but the student's own notebook cells and
the model's inference: the run's worker-seconds (wall-clock x jobs) per student,
less the cells' time (nbclient's timings in the autograded notebooks) and the
inference time (the grader's results). It holds the kernels' start, the trusted
checks, nbgrader's bookkeeping, the model's grading apart from its inference, and
the run's own start (imports, workers), shared by the class.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime
from pathlib import Path

import nbformat

from benchmarks.grading import DEFAULT_HPARAMS, make_submissions
from benchmarks.targets import report
from exercise_code.util.layout import ASSIGNMENT, default_data_dir
from grader.release import REPO_ROOT, SOLUTION_NOTEBOOKS, run_nbgrader

TARGET_SPEEDUP = 1.8      # 2 jobs on 2 cores
TARGET_OVERHEAD_S = 2.0   # per student, with J jobs
BROKEN = ("exercise_code/networks/keypoint_nn.py", "raise ImportError('a bug of the student')\n")


def build_course(root, students, test_csv, rows):
    """The course in root: generated, the class's zips collected; returns the hidden test CSV (first `rows` faces)."""
    (root / "solutions").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", root)
    shutil.copytree(SOLUTION_NOTEBOOKS, root / "solutions" / ASSIGNMENT)
    run_nbgrader(["generate_assignment", ASSIGNMENT, "--force"], cwd=root)
    archive = root / "course" / "downloaded" / ASSIGNMENT / "archive"
    (root.parent / "zips").mkdir()
    zips, _ = make_submissions(root.parent / "zips", students, DEFAULT_HPARAMS)
    for path in sorted(zips.glob("*.zip"))[2::3]:
        break_submission(path)
    archive.parent.mkdir(parents=True)
    shutil.copytree(zips, archive)
    run_nbgrader(["zip_collect", ASSIGNMENT, "--force"], cwd=root)
    hidden = root.parent / "hidden" / "test.csv"   # outside the course, as the config asks
    hidden.parent.mkdir()
    lines = Path(test_csv).read_text().splitlines(keepends=True)
    hidden.write_text("".join(lines[: rows + 1]))
    return hidden


def break_submission(path):
    """Rewrite a submission zip with its model's code replaced by BROKEN's."""
    name, code = BROKEN
    with zipfile.ZipFile(path) as archive:
        files = {info.filename: archive.read(info) for info in archive.infolist()}
    files[name] = code.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for filename, data in files.items():
            archive.writestr(filename, data)


def student_seconds(root):
    """(mean seconds per student of its notebooks' cells, of its model's inference), from the autograded course."""
    def at(stamp):
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    cells, inference = {}, {}
    for path in (root / "course" / "autograded").glob("*/*/*.ipynb"):
        student = path.parents[1].name
        for cell in nbformat.read(path, as_version=4).cells:
            timing = cell.get("metadata", {}).get("execution", {})
            if "shell.execute_reply" in timing and "iopub.execute_input" in timing:
                cells[student] = cells.get(student, 0.0) + (
                    at(timing["shell.execute_reply"]) - at(timing["iopub.execute_input"])).total_seconds()
    for path in (root / "course" / "model_grades").glob("*.json"):
        worker = json.loads(path.read_text())["extra_data"].get("timings", {}).get("worker") or {}
        inference[path.stem] = worker.get("predict_s", 0.0)   # none for a model that never ran
    return statistics.mean(cells.values()), sum(inference.values()) / max(len(cells), 1)


def cell_grades(root):
    """{(student, notebook, cell): score} of the course's gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'course' / 'gradebook.db'}") as gradebook:
        return {(submission.student.id, notebook.name, grade.name): grade.score
                for submission in gradebook.find_assignment(ASSIGNMENT).submissions
                for notebook in submission.notebooks for grade in notebook.grades}


def timed(argv, cwd, env):
    start = time.perf_counter()
    run = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if run.returncode != 0:   # its whole output goes to a file: the first error is rarely in the tail
        fd, log = tempfile.mkstemp(prefix="class-autograde-failed-", suffix=".log")
        with os.fdopen(fd, "w") as f:
            f.write(f"{run.stdout}\n--- stderr ---\n{run.stderr}")
        sys.exit(f"{' '.join(map(str, argv[:4]))} failed (all its output: {log}):\n{run.stdout[-3000:]}"
                 f"{run.stderr[-3000:]}")
    return time.perf_counter() - start, run.stdout


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--data", type=Path, default=default_data_dir(), help="the training data the kernels load")
    parser.add_argument("--test-data", type=Path, default=REPO_ROOT / "datasets" / "facial_keypoints_test" / "test.csv")
    parser.add_argument("--rows", type=int, default=64, help="hidden test faces the models are scored on")
    args = parser.parse_args(argv)
    if not (args.data / "training.csv").is_file() or not args.test_data.is_file():
        sys.exit(f"Needs the training data in {args.data} and the hidden test CSV {args.test_data}: "
                 "get them with python -m exercise_code.util.download (see the README)")
    with tempfile.TemporaryDirectory(prefix="class-autograde-bench-") as tmp:
        serial = Path(tmp) / "serial" / "course_root"
        serial.parent.mkdir()
        print(f"Building a course of {args.students} students ...")
        hidden = build_course(serial, args.students, args.test_data, args.rows)
        parallel = Path(tmp) / "parallel" / "course_root"
        shutil.copytree(serial.parent, parallel.parent, dirs_exist_ok=True)   # its config finds its own folder
        env = {**os.environ, "FACIAL_KEYPOINTS_DIR": str(args.data.resolve()), "MPLBACKEND": "Agg",
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        plain_s, _ = timed([sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT,
                            f"--TrustedGrades.test_data={hidden}"], serial, env)
        ours_s, said = timed([sys.executable, "-m", "grader", "autograde", ASSIGNMENT, "--test-data", str(hidden),
                              "--jobs", str(args.jobs)], parallel, env)
        same = cell_grades(serial) == cell_grades(parallel) and cell_grades(serial)
        scored = sum(json.loads(path.read_text())["extra_data"]["raw_score"] is not None
                     for path in (parallel / "course" / "model_grades").glob("*.json"))
        overheads = {}
        for name, root, seconds, jobs in [("plain nbgrader autograde", serial, plain_s, 1),
                                          (f"python -m grader autograde --jobs {args.jobs}", parallel, ours_s,
                                           args.jobs)]:
            cells_s, inference_s = student_seconds(root)
            overheads[name] = seconds * jobs / args.students - cells_s - inference_s
            print(f"{name}: {seconds:.1f} s ({seconds / args.students:.1f} s per student); per student "
                  f"{seconds * jobs / args.students:.1f} worker-seconds = cells {cells_s:.1f} + inference "
                  f"{inference_s:.2f} + overhead {overheads[name]:.1f}")
    print(said.strip())
    print(f"{args.students} students ({scored} models scored, the rest do not import); speed-up {plain_s / ours_s:.2f}x "
          f"on {os.cpu_count()} cores")
    return report([("the same grade in every cell of the gradebook", bool(same)),
                   (f"{args.jobs} jobs at least {TARGET_SPEEDUP}x as fast as plain nbgrader autograde",
                    plain_s / ours_s >= TARGET_SPEEDUP),
                   (f"per-student overhead with {args.jobs} jobs under {TARGET_OVERHEAD_S:g} s",
                    overheads[name] < TARGET_OVERHEAD_S)])


if __name__ == "__main__":
    sys.exit(main())
