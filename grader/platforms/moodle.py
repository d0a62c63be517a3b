"""
Fill the Grade column (and, if asked, the feedback comments) of a Moodle
assignment's offline grading worksheet, to upload it back (Assignment > View all
submissions > Grading action: Upload grading worksheet).

We never make a worksheet ourselves: Moodle finds its columns by their exact
header in the SITE'S LANGUAGE, and checks each row's "Last modified (grade)"
against its own. So we take the downloaded worksheet and change its Grade cells,
nothing else. From Moodle's source (mod/assign/feedback/offline, gradingtable.php)
and language packs:

    header role     English                    German (language pack 4.5)       Moodle's string
    identifier      Identifier                 ID                               assign/recordid
    grade           Grade                      Bewertung                        core grade / gradenoun
    maximum         Maximum Grade              Bestwertung                      assign/maxgrade
    can_change      Grade can be changed       Bewertung kann geändert werden   assign/gradecanbechanged
    modified        Last modified (grade)      Zuletzt geändert (Bewertung)     assign/lastmodifiedgrade
    feedback        Feedback comments          Feedback als Kommentar           assignfeedback_comments/pluginname

Identifiers read "Participant 123456" (German "Teilnehmer/in123456": the German
string has no trailing space), the same unique id Moodle puts in the names of
"Download all submissions": "<Full Name>_123456_assignsubmission_file_...".

On upload Moodle SILENTLY skips a row whose grade is empty, negative, above the
maximum, locked ("Grade can be changed: No"), unchanged, or changed in Moodle
after the worksheet was downloaded (assign_feedback_offline::process_import_grades).
We never write an empty grade, refuse the next three before Moodle would drop them,
and report the unchanged ones; the last no file shows (upload soon after download).
"""
import html
import re
from pathlib import Path

from .csv_cells import CsvTable
from .gradebook_fill import (
    GradebookRow, checked_points, format_points, match_grades, parse_number, refuse_overwrite,
)
from .grades_source import GradebookError, read_grades

HEADERS = {
    "identifier": ("Identifier", "ID"),
    "fullname": ("Full name", "Vollständiger Name"),
    "email": ("Email address", "E-Mail-Adresse"),
    "grade": ("Grade", "Bewertung"),
    "maximum": ("Maximum Grade", "Maximum grade", "Bestwertung"),
    "can_change": ("Grade can be changed", "Bewertung kann geändert werden"),
    "modified": ("Last modified (grade)", "Zuletzt geändert (Bewertung)"),
    "feedback": ("Feedback comments", "Feedback als Kommentar"),
}
REQUIRED = ("identifier", "grade", "modified")   # without these Moodle refuses the upload ("invalidgradeimport")
NO = ("No", "Nein")                               # "Grade can be changed": core strings no / Nein
DOWNLOAD_NAME = re.compile(r"_(\d+)_assign(?:submission|feedback)_")   # "Alice Smith_123456_assignsubmission_file_"
PARTICIPANT_NAME = re.compile(r"(?:participant|teilnehmer[/_]in)[ _]?(\d+)", re.IGNORECASE)


def fill_moodle(*, worksheet, grades, out, assignment=None, feedback=False, rescale=False, headers=None,
                overwrite=False):
    """
    Write a copy of a Moodle offline grading worksheet with its Grade column filled in.

    Inputs:
    - worksheet: The CSV Moodle made (Grading action: Download grading worksheet)
    - grades: A results folder of `python -m grader grade`, or the grades.csv of `nbgrader export`
    - out: Where to write the filled copy
    - assignment: nbgrader's assignment name, when its CSV holds several
    - feedback: Also fill the feedback comments column with each result's summary (results folders only)
    - rescale: Convert the grades' points into the worksheet's maximum grade
    - headers: Optional dict role -> header text, for a site in another language
      (roles: identifier, grade, maximum, can_change, modified, feedback, email, fullname)
    - overwrite: Allow out to be the worksheet itself

    Returns:
    - A FillReport

    A grade is matched to its row by the participant id in its name (a folder or zip of
    Moodle's "Download all submissions", or "Participant_123456") or by email (a grade's
    name or nbgrader's email equal to the worksheet's email address). Raises GradebookError,
    writing nothing, for a worksheet without its columns, and for grades Moodle would skip:
    above the maximum, negative, or in a locked row.
    """
    worksheet, out = Path(worksheet), Path(out)
    refuse_overwrite(worksheet, out, overwrite)
    names = {role: (*([headers[role]] if headers and role in headers else []), *texts)
             for role, texts in HEADERS.items()}
    unknown = set(headers or {}) - set(HEADERS)
    if unknown:
        raise GradebookError(f"Unknown header role(s) {', '.join(sorted(unknown))}; the roles are "
                             f"{', '.join(HEADERS)}.")
    table = CsvTable.read(worksheet, delimiters=",;\t", choose=lambda views: _worksheet_delimiter(views, names))
    columns = _columns(table.rows[0], names, worksheet)
    if feedback and "feedback" not in columns:
        raise GradebookError(f"{worksheet} has no feedback comments column (looked for "
                             f"{' or '.join(map(repr, names['feedback']))}). Enable 'Feedback comments' in the "
                             "assignment's settings and download the worksheet again, or leave out --feedback.")
    rows = [_row(table.rows[i], i, columns, worksheet) for i in range(1, len(table.rows)) if any(table.rows[i])]
    all_grades = read_grades(grades, assignment=assignment)
    if feedback and any(grade.feedback is None for grade in all_grades):
        raise GradebookError("nbgrader's CSV has no feedback text for Moodle: leave out --feedback (nbgrader "
                             "generate_feedback makes the students' feedback files), or fill from a results folder.")
    matched, report = match_grades(all_grades, rows, key=_key)
    can_change = {row.index: _cell(table.rows[row.index], columns.get("can_change")) for _, row in matched}
    locked = [f"{row.label}: {grade.points:g} points, but Moodle locked this grade ('Grade can be changed': "
              f"{can_change[row.index]})" for grade, row in matched if can_change[row.index] in NO]
    if locked:
        raise GradebookError(f"{len(locked)} grade(s) Moodle would skip; nothing was written:\n  " + "\n  ".join(locked)
                             + "\nA grade locked or overridden in Moodle's gradebook cannot be changed here: unlock "
                               "it there and download the worksheet again, or remove that grade.")
    points, report.warnings = checked_points(
        matched, rescale=rescale, platform="Moodle",
        fix="Pass --rescale to convert points into the worksheet's maximum grade, or set the assignment's "
            "maximum grade in Moodle and download the worksheet again.")
    style = _number_style(table, columns)
    for (grade, row), value in zip(matched, points):
        text = format_points(value, **style, fixed=True)
        old = parse_number(_cell(table.rows[row.index], columns["grade"]))
        if old is not None and round(old, style["decimals"]) == round(value, style["decimals"]):
            report.unchanged.append(row.label)   # Moodle skips a grade equal to its own, and keeps it
        else:
            table.set(row.index, columns["grade"], text)
            report.filled.append((row.label, text))
        if feedback:
            # Moodle stores feedback comments as HTML.
            table.set(row.index, columns["feedback"], html.escape(grade.feedback.strip()).replace("\n", "<br>"))
    table.write(out)
    report.out = out
    return report


def participant_id(name):
    """
    The participant id in a Moodle name, or None.

    - "Alice Smith_123456_assignsubmission_file_" (a folder of Download all submissions),
      "Alice_Smith_123456_assignsubmission_file_alice_exercise_09" (a zip's name, as the
      grader names it) -> "123456"
    - "Participant 123456", "Participant_123456", "Teilnehmer/in123456" -> "123456"
    """
    match = DOWNLOAD_NAME.search(name) or PARTICIPANT_NAME.fullmatch(name.strip())
    return match[1] if match else None


def _key(name):
    """A grade's name, or a worksheet's identity, as a key: "id:<participant id>" or "email:<address>"."""
    pid = participant_id(name or "")
    if pid:
        return f"id:{pid}"
    return f"email:{name.strip().lower()}" if name and "@" in name else None


def _worksheet_delimiter(views, names):
    """The delimiter whose header holds the most of the worksheet's known headers (Moodle downloads
    commas; its upload form also takes semicolons and tabs)."""
    known = {text for texts in names.values() for text in texts}
    return max(views, key=lambda d: (sum(cell.strip() in known for cell in views[d][0]), d == ","))


def _columns(header, names, path):
    """{role: column index} for the roles the header has; GradebookError if a required one is missing."""
    columns = {}
    for role, texts in names.items():
        found = [i for i, cell in enumerate(header) if cell.strip() in texts]
        if len(found) > 1:
            raise GradebookError(f"{path}: several columns are named as the {role} column "
                                 f"({', '.join(repr(header[i]) for i in found)}). Download the worksheet again.")
        if found:
            columns[role] = found[0]
    missing = [role for role in REQUIRED if role not in columns]
    if missing:
        looked = "; ".join(f"{role}: {' or '.join(map(repr, names[role]))}" for role in missing)
        raise GradebookError(f"{path} is not a Moodle grading worksheet, or is in a language we do not know: it has no "
                             f"column for {looked}. Its headers: {', '.join(map(repr, header))}. Download it in "
                             "Moodle (View all submissions > Grading action > Download grading worksheet); for another "
                             "language name its headers, e.g. --header grade=Note.")
    if "maximum" not in columns:
        raise GradebookError(f"{path} has no maximum grade column ({' or '.join(map(repr, names['maximum']))}): the "
                             "assignment grades with a scale or advanced grading, which these points cannot fill. "
                             "Give it a point grade in Moodle and download the worksheet again.")
    return columns


def _row(cells, index, columns, path):
    """The GradebookRow of a worksheet row."""
    def cell(role):
        return _cell(cells, columns.get(role))

    match = re.fullmatch(r"\D*?(\d+)", cell("identifier"))   # "Participant 123456", in any language
    pid = match[1] if match else None
    if pid is None:
        raise GradebookError(f"{path}, row {index + 1}: the identifier {cell('identifier')!r} is not 'Participant "
                             "<number>'. Download the worksheet again.")
    maximum = parse_number(cell("maximum"))
    if maximum is None:
        raise GradebookError(f"{path}, row {index + 1}: the maximum grade {cell('maximum')!r} is not a number.")
    keys = {f"id:{pid}"} | ({f"email:{cell('email').lower()}"} if "@" in cell("email") else set())
    label = f"{cell('identifier')} ({cell('fullname') or cell('email') or 'no name shown'})"
    return GradebookRow(index=index, label=label, keys=frozenset(keys), maximum=maximum)


def _number_style(table, columns):
    """How the worksheet writes numbers, taken from its maximum grade ("100.00", German "100,00"):
    the same decimal mark and number of decimals, as Moodle's format_float."""
    sample = next((row[columns["maximum"]].strip() for row in table.rows[1:] if columns["maximum"] < len(row)
                   and row[columns["maximum"]].strip()), "100.00")
    mark = "," if "," in sample else "."
    return {"decimal_mark": mark, "decimals": len(sample.rpartition(mark)[2]) if mark in sample else 0}


def _cell(cells, column):
    """The text of a row's cell, stripped; "" for a column the worksheet lacks (None) or a short row."""
    return cells[column].strip() if column is not None and column < len(cells) else ""
