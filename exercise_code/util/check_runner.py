"""
A small runner for student-facing checks: one friendly line per check, never a traceback.

    @check("spatial_batchnorm_forward means")
    def means():
        out, _ = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
        return expect_at_most("max |mean - beta|", np.abs(out.mean(axis=(0, 2, 3)) - beta).max(), 1e-6)

    run_checks([means, ...])

A check is a function of no arguments with a name (the @check decorator gives it
one; a plain function goes by its __name__). It returns a few words on what it
found, or raises CheckFailure saying what it found and what it expected. Running
a list prints, per check, one of

    PASS spatial_batchnorm_forward means: max |mean - beta| = 3.1e-16 (limit 1e-06)
    FAIL spatial_batchnorm_forward stds: max |std - gamma|: found 0.5, expected at most 1e-06
    NOT IMPLEMENTED: spatial_batchnorm_forward in exercise_code/layers.py

and then "Tests passed: k/n". Any other exception becomes a FAIL line with its message.
"""
import traceback
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # exercise_code/
CHECKS_DIR = Path(__file__).resolve().parent


class CheckFailure(AssertionError):
    """A wrong result; the message says what was found and what was expected."""


class Check:
    """A named check: calling it returns a short description of what passed."""

    def __init__(self, name, run):
        self.name, self.run = name, run

    def __call__(self):
        return self.run()

    def __repr__(self):
        return f"Check({self.name!r})"


def check(name):
    """Decorator: turn a function of no arguments into a Check called `name`."""
    return lambda run: Check(name, run)


def expect_at_most(what, found, limit):
    """Return "what = found (limit ...)", or raise CheckFailure if found > limit or is NaN."""
    if not found <= limit:  # written this way round so that NaN fails too
        raise CheckFailure(f"{what}: found {found:.2g}, expected at most {limit:.0e}")
    return f"{what} = {found:.2g} (limit {limit:.0e})"


def expect_equal(what, found, expected):
    """Return "what = found", or raise CheckFailure if found != expected."""
    if found != expected:
        raise CheckFailure(f"{what}: found {found}, expected {expected}")
    return f"{what} = {found}"


def run_check(check):
    """
    Run one check, catching everything it raises.

    Returns a tuple of:
    - passed: Whether the check passed
    - line: The line to print, starting with PASS, FAIL or NOT IMPLEMENTED
    """
    name = getattr(check, "name", None) or check.__name__
    try:
        message = check()
    except CheckFailure as failure:
        return False, f"FAIL {name}: {failure}"
    except NotImplementedError as error:
        detail = f" ({error})" if str(error) else ""  # the stubs raise it without a message
        return False, f"NOT IMPLEMENTED: {_unimplemented(error) or name}{detail}"
    except Exception as error:  # a crash in student code is a failed check, not a traceback
        return False, f"FAIL {name}: {type(error).__name__}: {error}"
    return True, f"PASS {name}" + (f": {message}" if message else "")


def run_checks(checks):
    """
    Run checks in order, print one line for each and a summary line.

    Returns a tuple of:
    - passed: Number of checks that passed
    - total: Number of checks
    """
    checks = list(checks)
    passed = 0
    for one in checks:
        ok, line = run_check(one)
        print(line)
        passed += ok
    print(f"Tests passed: {passed}/{len(checks)}")
    return passed, len(checks)


def _unimplemented(error):
    """'function in exercise_code/file.py' for the package code that raised error, or None."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        path = Path(frame.filename).resolve()
        # The innermost package frame outside the checks is the stub that needs writing.
        if path.is_relative_to(PACKAGE_DIR) and not path.is_relative_to(CHECKS_DIR):
            return f"{frame.name} in {path.relative_to(PACKAGE_DIR.parent).as_posix()}"
    return None
