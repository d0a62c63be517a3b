"""Parallel grading: a process that dies loses only its own task, and we know which one."""
import os
import time

from grader.parallel import run_isolated


def square_or_die(x):
    """A task that kills its process for x == 3 (like a segfault in a library would)."""
    if x == 3:
        os._exit(1)
    time.sleep(0.05)
    return x * x


def test_a_crash_loses_only_its_own_task():
    """Does a process crash on one task leave every other result, and report that task as crashed?"""
    results, crashed = {}, {}
    run_isolated(square_or_die, [(x, (x,)) for x in range(6)], jobs=2,
                 on_result=results.__setitem__, on_crash=crashed.__setitem__)
    assert results == {0: 0, 1: 1, 2: 4, 4: 16, 5: 25}
    assert list(crashed) == [3] and "died 2 times" in crashed[3]


def test_one_job_keeps_the_order():
    """With one job, are tasks done in the order given?"""
    order = []
    run_isolated(square_or_die, [(x, (x,)) for x in (5, 1, 4)], jobs=1,
                 on_result=lambda key, value: order.append(key), on_crash=None)
    assert order == [5, 1, 4]
