"""
What filling any gradebook shares: matching grades to rows, refusing points the
platform would drop, and the report of what was done.

    rows = [GradebookRow(index=3, label="Alice Smith", keys={"asmith"}, maximum=100.0), ...]
    matched, report = match_grades(grades, rows, key=canvas_key)
    points = checked_points(matched, rescale=False, platform="Canvas", fix="...")
"""
import math
from dataclasses import dataclass, field

from .grades_source import GradebookError

TOLERANCE = 1e-9   # points are floats: 100.00000000000001 is 100


@dataclass(frozen=True)
class GradebookRow:
    """
    A student's row of a gradebook file.

    - index: The row's index in the file (CsvTable.rows)
    - label: How messages name the student (their name and id as the file shows them)
    - keys: The identifiers a Grade may match, already normalized by the adapter's key function
    - maximum: The most points the platform accepts for this row's grade
    """
    index: int
    label: str
    keys: frozenset
    maximum: float


@dataclass
class FillReport:
    """
    What a fill did, for the summary the command prints.

    - filled: List of (row label, value written)
    - unchanged: Row labels whose grade was already the one written
    - students_without_grade: Row labels of the gradebook that no grade matched
    - grades_without_row: Grades that matched no row of the gradebook
    - warnings: Things to check before importing
    - out: The file written
    """
    filled: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    students_without_grade: list = field(default_factory=list)
    grades_without_row: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    out: object = None

    def __repr__(self):
        return (f"FillReport(filled={len(self.filled)}, unchanged={len(self.unchanged)}, "
                f"students_without_grade={len(self.students_without_grade)}, "
                f"grades_without_row={len(self.grades_without_row)})")


def match_grades(grades, rows, key):
    """
    Pair each grade with the one row it belongs to.

    Inputs:
    - grades: List of Grade
    - rows: List of GradebookRow
    - key: Function str -> normalized identifier (or None), applied to each of Grade.names()

    Returns a tuple of:
    - matched: List of (Grade, GradebookRow)
    - report: A FillReport with students_without_grade and grades_without_row set

    Raises GradebookError if a grade matches several rows, or several grades one row:
    either would file a grade under the wrong student.
    """
    by_key = {}
    for row in rows:
        for k in row.keys:
            by_key.setdefault(k, []).append(row)
    matched, report, taken, problems = [], FillReport(), {}, []
    for grade in grades:
        keys = {key(name) for name in grade.names()} - {None, ""}
        found = list({id(r): r for k in keys for r in by_key.get(k, [])}.values())
        if not found:
            report.grades_without_row.append(grade)
        elif len(found) > 1:
            problems.append(f"{grade.name} ({grade.source}) matches {len(found)} rows: "
                            + ", ".join(r.label for r in found))
        elif found[0].index in taken:
            problems.append(f"{found[0].label} has two grades: {taken[found[0].index].name} "
                            f"({taken[found[0].index].source}) and {grade.name} ({grade.source})")
        else:
            taken[found[0].index] = grade
            matched.append((grade, found[0]))
    if problems:
        raise GradebookError("Cannot tell which grade belongs to whom; nothing was written:\n  "
                             + "\n  ".join(problems) + "\nRemove the duplicate grade (or fix the gradebook's ids).")
    report.students_without_grade = [row.label for row in rows if row.index not in taken]
    return matched, report


def checked_points(matched, *, rescale, platform, fix):
    """
    The points to write for each matched grade, refusing any the platform would drop.

    Inputs:
    - matched: List of (Grade, GradebookRow)
    - rescale: Convert points out of the grade's max_points into points out of the row's maximum
    - platform: The platform's name, for messages
    - fix: What to do about a grade above the maximum, for the message

    Returns a tuple of:
    - points: List of floats, one per matched grade
    - warnings: List of str (grades whose maximum differs from the gradebook's, without rescale)

    Raises GradebookError naming every student, value and maximum refused (nothing is written then).
    """
    points, refused, scales = [], [], set()
    for grade, row in matched:
        value = grade.points * row.maximum / grade.max_points if rescale and grade.max_points > 0 else grade.points
        if not math.isclose(grade.max_points, row.maximum, abs_tol=TOLERANCE):
            scales.add((grade.max_points, row.maximum))
        if value < -TOLERANCE:
            refused.append(f"{row.label}: {value:g} points is negative ({grade.source})")
        elif value > row.maximum + TOLERANCE:
            refused.append(f"{row.label}: {value:g} points is above the maximum of {row.maximum:g} ({grade.source})")
        points.append(min(max(value, 0.0), row.maximum))   # within the tolerance: exactly the bound
    if refused:
        raise GradebookError(f"{len(refused)} grade(s) outside the {platform} gradebook's range; nothing was "
                             "written:\n  " + "\n  ".join(refused) + f"\n{fix}")
    warnings = [f"grades out of {source:g} points filled into a gradebook out of {target:g}, unconverted "
                "(pass --rescale to convert them)" for source, target in sorted(scales) if not rescale]
    return points, warnings


def format_points(value, *, decimals=2, decimal_mark=".", fixed=False):
    """
    value as a gradebook cell: rounded to `decimals` decimals, with trailing zeros dropped
    (91.5, 100) unless fixed (91.50, 100.00, as Moodle writes its worksheets).
    """
    text = f"{round(value, decimals):.{decimals}f}"
    if not fixed and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.replace(".", decimal_mark)


def parse_number(text):
    """A cell's number, with a decimal point or (as Canvas also reads it) a decimal comma; None if none."""
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def refuse_overwrite(source, out, overwrite):
    """GradebookError if out is the source file and overwriting it was not asked for."""
    if not overwrite and out.resolve() == source.resolve():
        raise GradebookError(f"--out is the input file itself ({source}); write the filled copy to another "
                             "file, or pass --overwrite.")
