"""
Grades for the gradebook tests (test_canvas.py, test_moodle.py): a results folder as
`python -m grader grade --out DIR` writes it, and nbgrader CSVs made from the golden one.
"""
from pathlib import Path

from grader.results import Result, write_json_atomic

GOLDEN = Path(__file__).parent / "golden"


def results_folder(folder, points, *, max_points=100.0, extra=None):
    """
    Write one result file per submission, as the grader does.

    Inputs:
    - folder: The results folder (created)
    - points: Dict submission name -> points, or -> (points, raw score) to set the summary
      the student reads ("Score <raw> <full points>" and "Well done" on a second line)
    - extra: Optional dict name -> extra_data entries (say {"grader_error": "..."})
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in points.items():
        score, raw = value if isinstance(value, tuple) else (value, value)
        result = Result(submission=name, score=score, max_points=max_points, raw_score=raw,
                        output=f"Score {raw:.2f} <full points>\nWell done", tests=[], execution_time=1.0,
                        extra=dict((extra or {}).get(name, {})))
        write_json_atomic(folder / f"{name}.json", result)
    return folder


def nbgrader_csv(path, *rows):
    """The golden nbgrader export's header with the given rows (lines of text) below it."""
    header = (GOLDEN / "nbgrader_grades.csv").read_text().splitlines()[0]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path
