"""
The nbgrader config of the small courses the tests build (a notebook or two, a few
students): JailedExecute in place of nbgrader's Execute, and every path relative to
the config file itself, so that a generated course can be copied.
"""

SMALL_COURSE_CONFIG = """
from pathlib import Path
HERE = Path(__file__).resolve().parent
c = get_config()
c.CourseDirectory.root = str(HERE)
c.CourseDirectory.course_id = "small"
c.CourseDirectory.db_url = f"sqlite:///{HERE / 'gradebook.db'}"
c.Autograde.autograde_preprocessors = [
    "grader.kernel_jail.JailedExecute",   # in place of nbgrader.preprocessors.Execute
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
"""
