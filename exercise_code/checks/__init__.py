"""
Student-facing checks, run from the notebooks: each prints one PASS / FAIL /
NOT IMPLEMENTED line per check and a "Tests passed: k/n" summary (runner.py).
"""
from ..util.check_runner import Check, CheckFailure, check, expect_at_most, expect_equal, run_checks

__all__ = ["Check", "CheckFailure", "check", "expect_at_most", "expect_equal", "run_checks"]
