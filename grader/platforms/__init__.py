"""
Adapters for the places courses already grade and keep grades, each a verb of
`python -m grader`. The grading itself is always grader.api.grade.

    gradescope.py           the autograder zip, and run() inside Gradescope's container
    gradescope_results.py   results.json checked against Gradescope's spec (its schema beside it)
    prairielearn.py         the external grader's entrypoint, its image and the question's info.json
    container.py            what the two share: secrets locked, jail or else isolation "user", one submission
    canvas.py               one column of an instructor's Canvas gradebook export, filled in
    moodle.py               an assignment's offline grading worksheet, filled in
    gradebook_fill.py       what the two share: matching students, refusing grades the LMS would drop
    grades_source.py        the grades, from a results folder or nbgrader's export
    csv_cells.py            a CSV edited cell by cell, every other byte kept
    files/                  the templates of the platforms' scripts and images
"""
