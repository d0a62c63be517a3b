"""
Fill one assignment column of an instructor's Canvas gradebook export with the
pack's grades, to import it back (Grades > Import).

We never make a Canvas CSV ourselves: Canvas matches its import by the header and
the student columns of its own export, and creates a NEW assignment for a column
title it does not know. So we take the export as it is and change the cells of
one existing column, nothing else. What Canvas requires, from its importer
(instructure/canvas-lms, lib/gradebook_importer.rb):

    Student, ID, SIS User ID, SIS Login ID, [Integration ID,] [Root Account,] Section, <custom columns>, Title (id), ...
    Points Possible, , , , , 10, ...      the first data row: each column's maximum
    Smith, Alice, 4711, s123, asmith, Section A, 8.5, ...

Column 0 must contain "Student" and column 1 "ID", and the last student-info column
"Section" ("Invalid header row" otherwise). Comma or semicolon between cells: Canvas
picks whichever splits its first lines more evenly; so do we.
"""
import re
from pathlib import Path

from .csv_cells import CsvTable
from .gradebook_fill import (
    GradebookRow, checked_points, format_points, match_grades, parse_number, refuse_overwrite,
)
from .grades_source import GradebookError, read_grades, safe_name

# Columns of the export that are not assignments (GradebookImporter::NON_ASSIGNMENT_COLUMN_HEADERS;
# "Unposted ..." variants contain these too).
NOT_ASSIGNMENTS = ("Current Score", "Current Points", "Current Grade", "Final Score", "Final Points", "Final Grade",
                   "Override Score", "Override Grade", "Override Status")
TEST_STUDENTS = ("Student, Test", "Test Student")   # Canvas's Student View user, in every export
HOW_TO_EXPORT = "In Canvas: Grades > Export > Export Entire Gradebook, and pass that file unchanged."


def fill_canvas(*, export, column, grades, out, assignment=None, rescale=False, overwrite=False):
    """
    Write a copy of a Canvas gradebook export with one assignment column filled in.

    Inputs:
    - export: The CSV Canvas exported (Grades > Export)
    - column: The assignment column: its exact header ("Exercise 09 (1234)"), its title
      ("Exercise 09") or its Canvas id ("1234")
    - grades: A results folder of `python -m grader grade`, or the grades.csv of `nbgrader export`
    - out: Where to write the filled copy
    - assignment: nbgrader's assignment name, when its CSV holds several
    - rescale: Convert the grades' points into the column's Points Possible
    - overwrite: Allow out to be the export itself

    Returns:
    - A FillReport (what was filled, the students without a grade, the grades without a student)

    Students are matched by SIS Login ID: a grade's name (a submission's name without
    `_exercise_09`, or nbgrader's student id) or nbgrader's email must equal it. Raises
    GradebookError, writing nothing, for an input that is not a Canvas export, a column
    that names no assignment or several, and grades above Points Possible or below 0.
    """
    export, out = Path(export), Path(out)
    refuse_overwrite(export, out, overwrite)
    table = CsvTable.read(export, delimiters=";,", choose=_canvas_delimiter)
    header = table.rows[0]
    first_assignment, login_column = _student_columns(header, export)
    target = _find_column(header, first_assignment, column, export)
    maximum, student_rows = _points_possible(table, target, export)
    logins = {i: _cell(table.rows[i], login_column).strip() for i in student_rows}
    rows = [GradebookRow(index=i, label=f"{table.rows[i][0]} ({logins[i] or 'no SIS Login ID'})",
                         keys=frozenset({_key(logins[i])} - {None}), maximum=maximum) for i in student_rows]
    matched, report = match_grades(read_grades(grades, assignment=assignment), rows, key=_key)
    points, report.warnings = checked_points(
        matched, rescale=rescale, platform="Canvas",
        fix="Pass --rescale to convert points into the column's Points Possible, or correct the grades.")
    for (grade, row), value in zip(matched, points):
        text, old = format_points(value), _cell(table.rows[row.index], target).strip()
        if old.upper() == "EX":
            report.warnings.append(f"{row.label} was excused (EX); the file now gives {text} points")
        if _same_points(old, value):
            report.unchanged.append(row.label)   # Canvas ignores a cell equal to its score
        else:
            table.set(row.index, target, text)
            report.filled.append((row.label, text))
    table.write(out)
    report.out = out
    return report


def _canvas_delimiter(views):
    """Canvas's rule (GradebookImporter#identify_delimiter): a delimiter counts if it splits the
    first three lines into the same number of cells; semicolon wins if it makes more of them."""
    counts = {}
    for delimiter, rows in views.items():
        sizes = {len(row) for row in rows[:3]}
        counts[delimiter] = sizes.pop() if len(sizes) == 1 else 0
    return ";" if counts.get(";", 0) > counts.get(",", 0) else ","


def _student_columns(header, path):
    """
    Check the header as Canvas does.

    Returns a tuple of:
    - first: The index of the first column after the student information
    - login: The index of the SIS Login ID column
    """
    if not (len(header) > 3 and "Student" in header[0] and "ID" in header[1]):
        raise GradebookError(f"{path} is not a Canvas gradebook export: Canvas needs 'Student' in column 1 and 'ID' "
                             f"in column 2, and finds {header[:2]}. {HOW_TO_EXPORT}")
    count, login = 3, None
    if re.search(r"SIS\s+Login\s+ID", header[2]):
        count, login = 4, 2
    elif re.search(r"SIS\s+User\s+ID", header[2]) and re.search(r"SIS\s+Login\s+ID", header[3]):
        count, login = 5, 3
        if len(header) > 4 and re.search(r"Integration\s+ID", header[4]):
            count += 1
        if len(header) > count - 1 and re.search(r"Root\s+Account", header[count - 1]):
            count += 1
    if len(header) < count or "Section" not in header[count - 1]:
        raise GradebookError(f"{path} is not a Canvas gradebook export: its student columns must end with 'Section' "
                             f"(after Student, ID, SIS User ID, SIS Login ID), but column {count} is "
                             f"{header[count - 1] if len(header) >= count else 'missing'!r}. Canvas would refuse it "
                             f"(\"Invalid header row\"). {HOW_TO_EXPORT}")
    if login is None:
        raise GradebookError(f"{path} has no SIS Login ID column, by which the students are matched. Export it "
                             "again as a teacher or admin who may see SIS data.")
    return count, login


def _find_column(header, first, wanted, path):
    """The index of the assignment column named `wanted`: its exact header, its Canvas id or its title."""
    columns = [(i, name) for i, name in enumerate(header) if i >= first and name.strip()]
    wanted = wanted.strip()
    if any(word in wanted for word in NOT_ASSIGNMENTS):
        raise GradebookError(f"{wanted!r} is a total Canvas computes, not an assignment: name an assignment column.")
    exact = [(i, name) for i, name in columns if name == wanted]
    by_id = [(i, name) for i, name in columns if wanted.isdigit() and _title_and_id(name)[1] == wanted]
    by_title = [(i, name) for i, name in columns if _title_and_id(name)[0] == wanted]
    found = exact or by_id or by_title
    assignments = [name for _, name in columns if not any(word in name for word in NOT_ASSIGNMENTS)]
    if not found:
        shown = ", ".join(repr(name) for name in assignments[:12]) + (" ..." if len(assignments) > 12 else "")
        raise GradebookError(f"{path} has no assignment column {wanted!r}. Its assignment columns: {shown or 'none'}. "
                             "Create the assignment in Canvas first and export again: a column Canvas does not "
                             "know would create a new assignment on import.")
    if len(found) > 1:
        raise GradebookError(f"{wanted!r} names {len(found)} columns of {path}: "
                             + ", ".join(repr(name) for _, name in found) + ". Pass the exact header, with its id.")
    index, name = found[0]
    if any(word in name for word in NOT_ASSIGNMENTS):
        raise GradebookError(f"{name!r} is a total Canvas computes, not an assignment: name an assignment column.")
    return index


def _title_and_id(header):
    """("Exercise 09", "1234") for "Exercise 09 (1234)", as Canvas's Assignment.title_and_id;
    (header, None) for a header without an id."""
    match = re.fullmatch(r"(.*)\s+\((\d+)\)", header.strip())
    return (match[1], match[2]) if match else (header.strip(), None)


def _points_possible(table, column, path):
    """
    The column's Points Possible and the rows of students.

    Returns a tuple of:
    - maximum: The column's points possible (float)
    - students: Indexes of the student rows in table.rows
    """
    maximum, students = None, []
    for index, row in enumerate(table.rows[1:], start=1):
        if not any(cell.strip() for cell in row):
            continue   # a blank line, which Canvas skips
        if "Points Possible" in row[0]:
            text = _cell(row, column).strip()
            if re.search(r"read\s+only", text):
                raise GradebookError(f"Column {table.rows[0][column]!r} is read only in Canvas (Points Possible: "
                                     f"{text!r}): Canvas would ignore it. Name an assignment you may grade.")
            maximum = parse_number(text)
            if maximum is None:
                raise GradebookError(f"{path}: the Points Possible of {table.rows[0][column]!r} is {text!r}, not a "
                                     "number. Give the assignment points in Canvas and export again.")
        elif all(re.fullmatch(r"\s*(Muted|Manual Posting.*)?\s*", cell, re.IGNORECASE) for cell in row):
            continue   # the row that flags manually posted assignments; Canvas skips it
        elif row[0].strip() not in TEST_STUDENTS:
            students.append(index)
    if maximum is None:
        raise GradebookError(f"{path} has no Points Possible row, which gives the column's maximum. {HOW_TO_EXPORT}")
    return maximum, students


def _key(text):
    """A SIS Login ID, a submission name or an email, made comparable: as the grader names files
    (alice@uni.edu -> alice_uni.edu) and in lower case (logins are not case sensitive)."""
    text = (text or "").strip()
    return safe_name(text).lower() if text else None


def _cell(row, column):
    return row[column] if column < len(row) else ""


def _same_points(old, value):
    # Canvas compares scores at its export's precision, two decimals (GradebookImporter#no_change_to_value?).
    number = parse_number(old)
    return number is not None and round(number, 2) == round(value, 2)
