"""
python -m grader canvas: one assignment column of an instructor's Canvas gradebook
export filled with the pack's grades (grader/platforms/canvas.py). The exports in
golden/ are written by hand from Canvas's importer (lib/gradebook_importer.rb); the
*.filled.csv files are those exports with exactly the expected cells changed.
"""
import re

import pytest

import grader.cli as cli
from grader.platforms.canvas import fill_canvas
from grader.platforms.grades_source import GradebookError
from gradebook_grades import GOLDEN, nbgrader_csv, results_folder

# Submissions as the grader names them: <SIS Login ID>_exercise_09 (an @ becomes _).
GRADES = {"asmith_exercise_09": 100.0, "bob_uni.example_exercise_09": 87.25, "dmueller_exercise_09": 100.0,
          "mallory_exercise_09": 0.0}


@pytest.fixture
def results(tmp_path):
    return results_folder(tmp_path / "results", GRADES)


def fill(tmp_path, grades, column="Exercise 09", export="canvas_export.csv", **options):
    return fill_canvas(export=GOLDEN / export, column=column, grades=grades, out=tmp_path / "filled.csv", **options)


@pytest.mark.parametrize("column", ["Exercise 09 (1234)", "Exercise 09", "1234"])
def test_fills_one_column_keeping_every_other_byte(tmp_path, results, column):
    """Named by header, title or id, is only the column's cells of matched students changed, byte for byte?"""
    report = fill(tmp_path, results, column)
    assert (tmp_path / "filled.csv").read_bytes() == (GOLDEN / "canvas_export.filled.csv").read_bytes()
    assert report.filled == [("Smith, Alice (asmith)", "100"), ("Jones, Bob (bob@uni.example)", "87.25")]
    assert report.unchanged == ["Müller, Dave (dmueller)"]              # 100.00 in the export already


def test_reports_unmatched_students_and_submissions(tmp_path, results):
    """Are students without a grade and grades without a student both reported (never Canvas's Test Student)?"""
    report = fill(tmp_path, results)
    assert report.students_without_grade == ["Nguyen, Carol (cnguyen)"]
    assert [grade.name for grade in report.grades_without_row] == ["mallory_exercise_09"]


def test_semicolon_export_keeps_its_bom_line_endings_and_quotes(tmp_path, results):
    """Is a semicolon export (byte-order mark, CRLF, quoted decimal commas) filled and kept as it was?"""
    report = fill(tmp_path, results, "1234", export="canvas_export_semicolon.csv")
    assert (tmp_path / "filled.csv").read_bytes() == (GOLDEN / "canvas_export_semicolon.filled.csv").read_bytes()
    assert report.students_without_grade == ["Nguyen, Carol (cnguyen)"]


def test_nbgrader_csv_matches_by_student_id_or_email(tmp_path):
    """From nbgrader's export: asmith by student id, Bob by email; Carol never submitted, so has no grade?"""
    report = fill(tmp_path, GOLDEN / "nbgrader_grades.csv", assignment="exercise_09")
    assert report.filled == [("Smith, Alice (asmith)", "100"), ("Jones, Bob (bob@uni.example)", "60")]
    assert report.students_without_grade == ["Nguyen, Carol (cnguyen)", "Müller, Dave (dmueller)"]
    assert [grade.name for grade in report.grades_without_row] == ["mallory"]


def test_nbgrader_csv_of_several_assignments_needs_one_named(tmp_path):
    """Does a CSV of two assignments, without --assignment, say which there are, writing nothing?"""
    with pytest.raises(GradebookError, match=r"several assignments \(exercise_08, exercise_09\): pass --assignment"):
        fill(tmp_path, GOLDEN / "nbgrader_grades.csv")
    assert not (tmp_path / "filled.csv").exists()


@pytest.mark.parametrize("column, words", [
    ("Quiz", "'Quiz' names 2 columns of .*'Quiz \\(1236\\)', 'Quiz \\(1237\\)'. Pass the exact header"),
    ("Exercise 10", "has no assignment column 'Exercise 10'. Its assignment columns: 'Exercise 08 \\(1233\\)'"),
    ("Current Score", "'Current Score' is a total Canvas computes"),
])
def test_bad_column_is_refused(tmp_path, results, column, words):
    """Is a column that is ambiguous, unknown (Canvas would create an assignment) or a total refused?"""
    with pytest.raises(GradebookError, match=words):
        fill(tmp_path, results, column)
    assert not (tmp_path / "filled.csv").exists()


def test_points_above_points_possible_are_refused(tmp_path, results):
    """Grades out of 100 into a 10-point column: is each student named with value and maximum, nothing written?"""
    with pytest.raises(GradebookError) as error:
        fill(tmp_path, results, "Exercise 09 Bonus")
    assert "Smith, Alice (asmith): 100 points is above the maximum of 10" in str(error.value)
    assert "Jones, Bob (bob@uni.example): 87.25 points is above the maximum of 10" in str(error.value)
    assert "--rescale" in str(error.value) and not (tmp_path / "filled.csv").exists()


def test_rescale_converts_into_points_possible(tmp_path, results):
    """With rescale, do 100 of 100 points become 10 of 10?"""
    report = fill(tmp_path, results, "Exercise 09 Bonus", rescale=True)
    assert dict(report.filled) == {"Smith, Alice (asmith)": "10", "Jones, Bob (bob@uni.example)": "8.72",
                                   "Müller, Dave (dmueller)": "10"}


def test_other_scale_is_warned_about(tmp_path):
    """Grades out of 10 into a 100-point column fit, but are they flagged as unconverted?"""
    report = fill(tmp_path, results_folder(tmp_path / "r", {"asmith": 7.0}, max_points=10.0))
    assert report.filled == [("Smith, Alice (asmith)", "7")]
    assert report.warnings == ["grades out of 10 points filled into a gradebook out of 100, unconverted "
                               "(pass --rescale to convert them)"]


def test_negative_points_are_refused(tmp_path):
    """Is a negative grade refused with the student's name, the value and where it came from?"""
    grades = nbgrader_csv(tmp_path / "grades.csv", "exercise_09,None,2026-03-02 10:15:00,asmith,Smith,Alice,"
                                                   "alice@uni.example,0.0,5.0,-5.0,100.0,ok,jail")
    with pytest.raises(GradebookError, match=r"Smith, Alice \(asmith\): -5 points is negative \(.*grades.csv, line 2"):
        fill(tmp_path, grades)


def test_two_grades_for_one_student_are_refused(tmp_path):
    """Would two submissions of one student (asmith_exercise_09 and asmith) be refused, not one silently kept?"""
    with pytest.raises(GradebookError, match=r"Smith, Alice \(asmith\) has two grades: asmith .* asmith_exercise_09"):
        fill(tmp_path, results_folder(tmp_path / "r", {"asmith_exercise_09": 100.0, "asmith": 0.0}))


def test_grader_failure_is_no_grade(tmp_path):
    """Is a result the grader itself failed on (a 0 the student did not earn) refused, saying to grade again?"""
    grades = results_folder(tmp_path / "r", {"asmith": 0.0}, extra={"asmith": {"grader_error": "MemoryError"}})
    with pytest.raises(GradebookError, match="the grader itself failed on this submission .* Run the same"):
        fill(tmp_path, grades)


@pytest.mark.parametrize("text, words", [
    (b"Identifier,Grade\nParticipant 1,\n", "is not a Canvas gradebook export: Canvas needs 'Student' in column 1"),
    (b"Student,ID,SIS User ID,SIS Login ID,Exercise 09 (1234)\n", "its student columns must end with 'Section'"),
    (b"Student,ID,Section,Exercise 09 (1234)\nPoints Possible,,,10\n", "has no SIS Login ID column"),
    (b"Student,ID,SIS Login ID,Section,Ex (1)\nA,1,a,S,\n", "has no Points Possible row"),
    (b"Student,ID,SIS Login ID,Section,Ex (1)\nPoints Possible,,,,ten\n", "Points Possible of 'Ex \\(1\\)' is 'ten'"),
    (b"Student,ID,SIS Login ID,Section,Ex (1)\nPoints Possible,,,,(read only)\n", "is read only in Canvas"),
    (b"Student,ID,SIS Login ID,Section,Ex (1)\n\"M\xfcller,1,x,S,\n", "is not UTF-8 text"),
    (b"Student,ID,SIS Login ID,Section,Ex (1)\n\"Smith, Alice,1,x,S,\n", "line 2: a quoted cell never ends"),
    (b"", "is empty"),
])
def test_broken_or_foreign_file_is_refused(tmp_path, results, text, words):
    """Does each file Canvas would not import (or we cannot read) get a clear error, nothing written?"""
    (tmp_path / "export.csv").write_bytes(text)
    with pytest.raises(GradebookError, match=words):
        fill_canvas(export=tmp_path / "export.csv", column="Ex", grades=results, out=tmp_path / "filled.csv")
    assert not (tmp_path / "filled.csv").exists()


def test_export_is_not_overwritten_unless_asked(tmp_path, results):
    """Is --out equal to the export refused, and allowed with overwrite?"""
    export = tmp_path / "export.csv"
    export.write_bytes((GOLDEN / "canvas_export.csv").read_bytes())
    with pytest.raises(GradebookError, match="--out is the input file itself"):
        fill_canvas(export=export, column="Exercise 09", grades=results, out=export)
    fill_canvas(export=export, column="Exercise 09", grades=results, out=export, overwrite=True)
    assert export.read_bytes() == (GOLDEN / "canvas_export.filled.csv").read_bytes()


def test_cli_fills_and_prints_the_summary(tmp_path, results, capsys):
    """Does `python -m grader canvas` exit 0 and print what it filled and whom it could not match?"""
    out = tmp_path / "filled.csv"
    assert cli.main(["canvas", str(GOLDEN / "canvas_export.csv"), "--column", "Exercise 09", "--grades", str(results),
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"Filled 2 grade(s) into column 'Exercise 09' of {out}; 1 already had that grade." in printed
    assert "Students in the gradebook without a grade (1):\n  Nguyen, Carol (cnguyen)" in printed
    assert "Grades with no student in the gradebook (1):\n  mallory_exercise_09 (0 points" in printed
    assert "Grades > Import" in printed and out.read_bytes() == (GOLDEN / "canvas_export.filled.csv").read_bytes()


@pytest.mark.parametrize("args, words", [
    (["--column", "Exercise 10"], "error: .* has no assignment column 'Exercise 10'"),
    (["--column", "Exercise 09", "--assignment", "exercise_09"], "--assignment picks rows of nbgrader's CSV"),
])
def test_cli_usage_errors_exit_2(tmp_path, results, capsys, args, words):
    """Does a configuration error exit 2 with the message, writing nothing?"""
    out = tmp_path / "filled.csv"
    assert cli.main(["canvas", str(GOLDEN / "canvas_export.csv"), "--grades", str(results), "--out", str(out),
                     *args]) == 2
    assert re.search(words, capsys.readouterr().err) and not out.exists()


def test_unwritable_output_is_a_clear_error(tmp_path, results):
    """Is an --out that cannot be written (its folder is a file) refused with a message, not a traceback?"""
    (tmp_path / "file").write_text("")
    with pytest.raises(GradebookError, match="Cannot write .*file/filled.csv: .* Choose another --out"):
        fill_canvas(export=GOLDEN / "canvas_export.csv", column="1234", grades=results,
                    out=tmp_path / "file" / "filled.csv")


def test_cli_missing_grades_exit_2(tmp_path, capsys):
    """Is a --grades path that is not there a usage error that says what to pass?"""
    assert cli.main(["canvas", str(GOLDEN / "canvas_export.csv"), "--column", "1234", "--grades",
                     str(tmp_path / "nope"), "--out", str(tmp_path / "f.csv")]) == 2
    assert "nope: no such file or folder. Pass the results folder" in capsys.readouterr().err
