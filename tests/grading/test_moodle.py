"""
python -m grader moodle: the Grade column (and feedback comments) of a Moodle
assignment's offline grading worksheet filled with the pack's grades
(grader/platforms/moodle.py). The worksheets in golden/ are written by hand, in
English and German, from Moodle's grading table and language packs; the
*.filled.csv files are those worksheets with exactly the expected cells changed.
"""
import re

import pytest

import grader.cli as cli
from grader.platforms.grades_source import GradebookError
from grader.platforms.moodle import fill_moodle, participant_id
from gradebook_grades import GOLDEN, nbgrader_csv, results_folder

# Submissions as the grader names what "Download all submissions" gives: a folder per student
# ("Alice Smith_100201_assignsubmission_file_") or, without folders, each file with that prefix.
GRADES = {"Alice_Smith_100201_assignsubmission_file_": (91.5, 131.2),
          "Bob_Jones_100202_assignsubmission_file_bob_exercise_09": (100.0, 100.5),
          "Erin_Meyer_100205_assignsubmission_file_": 100.0,
          "Participant_100299": 50.0}


@pytest.fixture
def results(tmp_path):
    return results_folder(tmp_path / "results", GRADES)


def fill(tmp_path, grades, worksheet="moodle_worksheet_en.csv", **options):
    return fill_moodle(worksheet=GOLDEN / worksheet, grades=grades, out=tmp_path / "filled.csv", **options)


@pytest.mark.parametrize("name, pid", [
    ("Alice Smith_100201_assignsubmission_file_", "100201"),
    ("Alice_Smith_100201_assignsubmission_file_alice_exercise_09", "100201"),
    ("Anna_2_Lee_100207_assignsubmission_onlinetext_", "100207"),   # a digit in the name is not the id
    ("Participant 100201", "100201"), ("Participant_100201", "100201"), ("Teilnehmer/in100201", "100201"),
    ("alice_exercise_09", None), ("100201", None),
])
def test_participant_id_from_moodle_names(name, pid):
    """Is the participant id read from the names Moodle gives downloads and worksheet rows, and nothing else?"""
    assert participant_id(name) == pid


def test_fills_grade_column_keeping_every_other_byte(tmp_path, results):
    """English worksheet: are only the Grade cells of matched rows changed, as Moodle writes numbers (91.50)?"""
    report = fill(tmp_path, results)
    assert (tmp_path / "filled.csv").read_bytes() == (GOLDEN / "moodle_worksheet_en.filled.csv").read_bytes()
    assert report.filled == [("Participant 100201 (Alice Smith)", "91.50"),
                             ("Participant 100202 (Bob Jones)", "100.00")]
    assert report.unchanged == ["Participant 100205 (Erin Meyer)"]     # Moodle skips it, and keeps its 100


def test_reports_unmatched_students_and_submissions(tmp_path, results):
    """Are rows without a grade and grades without a row both reported?"""
    report = fill(tmp_path, results)
    assert report.students_without_grade == ["Participant 100203 (Carol Nguyen)", "Participant 100204 (Dave Müller)"]
    assert [grade.name for grade in report.grades_without_row] == ["Participant_100299"]


def test_german_worksheet_with_feedback(tmp_path, results):
    """German headers and decimal commas: are grades written as "91,50" (quoted) and feedback as escaped HTML?"""
    report = fill(tmp_path, results, worksheet="moodle_worksheet_de.csv", feedback=True)
    assert (tmp_path / "filled.csv").read_bytes() == (GOLDEN / "moodle_worksheet_de.filled.csv").read_bytes()
    assert report.filled == [("Teilnehmer/in100201 (Alice Smith)", "91,50"),
                             ("Teilnehmer/in100202 (Bob Jones)", "100,00")]


def test_nbgrader_csv_matches_by_email(tmp_path):
    """From nbgrader's export, are students matched by email, and the student who never submitted left out?"""
    report = fill(tmp_path, GOLDEN / "nbgrader_grades.csv", assignment="exercise_09")
    assert report.filled == [("Participant 100201 (Alice Smith)", "100.00"),
                             ("Participant 100202 (Bob Jones)", "60.00")]
    assert "Participant 100203 (Carol Nguyen)" in report.students_without_grade
    assert [grade.name for grade in report.grades_without_row] == ["mallory"]


def test_feedback_needs_a_results_folder(tmp_path):
    """Is --feedback with nbgrader's CSV (which has no feedback text) refused, saying what to do?"""
    with pytest.raises(GradebookError, match="nbgrader's CSV has no feedback text"):
        fill(tmp_path, GOLDEN / "nbgrader_grades.csv", assignment="exercise_09", feedback=True)


def test_locked_grade_is_refused(tmp_path):
    """Dave's grade cannot be changed (Moodle would skip it): is his grade refused, naming him, nothing written?"""
    grades = results_folder(tmp_path / "r", {"Dave_Mueller_100204_assignsubmission_file_": 80.0})
    with pytest.raises(GradebookError, match=r"Participant 100204 \(Dave Müller\): 80 points, but Moodle locked "
                                             r"this grade \('Grade can be changed': No\)"):
        fill(tmp_path, grades)
    with pytest.raises(GradebookError, match="'Grade can be changed': Nein"):
        fill(tmp_path, grades, worksheet="moodle_worksheet_de.csv")
    assert not (tmp_path / "filled.csv").exists()


def test_points_out_of_range_are_refused(tmp_path):
    """Above the maximum grade, or negative: is each refused with the student, the value and the maximum?"""
    grades = nbgrader_csv(tmp_path / "grades.csv",
                          "exercise_09,None,2026-03-02 10:15:00,asmith,Smith,Alice,alice@uni.example,120,0,120,100,ok,",
                          "exercise_09,None,2026-03-02 10:15:00,bjones,Jones,Bob,bob@uni.example,0,10,-10,100,ok,")
    with pytest.raises(GradebookError) as error:
        fill(tmp_path, grades)
    assert "Participant 100201 (Alice Smith): 120 points is above the maximum of 100" in str(error.value)
    assert "Participant 100202 (Bob Jones): -10 points is negative" in str(error.value)
    assert not (tmp_path / "filled.csv").exists()


def test_rescale_converts_into_the_maximum_grade(tmp_path):
    """Grades out of 10 with rescale: do 5 of 10 points become 50.00 of 100?"""
    report = fill(tmp_path, results_folder(tmp_path / "r", {"Participant_100201": 5.0}, max_points=10.0),
                  rescale=True)
    assert report.filled == [("Participant 100201 (Alice Smith)", "50.00")] and not report.warnings


@pytest.mark.parametrize("header, words", [
    ('Identifier,"Full name",Grade,"Maximum Grade"', "no column for modified: 'Last modified \\(grade\\)' or "
                                                     "'Zuletzt geändert \\(Bewertung\\)'"),
    ('Identifier,Grade,"Last modified (grade)",Scale', "has no maximum grade column"),
    ('Identifier,Grade,Grade,"Maximum Grade","Last modified (grade)"', "several columns are named as the grade column"),
    ("Student,ID,SIS Login ID,Section", "is not a Moodle grading worksheet, or is in a language we do not know"),
])
def test_worksheet_without_its_columns_is_refused(tmp_path, results, header, words):
    """Does a worksheet Moodle would not take back (or a Canvas export) get a clear error, nothing written?"""
    (tmp_path / "sheet.csv").write_text(header + "\n")
    with pytest.raises(GradebookError, match=words):
        fill_moodle(worksheet=tmp_path / "sheet.csv", grades=results, out=tmp_path / "filled.csv")
    assert not (tmp_path / "filled.csv").exists()


def test_feedback_column_must_be_there_when_asked(tmp_path, results):
    """Without a feedback comments column, is --feedback refused with how to enable it?"""
    sheet = tmp_path / "sheet.csv"
    sheet.write_text('Identifier,Grade,"Maximum Grade","Last modified (grade)"\n"Participant 100201",,100.00,-\n')
    with pytest.raises(GradebookError, match="no feedback comments column .* Enable 'Feedback comments'"):
        fill_moodle(worksheet=sheet, grades=results, out=tmp_path / "filled.csv", feedback=True)


def test_other_site_language_by_named_headers(tmp_path, results):
    """A French worksheet: with its headers named, is it filled like an English one?"""
    sheet = tmp_path / "sheet.csv"
    sheet.write_text('Identifiant,Note,"Note maximale","Dernière modification (note)"\n"Participant 100201",,'
                     '100.00,-\n')
    headers = {"identifier": "Identifiant", "grade": "Note", "maximum": "Note maximale",
               "modified": "Dernière modification (note)"}
    with pytest.raises(GradebookError, match="in a language we do not know"):
        fill_moodle(worksheet=sheet, grades=results, out=tmp_path / "filled.csv")
    report = fill_moodle(worksheet=sheet, grades=results, out=tmp_path / "filled.csv", headers=headers)
    assert report.filled == [("Participant 100201 (no name shown)", "91.50")]
    assert (tmp_path / "filled.csv").read_text().splitlines()[1] == '"Participant 100201",91.50,100.00,-'


def test_cli_fills_and_prints_the_summary(tmp_path, results, capsys):
    """Does `python -m grader moodle` exit 0 and print what it filled and whom it could not match?"""
    out = tmp_path / "filled.csv"
    assert cli.main(["moodle", str(GOLDEN / "moodle_worksheet_de.csv"), "--grades", str(results), "--feedback",
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"Filled 2 grade(s) into the Grade column of {out}." in printed
    assert "Students in the gradebook without a grade (2):\n  Teilnehmer/in100203 (Carol Nguyen)" in printed
    assert "Grades with no student in the gradebook (2):\n  Erin_Meyer_100205_assignsubmission_file_" in printed
    assert "Upload grading worksheet" in printed
    assert out.read_bytes() == (GOLDEN / "moodle_worksheet_de.filled.csv").read_bytes()


@pytest.mark.parametrize("args, words", [
    (["--header", "grade"], "--header takes ROLE=TEXT"),
    (["--header", "colour=Farbe"], "Unknown header role\\(s\\) colour"),
    (["--out", str(GOLDEN / "moodle_worksheet_en.csv")], "--out is the input file itself"),
])
def test_cli_usage_errors_exit_2(tmp_path, results, capsys, args, words):
    """Does a usage or configuration error exit 2 with the message, leaving the worksheet as it was?"""
    before = (GOLDEN / "moodle_worksheet_en.csv").read_bytes()
    argv = ["moodle", str(GOLDEN / "moodle_worksheet_en.csv"), "--grades", str(results), *args]
    assert cli.main(argv + ([] if "--out" in args else ["--out", str(tmp_path / "f.csv")])) == 2
    assert re.search(words, capsys.readouterr().err)
    assert (GOLDEN / "moodle_worksheet_en.csv").read_bytes() == before and not (tmp_path / "f.csv").exists()
