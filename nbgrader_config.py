"""
The nbgrader course of this pack. Run every nbgrader command from the repo root.

    solutions/exercise_09/        source notebooks (nbgrader's "source" step)
    course/release/exercise_09/   what generate_assignment makes of them (same as exercise_09/)
    course/downloaded/exercise_09/archive/   the submission zips you collect
    course/submitted/, course/autograded/, course/feedback/, course/gradebook.db
    course/model_grades/          the grader's result for each model (JSON, grades.csv, leaderboard.md)

course/ is git-ignored: it holds your students' work. The README's instructors'
section walks a whole term. Every setting here is there for a reason found by
running nbgrader 0.9.6; the comments say which. Loading this file changes nothing:
no folder is made, no sys.path edited (the pack is installed), and nothing depends
on which command started nbgrader.
"""
from pathlib import Path

from nbgrader.converters import GenerateAssignment

from grader.nbgrader_plugins import SUBMISSION_FILE_REGEXP
from grader.trusted import ASSIGNMENT, MODEL_ENTRY

HERE = Path(__file__).resolve().parent

c = get_config()  # noqa: F821 (nbgrader's config loader provides it)

# --- Directories: the source notebooks live in solutions/, everything of the term in course/.
c.CourseDirectory.root = str(HERE)
c.CourseDirectory.course_id = "facial_keypoints"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "course/release"
c.CourseDirectory.submitted_directory = "course/submitted"
c.CourseDirectory.autograded_directory = "course/autograded"
c.CourseDirectory.feedback_directory = "course/feedback"
c.CourseDirectory.db_url = f"sqlite:///{HERE / 'course' / 'gradebook.db'}"
c.ZipCollectApp.downloaded_directory = "course/downloaded"


def make_course_folder(**_):
    """sqlite creates the gradebook, not its folder: nbgrader calls this before it converts
    (and so before it opens the gradebook). On a fresh clone, generate_assignment is the
    first command, from the command line or the formgrader; `nbgrader db ...` or the
    formgrader's lists before it find no course/ yet, and the formgrader then shows
    "Loading, please wait..." for ever (mkdir course; the README says so). Reading this
    config never creates anything (tests/grading/test_nbgrader_config.py)."""
    (HERE / "course").mkdir(exist_ok=True)

c.BaseConverter.pre_convert_hook = make_course_folder
# generate_assignment copies every other file of the source folder into the release: an
# instructor's model (validating a source notebook writes one) must not be released.
# CourseDirectory.ignore cannot say so, as autograde would then drop each student's model;
# WithholdFromRelease is a step of the generate pipeline, whatever starts it (the command
# line, the formgrader, nbgrader's API).
c.GenerateAssignment.preprocessors = [
    "grader.nbgrader_plugins.WithholdFromRelease",
    *GenerateAssignment.class_traits()["preprocessors"].default(),   # nbgrader's own, in its order
]

# --- Collecting: create_submission_zip(student_id) writes <student_id>_exercise_09.zip holding
# exercise_09/*.ipynb, exercise_code/**/*.py and models/keypoint_model.pt. The regexp maps
# them into the assignment folder (notebooks at its top, exercise_code/ and models/ beside
# them). Without a regexp zip_collect collects nothing and still exits 0; without
# valid_ext it collects notebooks only.
c.FileNameCollectorPlugin.named_regexp = SUBMISSION_FILE_REGEXP
c.FileNameCollectorPlugin.valid_ext = [".ipynb", ".py", ".pt"]

# --- Autograding.
# Autograde copies every non-notebook file of the source folder over the student's files;
# a model left there (say by validating a source notebook) must never replace theirs.
c.Autograde.exclude_overwriting = {ASSIGNMENT: [MODEL_ENTRY]}
# Per cell. Graded runs never train (the notebooks check NBGRADER_EXECUTION), so no
# cell needs long; one that does is stuck. grader.nbgrader_plugins.FlaggedCsvExport
# marks submissions whose autograde did not finish, which nbgrader's CSV shows as 0.0.
c.Execute.timeout = 120
# Every point comes from trusted code, never from the student's kernel (which can make
# any later cell pass). TrustedGrades, first, grades the submitted folder in nbgrader's
# own process before the notebook's kernel starts: the check cells by running the
# student's functions in the jail on the grader's inputs, the model_score cell with the
# grader. Then the notebook runs, each kernel jailed (grader/kernel_jail.py), for the
# student's feedback. WriteTrustedGrades then puts the points in the cells.
c.Autograde.autograde_preprocessors = [
    "grader.nbgrader_plugins.TrustedGrades",
    "grader.kernel_jail.JailedExecute",
    "grader.nbgrader_plugins.WriteTrustedGrades",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# nbconvert checks the whole notebook against nbformat's schema after each of a conversion's
# steps (13 per notebook in autograde); checking once, after the last, refuses the same broken
# notebooks, a tenth of a second sooner per student.
c.Exporter.optimistic_validation = True
# The hidden test split (a CSV, or a folder holding test.csv) stays out of this file, out
# of course/ and out of every environment variable: give it on the command line,
#     nbgrader autograde exercise_09 --TrustedGrades.test_data=/somewhere/test.csv
# where only nbgrader's own process sees it (kernels run in a PID namespace of their own).
c.TrustedGrades.results_dir = str(HERE / "course" / "model_grades")
# Student code runs jailed; autograde refuses if the jail cannot start. The only way out
# is by name, and the export's isolation column then says "none":
#     c.StudentCodeIsolation.isolation = "none"

# --- Feedback: without ClearHiddenTests the feedback HTML shows the hidden tests' source.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# --- Export: nbgrader's CSV plus a column that flags submissions autograde could not finish.
c.ExportApp.plugin_class = "grader.nbgrader_plugins.FlaggedCsvExport"
