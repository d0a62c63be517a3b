"""
Run gradings in parallel processes, so that a crash loses nothing but itself.

Each of the `jobs` slots is a process pool of one process, fed one task at a
time. When a process dies (a segfault in a library, the kernel's OOM killer),
only the task it was running fails, we know exactly which one, and the slot
gets a fresh process. A task whose process dies twice is reported as crashed.
Processes come from a fork server: a clean process started once, which has
imported fn's module (and so torch) but never run anything; forking it is
quick, and forking it is safe because it has no threads or thread pools.
"""
import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

ATTEMPTS = 2   # a process that dies once may have been unlucky; twice, it is the task


def run_isolated(fn, tasks, *, jobs, on_result, on_crash, initializer=None, initargs=()):
    """
    Call fn(*args) for every (key, args) in tasks, in up to `jobs` processes.

    Inputs:
    - fn: A module-level function (it is pickled by name)
    - tasks: List of (key, args)
    - jobs: Number of processes
    - on_result: Called in this process as on_result(key, value) for each result
    - on_crash: Called as on_crash(key, reason) for a task whose process died ATTEMPTS times
    - initializer, initargs: Run once in each new process (e.g. to receive shared data)

    An exception raised by fn itself is not a crash: it propagates (fn should
    turn its own failures into values).
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([fn.__module__])   # no effect once the server runs: it has it already
    new_slot = lambda: ProcessPoolExecutor(1, mp_context=context, initializer=initializer, initargs=initargs)  # noqa: E731
    queue = [(key, args, 1) for key, args in reversed(tasks)]   # popped from the end: in the given order
    slots = [new_slot() for _ in range(min(jobs, len(tasks)))]
    free, running = list(range(len(slots))), {}   # running: future -> (slot index, task)
    try:
        while queue or running:
            while queue and free:
                index, task = free.pop(), queue.pop()
                running[slots[index].submit(fn, *task[1])] = (index, task)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                index, (key, args, attempt) = running.pop(future)
                free.append(index)
                try:
                    value = future.result()
                except BrokenProcessPool:
                    slots[index].shutdown(wait=False)
                    slots[index] = new_slot()
                    if attempt < ATTEMPTS:
                        queue.append((key, args, attempt + 1))
                    else:
                        on_crash(key, f"the grading process died {ATTEMPTS} times on this submission")
                    continue
                on_result(key, value)
    finally:
        for slot in slots:
            slot.shutdown(wait=True, cancel_futures=True)
