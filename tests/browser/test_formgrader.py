"""
The instructor's path, in a real browser: nbgrader's formgrader in JupyterLab,
over a small term run with the committed nbgrader_config.py.

    generate   the formgrader's "Generate" button, with an instructor's model left
               in the source folder (as validating a source notebook leaves it)
    collect    two students' zips, through `nbgrader zip_collect`:
               alice  everything solved, an untrained model, a written answer
               bob    the release untouched (his TODOs raise), no model
    autograde  `python -m grader autograde --jobs 2`
    grade      alice's written answer (notebook 2's bias_question) by hand, in the
               formgrader, and her total in `nbgrader export` goes up by its points

The students' zips are made with the nbgrader course test's helpers
(tests/grading/test_nbgrader_course.py). Screenshots go to build/browser/<test>/.
"""
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest

from exercise_code.networks import KeypointModel
from exercise_code.util.model_files import save_model
from exercise_code.util.submission import MODEL_ENTRY, create_submission_zip
from grader.release import ASSIGNMENT, REPO_ROOT, SOLUTION_NOTEBOOKS, run_nbgrader
from chromium import new_page
from lab_server import LabServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "grading"))   # the nbgrader course test's helpers
from grading_scenarios import VALID  # noqa: E402
from test_nbgrader_course import student_pack, zip_like_create_submission_zip  # noqa: E402

# One term for the module, autograded in a fixture: a longer time limit for the test that sets it up.
pytestmark = [pytest.mark.slow, pytest.mark.jail, pytest.mark.timeout(600)]

HIDDEN_ROWS = 64
WRITTEN = "bias_question"   # the manually graded cell of notebook 2, worth 1 point
ANSWER = ("Batch norm subtracts each channel's mean, and a bias shifts that mean by exactly itself, "
          "so it is subtracted again. Beta shifts the channel afterwards instead.")
STUDENTS = ("alice", "bob")
# The manual grading page loads MathJax from a CDN (nbconvert's template), which our browser refuses
# (chromium.new_page): its formulas stay TeX source, and formgrade.js's one call to MathJax fails.
OFFLINE = {"errors": {"uncaught: MathJax is not defined"}, "hosts": {"cdnjs.cloudflare.com"}}


@pytest.fixture(scope="module")
def course(tmp_path_factory, isolation):
    """A course folder as an instructor starts a term: the config and the source notebooks, and an
    instructor's model beside them."""
    root = tmp_path_factory.mktemp("formgrader") / "course_root"
    (root / "solutions").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", root)
    shutil.copytree(SOLUTION_NOTEBOOKS, root / "solutions" / ASSIGNMENT)
    save_model(KeypointModel({"channels": [4, 8, 8, 8], "stem": 4}), root / "solutions" / ASSIGNMENT / MODEL_ENTRY)
    # sqlite makes the gradebook, not its folder: before the first generate_assignment, the formgrader's
    # lists fail (a 500, "Loading, please wait..." for ever) unless course/ exists, as nbgrader_config.py says.
    (root / "course").mkdir()
    return root


@pytest.fixture(scope="module")
def formgrader(course, tmp_path_factory):
    """JupyterLab, with nbgrader's formgrader, started in the course folder."""
    with LabServer(course, home=tmp_path_factory.mktemp("lab")) as server:
        yield server


@pytest.fixture(scope="module")
def instructor(browser, formgrader):
    """The instructor's browser tab, logged in to the formgrader (its token sets the login cookie)."""
    page = new_page(browser)
    page.goto(formgrader.url("formgrader/manage_assignments"))
    yield page
    page.context.close()


def open_formgrader(page, server, path):
    """Go to a page of the formgrader and wait for its table to be filled from nbgrader's API."""
    page.goto(f"http://127.0.0.1:{server.port}/formgrader/{path}")
    # #main-table is the table body; while nbgrader's API answers it holds one "Loading, please wait..." cell.
    page.wait_for_selector("#main-table tr:not(:has(td[colspan]))", timeout=60_000)


@pytest.fixture(scope="module")
def generated(course, formgrader, instructor):
    """Click "Generate" for the assignment in Manage Assignments; returns the dialog's text."""
    open_formgrader(instructor, formgrader, "manage_assignments")
    row = instructor.locator("#main-table tr", has=instructor.locator("td.name", has_text=ASSIGNMENT))
    row.locator("td.assign a").click()
    dialog = instructor.locator("#success-modal, #error-modal")
    dialog.wait_for(timeout=120_000)   # generate_assignment in the server's process: a few seconds
    instructor.wait_for_timeout(500)   # the dialog's fade-in
    return {"id": dialog.get_attribute("id"), "text": dialog.inner_text(), "log": formgrader.log()}


def unexpected_errors(page):
    """The page's JavaScript errors and refused requests but those of OFFLINE."""
    return ([error for error in page.errors if error not in OFFLINE["errors"]]
            + [url for url in page.blocked if urlsplit(url).hostname not in OFFLINE["hosts"]])


def nbgrader_env(data_dir):
    env = {key: value for key, value in os.environ.items() if key != "NBGRADER_EXECUTION"}
    env.update(FACIAL_KEYPOINTS_DIR=str(data_dir), MPLBACKEND="Agg",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return env


def export(course, env, name):
    """`nbgrader export` to course_root/<name>; returns {student: row}."""
    run_nbgrader(["export", "--to", str(course / name)], cwd=course, env=env)
    with (course / name).open(newline="") as f:
        return {row["student_id"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def autograded(course, generated, data_dir, test_data_dir, solved_workspace, tmp_path_factory):
    """The class's zips collected and autograded (after the formgrader generated the release);
    returns the export before any grading by hand."""
    assert generated["id"] == "success-modal", generated["text"]
    tmp = tmp_path_factory.mktemp("class")
    archive = course / "course" / "downloaded" / ASSIGNMENT / "archive"
    archive.mkdir(parents=True)
    alice = solved_workspace(tmp / "alice")
    notebook = nbformat.read(alice / ASSIGNMENT / "2_spatial_batchnorm.ipynb", as_version=4)
    next(cell for cell in notebook.cells if cell.get("id") == WRITTEN).source = ANSWER
    nbformat.write(notebook, alice / ASSIGNMENT / "2_spatial_batchnorm.ipynb")
    create_submission_zip("alice", model_path=save_model(KeypointModel(VALID), alice / MODEL_ENTRY),
                          out_dir=archive, pack_root=alice)
    zip_like_create_submission_zip(student_pack(tmp / "bob"), "bob", archive)

    hidden = tmp / "hidden" / "test.csv"   # outside the course folders, as the config asks
    hidden.parent.mkdir()
    lines = (test_data_dir / "test.csv").read_text().splitlines(keepends=True)
    hidden.write_text("".join(lines[: HIDDEN_ROWS + 1]))
    env = nbgrader_env(data_dir)
    run_nbgrader(["zip_collect", ASSIGNMENT, "--force"], cwd=course, env=env)
    started = time.perf_counter()
    autograde = subprocess.run([sys.executable, "-m", "grader", "autograde", ASSIGNMENT, "--force", "--jobs", "2",
                                "--test-data", str(hidden)], cwd=course, env=env, capture_output=True, text=True,
                               timeout=400)
    assert autograde.returncode == 0, autograde.stdout + autograde.stderr
    print(f"\nautograde of {len(STUDENTS)} students: {time.perf_counter() - started:.0f} s")   # pytest -s
    return {"env": env, "export": export(course, env, "grades_autograded.csv")}


def test_generate_in_the_formgrader_releases_no_instructor_model(course, generated, instructor, screenshot):
    """Does the formgrader's Generate button make the release, with both notebooks and without the
    instructor's model left in the source folder?"""
    screenshot(instructor, "generated")
    assert generated["id"] == "success-modal", generated["text"] + generated["log"][-3000:]
    assert f"Successfully created the student version of '{ASSIGNMENT}'" in generated["text"]
    release = course / "course" / "release" / ASSIGNMENT
    assert sorted(p.name for p in release.glob("*.ipynb")) == ["1_facial_keypoints.ipynb", "2_spatial_batchnorm.ipynb"]
    instructor_model = (course / "solutions" / ASSIGNMENT / MODEL_ENTRY).read_bytes()   # still in the source
    assert not (release / MODEL_ENTRY).parent.exists()
    for path in release.rglob("*"):
        assert not (path.is_file() and path.read_bytes() == instructor_model), path
    assert not unexpected_errors(instructor), unexpected_errors(instructor)


def test_the_formgrader_shows_the_assignment_and_its_submissions(formgrader, autograded, instructor, screenshot):
    """After autograde, does Manage Assignments count two submissions, and do both students' autograded
    submissions, with their scores, show in the assignment's list?"""
    open_formgrader(instructor, formgrader, "manage_assignments")
    row = instructor.locator("#main-table tr", has=instructor.locator("td.name", has_text=ASSIGNMENT))
    assert row.locator("td.status").inner_text().strip() in ("draft", "released")
    assert row.locator("td.num-submissions").inner_text().strip() == "2"
    screenshot(instructor, "assignments")

    row.locator("td.num-submissions a").click()
    instructor.wait_for_selector("#main-table tr td.student-id", timeout=60_000)
    rows = {instructor.locator("#main-table tr").nth(i).locator("td.student-id").inner_text().strip():
            instructor.locator("#main-table tr").nth(i) for i in range(len(STUDENTS))}
    assert sorted(rows) == list(STUDENTS)
    for student, row in rows.items():
        # Autograded. alice's written answer waits for us (the next test grades it); bob left his
        # untouched, and nbgrader gives an unchanged answer 0 by itself.
        expected = {"alice": {"needs manual grading", "graded"}, "bob": {"graded"}}[student]
        assert row.locator("td.status").inner_text().strip() in expected, student
        score = row.locator("td.score").inner_text()
        assert float(score.split("/")[0]) == float(autograded["export"][student]["score"]), (student, score)
    screenshot(instructor, "submissions")
    assert not unexpected_errors(instructor), unexpected_errors(instructor)


def test_grading_a_written_answer_by_hand_raises_the_students_total(course, formgrader, autograded, instructor,
                                                                    screenshot):
    """When the instructor gives alice's written answer its point in the formgrader, does her total in
    `nbgrader export` go up by that point, and bob's stay as it was?"""
    before = autograded["export"]
    open_formgrader(instructor, formgrader, f"manage_students/alice/{ASSIGNMENT}")
    instructor.locator("#main-table tr td.name a", has_text="2_spatial_batchnorm").click()
    answer = instructor.locator(".nbgrader_cell", has=instructor.locator(f"input#{WRITTEN}"))
    answer.wait_for(timeout=60_000)
    assert ANSWER[:60] in answer.inner_text()   # the instructor reads what alice wrote
    score = answer.locator(f"input#{WRITTEN}")
    assert score.input_value() == ""   # not graded yet: autograde leaves it to us
    # The cell's inputs save once the page has fetched the grades and bound them, which gives the extra
    # credit field its placeholder; a score typed before that is never sent (the page was slow under load).
    answer.locator(f"input#{WRITTEN}_extra_credit[placeholder]").wait_for(state="attached", timeout=60_000)
    score.fill("1")
    score.press("Tab")   # the formgrader saves a score when the field changes
    answer.locator(".score-saved").wait_for(state="visible", timeout=30_000)
    answer.scroll_into_view_if_needed()
    screenshot(instructor, "graded_by_hand")

    open_formgrader(instructor, formgrader, f"manage_submissions/{ASSIGNMENT}")
    status = {student: instructor.locator("#main-table tr", has=instructor.locator("td.student-id", has_text=student))
              .locator("td.status").inner_text().strip() for student in STUDENTS}
    assert status == {"alice": "graded", "bob": "graded"}
    screenshot(instructor, "submissions_after")

    after = export(course, autograded["env"], "grades_graded.csv")
    assert float(after["alice"]["score"]) == pytest.approx(float(before["alice"]["score"]) + 1)
    assert float(after["alice"]["max_score"]) == float(before["alice"]["max_score"])
    assert after["bob"]["score"] == before["bob"]["score"]
    assert not unexpected_errors(instructor), unexpected_errors(instructor)
