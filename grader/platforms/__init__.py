"""
Adapters for the places courses already grade and keep grades:

    gradescope.py    the autograder zip, and run_autograder inside Gradescope's container
    prairielearn.py  the external grader's entrypoint, its image and the question's info.json
    canvas.py        one column of an instructor's Canvas gradebook export, filled in
    moodle.py        an assignment's offline grading worksheet, filled in

Each is a verb of `python -m grader`. The grading itself is always grader.api.grade.
"""
