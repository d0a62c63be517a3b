"""
The nbgrader course end to end, with the committed nbgrader_config.py.

A small class of submission zips, laid out the way create_submission_zip lays
them out, goes through `nbgrader zip_collect`, `python -m grader autograde` (the
class autograde; test_class_autograde.py holds it equal to plain `nbgrader
autograde`), `nbgrader generate_feedback` and `export` in a scratch copy of the course:

    alice  a complete solution
    frank  a complete solution plus a cell that never finishes and ignores interrupts

and the hostile class of hostile_students.py: mallory (steals labels, vandalizes),
trudy (her TODOs untouched; makes every cell "pass"), oscar (network, fork and memory bombs) and
hoarder (weights smuggled as a buffer). Every point must come from trusted code,
each student must get exactly what their real work earns, and nothing outside
the jail may change.

An instructor's model is left in the source folder, as validating a source
notebook would leave it; it must reach neither the release nor any student.
"""
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
import torch

from exercise_code.data import FacialKeypointsDataset
from exercise_code.evaluation import evaluate_model
from exercise_code.util.model_files import save_model
from exercise_code.networks import KeypointModel
from exercise_code.util.submission import MODEL_ENTRY, create_submission_zip, submission_files
from grader.nbgrader_plugins import SUBMISSION_FILE_REGEXP, hidden_data_problem
from grader.release import (ASSIGNMENT, REPO_ROOT, SOLUTION_NOTEBOOKS, STUDENT_NOTEBOOKS, 
                            run_nbgrader)
from grading_scenarios import VALID
from hostile_students import Listener, MARKER, SAFETY_CATCH, build_hostile

# The whole term runs once, in the first test's setup (2 to 3 minutes on 2 cores): a longer time limit.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

HIDDEN_ROWS = 64
CELL_TIMEOUT_S = 20   # oscar's cell of bombs needs about 10 s; frank's never ends
JOBS = 2
NEVER_ENDS = ("import signal, time\n"
              "signal.signal(signal.SIGINT, signal.SIG_IGN)   # ignores the interrupt nbgrader sends\n"
              "while True:\n"
              "    time.sleep(0.1)\n")


def zip_like_create_submission_zip(pack_root, student_id, out_dir, model_path=None):
    """The zip create_submission_zip writes, for work it would refuse (no model, a model over the limits)."""
    files, _ = submission_files(pack_root)
    if model_path is not None:
        files.append((Path(model_path), MODEL_ENTRY))
    zip_path = Path(out_dir) / f"{student_id}_{ASSIGNMENT}.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, name in files:
            archive.write(path, name)
    return zip_path


def student_pack(root):
    """The student release as handed out: exercise_code/ and exercise_09/ with their TODOs."""
    root.mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "exercise_code", root / "exercise_code",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(STUDENT_NOTEBOOKS, root / "exercise_09")
    return root


def build_class(work, archive, model, solved_workspace):
    """Write each student's zip into archive/; return {student: the model they submitted, or None}."""
    models = {}
    for student in ("alice", "frank"):
        pack = solved_workspace(work / student)
        submitted = KeypointModel({**VALID, "flip_test": student == "frank"})   # frank's model is not alice's
        submitted.load_state_dict(model.state_dict())
        if student == "frank":
            notebook_path = pack / ASSIGNMENT / "1_facial_keypoints.ipynb"
            notebook = nbformat.read(notebook_path, as_version=4)
            notebook.cells.append(nbformat.v4.new_code_cell(NEVER_ENDS))
            nbformat.write(notebook, notebook_path)
        path = save_model(submitted.eval(), pack / MODEL_ENTRY)
        create_submission_zip(student, model_path=path, out_dir=archive, pack_root=pack)
        models[student] = submitted.eval()

    return models


def build_hostile_class(work, archive, model, port, solved_workspace):
    """Write the hostile students' zips into archive/; return {student: the model they submitted, or None}."""
    pack = solved_workspace(work / "mallory")
    build_hostile("mallory", pack)
    untrained = KeypointModel(VALID).eval()   # her real work: no training at all
    zip_like_create_submission_zip(pack, "mallory", archive, save_model(untrained, pack / MODEL_ENTRY))

    pack = student_pack(work / "trudy")
    build_hostile("trudy", pack)
    zip_like_create_submission_zip(pack, "trudy", archive)

    pack = solved_workspace(work / "oscar")
    build_hostile("oscar", pack, port=port)
    create_submission_zip("oscar", model_path=save_model(model, pack / MODEL_ENTRY), out_dir=archive, pack_root=pack)

    pack = solved_workspace(work / "hoarder")
    build_hostile("hoarder", pack)
    hoarding = KeypointModel(VALID)
    hoarding.load_state_dict(model.state_dict())
    hoarding.register_buffer("hoard", torch.zeros(6_000_000, dtype=torch.float16))   # as his patched class has it
    zip_like_create_submission_zip(pack, "hoarder", archive, save_model(hoarding, pack / MODEL_ENTRY))
    return {"mallory": untrained, "trudy": None, "oscar": model, "hoarder": None}


def fingerprint(*folders, skip=()):
    """{path: SHA-256} of every file below the folders, except below the `skip` folders."""
    out = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file() and not any(path.is_relative_to(s) for s in skip):
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def course(tmp_path_factory, data_dir, val_set, test_data_dir, valid_model, isolation, solved_workspace):
    """Run the whole term once, honest and hostile students together; return what the tests look at.
    (val_set: its cache is then in data_dir, as on an instructor's machine; kernels may not write it.)"""
    tmp = tmp_path_factory.mktemp("term")
    root = tmp / "course_root"
    (root / "solutions").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", root)
    shutil.copytree(SOLUTION_NOTEBOOKS, root / "solutions" / ASSIGNMENT)
    instructor_model = save_model(KeypointModel({"channels": [4, 8, 8, 8], "stem": 4}),
                                  root / "solutions" / ASSIGNMENT / MODEL_ENTRY)

    hidden = tmp / "hidden" / "test.csv"   # outside the course folders, as the config asks
    hidden.parent.mkdir()
    lines = (test_data_dir / "test.csv").read_text().splitlines(keepends=True)
    hidden.write_text("".join(lines[: HIDDEN_ROWS + 1]))

    env = {key: value for key, value in os.environ.items() if key != "NBGRADER_EXECUTION"}
    env.update(FACIAL_KEYPOINTS_DIR=str(data_dir), MPLBACKEND="Agg",
               # An instructor who still exports the hidden data's path, as an old README said: mallory
               # reads every process's environment, so it must not help her.
               FACIAL_KEYPOINTS_HIDDEN_TEST=str(hidden))

    def nbgrader(*args, check=True, **extra_env):
        return run_nbgrader(list(args), cwd=root, env={**env, **extra_env}, check=check)

    nbgrader("generate_assignment", ASSIGNMENT, "--force")
    archive = root / "course" / "downloaded" / ASSIGNMENT / "archive"
    archive.mkdir(parents=True)
    listener = Listener()   # oscar dials it
    models = build_class(tmp / "students", archive, valid_model, solved_workspace)
    models.update(build_hostile_class(tmp / "students", archive, valid_model, listener.port, solved_workspace))
    collect = nbgrader("zip_collect", ASSIGNMENT, "--force")
    course_dir = root / "course"
    (course_dir / SAFETY_CATCH).touch()   # mallory may try her worst here
    # What no student may change: every file but those autograde itself writes, the hidden data, the data.
    untouchable = [course_dir, hidden.parent, data_dir]
    written_by_autograde = [course_dir / "autograded", course_dir / "model_grades", course_dir / "gradebook.db"]
    before = fingerprint(*untouchable, skip=written_by_autograde)
    start = time.perf_counter()
    # The class autograde (JOBS students at once); test_class_autograde.py holds it to plain nbgrader autograde.
    autograde = subprocess.run([sys.executable, "-m", "grader", "autograde", ASSIGNMENT, "--force", "--jobs", str(JOBS),
                                "--test-data", str(hidden), "--", f"--Execute.timeout={CELL_TIMEOUT_S}"],
                               cwd=root, env={**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"},
                               capture_output=True, text=True, timeout=800)
    autograde_s = time.perf_counter() - start
    print(f"\nautograde of {len(models)} students, {JOBS} jobs: {autograde_s:.1f} s\n{autograde.stdout}")   # pytest -s
    after = fingerprint(*untouchable, skip=written_by_autograde)
    connections = listener.connections()
    with ThreadPoolExecutor(2) as pool:   # both only read the gradebook: at once
        list(pool.map(lambda args: nbgrader(*args), [("generate_feedback", ASSIGNMENT, "--force"),
                                                      ("export", "--to", str(root / "grades.csv"))]))
    with (root / "grades.csv").open(newline="") as f:
        export = {row["student_id"]: row for row in csv.DictReader(f)}
    return {"root": root, "hidden": hidden, "models": models, "instructor_model": instructor_model,
            "collect_log": collect.stdout + collect.stderr, "autograde_log": autograde.stdout + autograde.stderr,
            "export": export, "before": before, "after": after, "connections": connections,
            "untouchable": untouchable, "autograde_s": autograde_s}


def grades(course, student):
    """{grade_id: (score, max_score)} of one student's autograded cells, from the gradebook."""
    from nbgrader.api import Gradebook

    db_url = f"sqlite:///{course['root'] / 'course' / 'gradebook.db'}"
    out = {}
    with Gradebook(db_url) as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                if grade.auto_score is not None:
                    out[grade.name] = (grade.score, grade.max_score)
    return out


def trusted_points(course, student):
    """{grade_id: points} of a student's autograded cells (the written answer, graded by hand, left out)."""
    return {cell: score for cell, (score, _) in grades(course, student).items() if cell in FULL}


def model_score_output(course, student):
    """The text the model_score cell shows in the student's autograded notebook."""
    return cell_output(course, student, "model_score")


def cell_output(course, student, cell_id, notebook="1_facial_keypoints.ipynb"):
    """All the text a cell shows in the student's autograded notebook (the grader's, then the kernel's)."""
    path = course["root"] / "course" / "autograded" / student / ASSIGNMENT / notebook
    cell = next(c for c in nbformat.read(path, as_version=4).cells if c.get("id") == cell_id)
    return "".join(output.get("text", "") or str(output.get("data", {}).get("text/plain", "")) for output in cell.outputs)


def notebook_text(course, student, notebook="1_facial_keypoints.ipynb"):
    """Every output text of a student's autograded notebook (what their kernel printed)."""
    path = course["root"] / "course" / "autograded" / student / ASSIGNMENT / notebook
    return "\n".join(output.get("text", "") for cell in nbformat.read(path, as_version=4).cells
                     for output in cell.get("outputs", []))


def all_files(folder):
    return [path for path in Path(folder).rglob("*") if path.is_file()]


def test_the_class_autograde_took_every_check_from_the_models_batch(course):
    """Did the process that wrote the gradebook find every submission's trusted checks in its model's result
    (computed by the model's worker, in step 1), running no check worker itself?"""
    found = re.search(r"from the models' results: (\d+) submissions' trusted checks; done again here: (\d+) kernel "
                      r"runs, (\d+) submissions' checks", course["autograde_log"])
    assert found, course["autograde_log"][-3000:]
    assert int(found[1]) > 0 and (int(found[2]), int(found[3])) == (0, 0)


def test_zip_collect_puts_each_file_where_the_notebooks_expect_it(course):
    """Does zip_collect place notebooks, exercise_code/ and models/ in each student's assignment folder?"""
    submitted = course["root"] / "course" / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == sorted(course["models"])
    alice = submitted / "alice" / ASSIGNMENT
    assert (alice / "1_facial_keypoints.ipynb").is_file() and (alice / "2_spatial_batchnorm.ipynb").is_file()
    assert (alice / "exercise_code" / "networks" / "keypoint_nn.py").is_file()
    assert (alice / MODEL_ENTRY).is_file() and not (submitted / "trudy" / ASSIGNMENT / MODEL_ENTRY).exists()


def test_submission_regexp_reads_student_ids_with_underscores():
    """Does the collector's regexp take `jane_doe` from jane_doe_exercise_09.zip, and keep the inner paths?"""
    base = f"/c/downloaded/{ASSIGNMENT}/extracted/jane_doe_{ASSIGNMENT}"
    for inner, file_id in [(f"{ASSIGNMENT}/1_facial_keypoints.ipynb", "1_facial_keypoints.ipynb"),
                           ("exercise_code/networks/keypoint_nn.py", "exercise_code/networks/keypoint_nn.py"),
                           (MODEL_ENTRY, MODEL_ENTRY)]:
        match = re.match(SUBMISSION_FILE_REGEXP, f"{base}/{inner}")
        assert match and match["student_id"] == "jane_doe" and match["file_id"] == file_id


FULL = {"dataset_checks": 5, "model_checks": 5, "model_score": 90, "spatial_batchnorm_forward_checks": 1,
        "spatial_batchnorm_backward_checks": 1}
# What each hostile student's real work earns, cell by cell.
EARNED = {
    "mallory": {**FULL, "model_score": 0},                       # complete code, an untrained model
    "trudy": dict.fromkeys(FULL, 0),                             # nothing done (her own exercise_code is used)
    "oscar": FULL,                                               # everything done
    "hoarder": {**FULL, "model_checks": 0, "model_score": 0},    # a model over the parameter limit
}


@pytest.mark.parametrize("student", sorted(EARNED))
def test_each_hostile_student_gets_exactly_what_their_work_earns(course, student):
    """Cell by cell, is each hostile student's grade what their real work earns, no more, no less?"""
    assert trusted_points(course, student) == EARNED[student]


def test_honest_grades_are_unchanged_by_the_hostile_class(course):
    """Does alice, whose model mallory tried to overwrite, keep full points and her own model's score?"""
    assert trusted_points(course, "alice") == FULL
    hidden = FacialKeypointsDataset(course["hidden"], use_cache=False)
    assert f"{evaluate_model(course['models']['alice'], hidden):.2f}" in model_score_output(course, "alice")


def test_nothing_outside_the_jail_changed(course):
    """Are course/ (but for what autograde writes), the hidden data and the training data as they were?"""
    assert course["after"] == course["before"]
    for folder in course["untouchable"]:
        for path in Path(folder).rglob("*"):
            assert not (path.is_file() and MARKER.encode() in path.read_bytes()), path


def mallory_read(text):
    """The CSVs mallory says she read, and how many of her writes landed, from her line in `text`."""
    found = re.search(r"mallory: read (\[.*?\]); (\d+) writes landed", text)
    assert found, text[-3000:]
    return json.loads(found[1]), int(found[2])


def test_mallory_found_no_labels_and_wrote_nowhere(course):
    """Did mallory's search of every environment, command line and the disk find no hidden CSV, in every jail?"""
    read, landed = mallory_read(notebook_text(course, "mallory"))   # her kernel: it may read the training data
    assert landed == 0 and read and all(Path(p).parent.name == "facial_keypoints" for p in read), read
    result = json.loads((course["root"] / "course" / "model_grades" / "mallory.json").read_text())
    # The model worker: the test images (no labels), and the small CSVs of random faces the grader made for
    # the trusted checks it runs next (grader/trusted_checks.py), in its own work folder. Nothing else.
    read, landed = mallory_read("".join(test["output"] for test in result["tests"]))
    assert landed == 0 and all(Path(p).parent.parts[-3:] == ("work", "checks", "data") for p in read), read
    hidden = FacialKeypointsDataset(course["hidden"], use_cache=False)
    assert f"{evaluate_model(course['models']['mallory'], hidden):.2f}" in model_score_output(course, "mallory")


def test_trudy_swallowed_every_failure_in_her_kernel_but_gets_no_points(course):
    """In trudy's kernel her failing cells "passed" (the transformer worked); did the grader still say FAIL and 0?"""
    path = course["root"] / "course" / "autograded" / "trudy" / ASSIGNMENT / "1_facial_keypoints.ipynb"
    cells = {c.get("id"): c for c in nbformat.read(path, as_version=4).cells}
    for cell_id in ("dataset_checks", "model_checks"):
        grader_text, points, *kernel = cells[cell_id].outputs
        assert not any(output.output_type == "error" for output in kernel), kernel   # the old way: full points
        assert "FAIL " in grader_text.text and points.data["text/plain"] == "0.0"


def test_oscar_reached_no_network_and_hit_the_limits(course):
    """Was oscar's network dial refused, his fork loop stopped by the process limit, his hoard by memory?"""
    said = notebook_text(course, "oscar")
    assert "oscar: network blocked" in said and course["connections"] == 0, said[-3000:]
    forks, refused = map(int, re.search(r"oscar: (\d+) forks, (\d+) refused", said).groups())
    assert forks > 0 and refused > 0 and "oscar: MemoryError after" in said   # both limits held


def test_export_records_the_isolation(course):
    """Does the exported CSV say, for every autograded submission, that its code ran in the jail?"""
    for student, row in course["export"].items():
        assert row["isolation"] == ("jail" if row["autograde_status"] != "not submitted" else ""), (student, row)


def test_complete_solutions_earn_every_autograded_point(course):
    """Do alice and oscar (who tried the jail's limits in a cell of his own) get every autograded point?"""
    for student in ("alice", "oscar"):
        cells = grades(course, student)
        assert "model_score" in cells and "model_checks" in cells, cells
        assert all(score == max_score for score, max_score in cells.values()), (student, cells)
        assert course["export"][student]["autograde_status"] == "ok"


def test_each_student_is_graded_with_their_own_model(course, data_dir):
    """Is each model's score the one evaluate_model gives for that student's own model on the hidden faces?"""
    hidden = FacialKeypointsDataset(course["hidden"], use_cache=False)
    shown = {}
    for student in ("alice", "frank"):   # frank's kernel hung, after the grader had scored his model
        expected = evaluate_model(course["models"][student], hidden)
        text = model_score_output(course, student)
        shown[student] = expected
        assert f"{expected:.2f}" in text or f"{expected:.1f}" in text, (student, expected, text)
    assert shown["alice"] != shown["frank"]


def test_an_oversized_model_earns_no_model_points(course):
    """Does hoarder (over the parameter limit) get 0 for the model, but his dataset points?
    (A missing model: test_trusted_checks.py and the missing_model grading scenario.)"""
    cells = grades(course, "hoarder")
    assert cells["model_score"][0] == 0 and cells["model_checks"][0] == 0, cells
    assert cells["dataset_checks"][0] == cells["dataset_checks"][1], cells
    assert "The model has 6,0" in model_score_output(course, "hoarder")   # the limit's own message


def test_a_cell_that_never_finishes_is_flagged_in_the_export(course):
    """Is frank's stuck notebook FAILED in the export, for the instructor to look at, while his points are
    those of his work (the kernel decides none)?"""
    row = course["export"]["frank"]
    assert row["autograde_status"].startswith("FAILED"), row
    assert trusted_points(course, "frank") == FULL
    assert {row["autograde_status"] for name, row in course["export"].items() if name != "frank"} == {"ok"}


def test_the_instructor_model_is_neither_released_nor_graded(course):
    """Does the model left in the source folder stay out of the release and out of every student's folder?"""
    planted = course["instructor_model"].read_bytes()
    root = course["root"] / "course"
    for folder in ("release", "autograded", "feedback"):
        for path in all_files(root / folder):
            assert path.read_bytes() != planted, path
    assert not (root / "release" / ASSIGNMENT / "models").exists()


def marked_lines(notebooks, begin, end):
    """Lines (stripped, longer than 8 characters) between `### <begin>` and `### <end>` in the notebooks' cells."""
    return {line.strip() for nb in notebooks for cell in nb.cells
            for block in re.findall(rf"### {begin}\n(.*?)### {end}", cell.source, re.S)
            for line in block.splitlines() if len(line.strip()) > 8}


def test_no_solution_hidden_test_or_hidden_data_leaks(course):
    """Do the release and every feedback file hold no solution, no hidden test and nothing of the hidden data?"""
    sources = {p.name: nbformat.read(p, as_version=4) for p in SOLUTION_NOTEBOOKS.glob("*.ipynb")}
    hidden_lines = marked_lines(sources.values(), "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")   # none today
    hidden_rows = course["hidden"].read_text().splitlines()[1:4]   # the header is public; the rows are not
    root = course["root"] / "course"
    released = all_files(root / "release")
    feedback = all_files(root / "feedback")
    assert any(p.suffix == ".html" for p in feedback)
    for path in released + feedback:
        text = path.read_bytes().decode("utf-8", errors="replace")
        assert "BEGIN HIDDEN TESTS" not in text and not any(line in text for line in hidden_lines), path
        assert not any(row[:200] in text for row in hidden_rows), path
        assert path.name != "test.csv", path
    for path in released:   # each notebook against its own solutions (one's solution may be another's given code)
        solution_lines = marked_lines([sources[path.name]], "BEGIN SOLUTION", "END SOLUTION")
        assert solution_lines and not any(line in path.read_text() for line in solution_lines), path


@pytest.mark.parametrize("test_data, data_dir, refused", [
    ("/d/facial_keypoints_test/test.csv", "/d/facial_keypoints", False),   # siblings, as the README lays them out
    ("/d/facial_keypoints_test/test.csv", "/d", True),                     # the kernels' data folder holds both
    ("/d/hidden", "/d/hidden/../hidden", True),                            # the same folder, spelled otherwise
    ("/d/facial_keypoints_test/test.csv", None, False),                    # no data folder shown at all
])
def test_hidden_data_must_stay_out_of_the_kernels_data_folder(test_data, data_dir, refused):
    """Would autograde refuse to run when the training data folder every kernel sees holds the hidden split?"""
    problem = hidden_data_problem(test_data, data_dir)
    assert bool(problem) is refused and (not refused or "every kernel can read" in problem)
