"""The end of every benchmark: one PASS/FAIL line per target, and the exit status."""


def report(checks):
    """
    Print each target's verdict.

    Inputs:
    - checks: List of (description, passed)

    Returns:
    - The exit status: 0 when every target is met, else 1
    """
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'} {name}")
    return 0 if all(ok for _, ok in checks) else 1
