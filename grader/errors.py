"""
The grader's two kinds of failure: the student's (CheckFailed) and its own (GraderError).

    raise CheckFailed("model_file", messages.NO_MODEL_FILE.format(hint=""))

Every check of a submission (unpack, model file, plain data, parameters, code,
predictions) raises CheckFailed naming itself; the submission then scores 0 and
the student reads the message. GraderError, or any other exception, is our
fault: the result says so, and the submission is graded again on the next run.
"""


class CheckFailed(Exception):
    """
    A check of the submission failed.

    - check: The check's name, a key of messages.TITLES ("unpack", "model_file", ...)
    - message: What went wrong and how to fix it, for the student
    """

    def __init__(self, check, message):
        super().__init__(message)
        self.check = check


class GraderError(RuntimeError):
    """The grader could not grade this submission, through no fault of the student."""
