"""
The grades that go into a course's own gradebook (canvas.py, moodle.py), read
from either place the pack writes them:

    a results folder   python -m grader grade ... --out DIR: DIR/<name>.json per submission
    nbgrader's CSV     nbgrader export: grades.csv, one row per student and assignment

Both become a list of Grade. The platform adapters match them to their rows by
the names a Grade goes by (Grade.names) and never read either source themselves.
"""
import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from exercise_code.util.layout import ASSIGNMENT

from ..results import CSV_COLUMNS, read_results

# The columns `nbgrader export` writes (nbgrader.plugins.export.CsvExportPlugin); the pack's
# FlaggedCsvExport adds autograde_status and isolation.
NBGRADER_COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                    "raw_score", "late_submission_penalty", "score", "max_score"]


class GradebookError(ValueError):
    """Input that cannot fill a gradebook; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Grade:
    """
    One student's points, from either source.

    - name: The submission's name (results folder) or nbgrader's student_id
    - points: Points earned, out of max_points
    - max_points: Points for a full score in the source
    - email: nbgrader's email for the student, or None
    - source: Where the grade was read (a file, or a file and its line), for messages
    - feedback: What the student should read beside the grade (the result's summary), or None
    """
    name: str
    points: float
    max_points: float
    email: str | None = None
    source: str = ""
    feedback: str | None = None

    def names(self):
        """Every identifier this grade may be filed under: the name itself, the name without the
        `_exercise_09` that create_submission_zip appends, and the email."""
        names = [self.name, self.name.removesuffix(f"_{ASSIGNMENT}")]
        return [n for n in dict.fromkeys(names + [self.email or ""]) if n]

    def __repr__(self):
        return f"Grade({self.name!r}, {self.points:g}/{self.max_points:g})"


def read_grades(source, *, assignment=None):
    """
    Read the grades of one assignment.

    Inputs:
    - source: A results folder of `python -m grader grade`, or the CSV of `nbgrader export`
    - assignment: nbgrader's assignment name; needed when the CSV holds several assignments

    Returns:
    - A list of Grade, sorted by name

    Raises GradebookError, saying what to pass instead, for a missing or unreadable source,
    one with no grades, or an nbgrader CSV whose assignment is ambiguous.
    """
    source = Path(source)
    if source.is_dir():
        if assignment is not None:
            raise GradebookError(f"--assignment picks rows of nbgrader's CSV; {source} is a results folder, "
                                 "which holds one assignment. Leave --assignment out.")
        return _from_results(source)
    if source.is_file():
        return _from_nbgrader_csv(source, assignment)
    raise GradebookError(f"{source}: no such file or folder. Pass the results folder of python -m grader grade "
                         "(its --out) or the grades.csv of nbgrader export.")


def _from_results(folder):
    results = read_results(folder)
    if not results:
        raise GradebookError(f"{folder} holds no results of the grader (<name>.json files). Pass the --out folder "
                             "of python -m grader grade.")
    grades = []
    for result in results:
        if result.extra.get("grader_error"):
            # A zero the student did not earn: `python -m grader grade` grades these again on its next run.
            raise GradebookError(f"{folder / result.submission}.json: the grader itself failed on this submission "
                                 "(not the student's fault), so its 0 points are no grade. Run the same "
                                 "python -m grader grade command again: it grades such submissions again.")
        grades.append(Grade(name=result.submission, points=float(result.score), max_points=float(result.max_points),
                            source=f"{folder / result.submission}.json", feedback=result.output))
    return grades


def _from_nbgrader_csv(path, assignment):
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            lines = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise GradebookError(f"Cannot read {path} as a CSV file ({error}). Pass the grades.csv of nbgrader export, "
                             "or a results folder.") from None
    if set(CSV_COLUMNS) <= set(header):
        raise GradebookError(f"{path} is the grader's summary table; pass its folder ({path.parent}) instead, "
                             "where every result is.")
    missing = [column for column in NBGRADER_COLUMNS if column not in header]
    if missing:
        raise GradebookError(f"{path} is not a CSV of nbgrader export: it has no column {', '.join(missing)}. "
                             "Pass the grades.csv that `nbgrader export` writes, or a results folder.")
    rows = []
    for number, cells in enumerate(lines, start=2):
        if not any(cells):
            continue
        if len(cells) != len(header):
            # nbgrader writes its CSV without quoting: a comma in a name shifts every later cell.
            raise GradebookError(f"{path}, line {number}: {len(cells)} cells for {len(header)} columns (a comma in "
                                 "a name? nbgrader does not quote them). Remove the comma there and try again.")
        rows.append((number, dict(zip(header, cells))))
    names = sorted({row["assignment"] for _, row in rows})
    if assignment is None and len(names) > 1:
        raise GradebookError(f"{path} holds several assignments ({', '.join(names)}): pass --assignment NAME.")
    if assignment is not None and assignment not in names:
        raise GradebookError(f"{path} has no rows for assignment {assignment!r}; it has: {', '.join(names) or 'none'}.")
    grades = []
    for number, row in rows:
        if assignment is not None and row["assignment"] != assignment:
            continue
        if not row["timestamp"].strip() or row.get("autograde_status") == "not submitted":
            continue   # nbgrader gives 0 to a student who never submitted: that is no grade to file
        where = f"{path}, line {number}"
        email = row["email"].strip()
        grades.append(Grade(name=row["student_id"], points=_number(row["score"], "score", where),
                            max_points=_number(row["max_score"], "max_score", where),
                            email=None if email in ("", "None") else email, source=where))
    if not grades:
        raise GradebookError(f"{path} has no submitted grades{f' for {assignment}' if assignment else ''}: "
                             "run nbgrader autograde, then nbgrader export, first.")
    return sorted(grades, key=lambda g: g.name)


def _number(text, column, where):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise GradebookError(f"{where}: {column} is {text!r}, not a number.")
    return value


def safe_name(text):
    """text as the grader names a submission after its file (grader.api.find_submissions): every
    character but letters, digits, '.', '_' and '-' becomes '_' ("alice@uni.edu" -> "alice_uni.edu")."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)
