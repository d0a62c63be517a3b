"""
Where grade() runs the steps before the score (pipeline.predict): here, or on Dask.

    jobs=1, no scheduler     in this process, one submission after another
    jobs=N                   a local Dask cluster in this process: N workers of one thread each
                             (each submission's code runs in a jailed child of its own: grader/forkserver.py), and
                             nothing listening on the network
    scheduler=ADDRESS        a running Dask cluster ("tcp://host:8786", "tls://host:8786"; see the
                             README: started by hand, on Slurm or on Kubernetes)

A task gets the submission's files and the test images, never the labels: the
score is computed in this process (pipeline.finish), so a worker, and the
student code it runs, has nothing to leak. Fail closed: every worker must start
the jail before anything is sent, and a worker that cannot refuses the task. A
task that raised is retried once; a task whose worker died is rescheduled once
(the scheduler's distributed.scheduler.allowed-failures = 1, see the README);
after that the submission gets a result that says so, to be graded again on the
next run, and the batch goes on. Dask has no per-task timeout: the jail's
wall-clock kill (timeout_s) is the one that counts.
"""
import logging
import tempfile
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import forkserver
from .errors import CheckFailed
from .jail import Limits
from .pipeline import Context, Outcome, grader_failure, predict
from .sandbox import IsolationError, detect_isolation
from .unpack import pack

CONNECT_TIMEOUT_S = 30
# The local cluster lives in the grader's process: no statistical profiler sampling its threads every 10 ms,
# no memory monitor (each submission's code runs in a jail with its own memory limit).
LOCAL_CONFIG = {"distributed.worker.profile.enabled": False,
                "distributed.worker.memory.monitor-interval": "1s", "distributed.worker.memory.target": False,
                "distributed.worker.memory.spill": False, "distributed.worker.memory.pause": False,
                "distributed.worker.memory.terminate": False}
# Worker processes: a task whose worker died is rescheduled once, as the README asks of a cluster's scheduler.
# The first ones fork from this process, which has imported nbgrader and torch already: spawned, each would
# import them again (6 s of a 2-core machine). A worker is trusted code of the instructor, as this process is;
# student code only ever runs in the jail, a program of its own (exec). A worker that replaces one that died
# is spawned: the setting holds while the cluster starts.
LOCAL_PROCESSES_CONFIG = {"distributed.scheduler.allowed-failures": 1,
                          "distributed.worker.multiprocessing-method": "fork"}
IN_FLIGHT_PER_THREAD = 2   # submissions sent ahead of the workers: enough to keep them busy
LOOPBACK = "127.0.0.1:0"   # any free port, on this machine only
INSTALL = "pip install -e '.[cluster]' (make setup does)"


class ClusterError(RuntimeError):
    """The cluster cannot be used (not installed, unreachable, a worker that cannot jail); the message says why."""


@dataclass(frozen=True)
class TaskSpec:
    """What a task needs besides the submission and the images (no labels); scratch: where its scratch folder
    goes on a local cluster (None: the worker's temporary folder); checks, batch: Context's."""
    limits: Limits
    isolation: str
    scratch: str | None = None
    checks: tuple = ()
    batch: str = ""


@contextmanager
def runner(jobs, scheduler=None):
    """
    with runner(jobs, scheduler) as run: for name, outcome in run(todo, context): ...

    Inputs:
    - jobs: Submissions at once on the local cluster (1: in this process, no cluster)
    - scheduler: Address of a running Dask scheduler, or None

    Yields:
    - run(todo, context): an iterator of (name, Outcome), in the order they finish, for
      todo a list of (name, source) and context the run's Context (its labels stay here)
    """
    if scheduler is None and jobs == 1:
        yield _here
        return
    with connect(jobs, scheduler) as client:
        yield lambda todo, context: _on_cluster(client, todo, context, local=scheduler is None)


@contextmanager
def connect(jobs=1, scheduler=None, processes=False):
    """
    with connect(jobs, scheduler) as client: ...

    A Dask client of the scheduler at address `scheduler`, or, without one, of a local
    cluster: `jobs` workers of one thread, inside this process (or, with processes, each
    a process of its own, which 127.0.0.1 alone reaches), nothing listening beyond this
    machine. Raises ClusterError (with what to do) if Dask is missing or the cluster
    cannot be reached.
    """
    distributed = _import_distributed()
    cluster = None
    try:
        if scheduler is None:
            import dask
            with dask.config.set({**LOCAL_CONFIG, **(LOCAL_PROCESSES_CONFIG if processes else {})}):
                # Its HTTP servers (a dashboard, health checks) would listen on every interface by default.
                cluster = distributed.LocalCluster(n_workers=jobs, threads_per_worker=1, processes=processes,
                                                   host="127.0.0.1" if processes else None,
                                                   dashboard_address=LOOPBACK, worker_dashboard_address=LOOPBACK,
                                                   silence_logs=logging.CRITICAL)
            client = distributed.Client(cluster)
        else:
            _require_tls_settings(scheduler)
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except OSError as error:   # TimeoutError included
        if scheduler is None:
            raise ClusterError(f"Cannot start a local Dask cluster of {jobs} workers: {error}") from None
        raise ClusterError(f"Cannot reach the Dask scheduler at {scheduler}: {error}. Is it running, and is "
                           "the address (tcp:// or tls://) right?") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _here(todo, context):
    for name, source in todo:
        try:
            outcome = predict(source, context)
        except Exception as error:   # a bug of ours outside the steps: this submission's result says so
            outcome = _failed(error)
        yield name, outcome


def _on_cluster(client, todo, context, local):
    distributed = _import_distributed()
    require_workers(client, jail_problem, context.isolation)
    images = shared(client, np.load(context.images), "test-images")
    spec = TaskSpec(limits=context.limits, isolation=context.isolation, scratch=str(context.scratch) if local else None,
                    checks=context.checks, batch=context.batch)

    def submit(item):
        name, source = item
        try:
            payload = pack(source)
        except CheckFailed as error:   # refused as unpack would refuse it: nothing to send
            return Outcome(failure=str(error))
        return submit_large(client, predict_on_worker, payload, Path(source).name, images, spec, key=f"grade-{name}")

    for (name, _), done in in_flight(client, todo, submit):
        if not isinstance(done, distributed.Future):
            yield name, done
            continue
        try:
            outcome = done.result()
        except distributed.KilledWorker as error:   # its worker died, and the one it was retried on
            outcome = _failed(error, "the machines grading it stopped, twice")
        except IsolationError as error:   # a worker that cannot jail joined after the start: refused
            outcome = _failed(error, "no machine could isolate your code")
        except Exception as error:   # the task raised twice: a bug of ours, or a broken worker
            outcome = _failed(error)
        yield name, outcome
    client.run(forkserver.close_batch, context.batch, on_error="ignore")   # the workers' jails of this batch


def in_flight(client, items, submit):
    """
    Send items to the cluster as its workers free up, and yield each as it finishes.

    At most IN_FLIGHT_PER_THREAD items per worker thread are on the cluster at once,
    which bounds the scheduler's memory (an item may carry a 20 MB model).

    Inputs:
    - client: A Dask client
    - items: An iterable of items
    - submit: submit(item) -> a Dask future, or any other value when there is nothing to send

    Yields:
    - (item, what submit returned): a finished future, in the order they finish; a value
      that is not a future, at once
    """
    distributed = _import_distributed()
    limit = IN_FLIGHT_PER_THREAD * sum(worker["nthreads"] for worker in client.scheduler_info()["workers"].values())
    waiting, running, item_of = iter(items), distributed.as_completed(), {}

    def fill():
        for item in waiting:
            future = submit(item)
            if not isinstance(future, distributed.Future):
                yield item, future
                continue
            item_of[future] = item
            running.add(future)
            if running.count() >= limit:
                return

    yield from fill()
    for future in running:
        yield item_of.pop(future), future
        yield from fill()


def submit_large(client, function, *args, key):
    """client.submit(function, *args) of a task that is retried once, whose arguments may be megabytes."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sending large graph", UserWarning)   # a model of up to 20 MB
        return client.submit(function, *args, pure=False, retries=1, key=f"{key}-{uuid.uuid4().hex}")


def shared(client, value, name):
    """
    A future of value, sent once for all the tasks of a batch: as a task, not scattered
    data, so that the scheduler makes it again (from its graph) when the worker that
    holds it dies. Scattered data would be lost with it, and the batch cancelled.
    """
    return client.submit(_same, value, key=f"{name}-{uuid.uuid4().hex}", pure=False)


def _same(value):
    return value


def _failed(error, reason=None):
    """The Outcome of a grading that raised: the grader's fault, graded again on the next run."""
    failure, details = grader_failure(error, reason)
    return Outcome(failure=failure, grader_error=details)


def predict_on_worker(payload, filename, images, spec):
    """
    The task, on a Dask worker: pipeline.predict of one submission.

    Inputs:
    - payload: The submission as the bytes of a zip (unpack.pack)
    - filename: Its file name, as the student named it (the messages name it)
    - images: uint8 array (N, 96, 96), the test images
    - spec: TaskSpec

    Returns:
    - Outcome. Raises IsolationError if this worker cannot start the jail: it never runs student code unjailed.
    """
    isolation = detect_isolation(spec.isolation)
    with tempfile.TemporaryDirectory(prefix="grader-task-", dir=spec.scratch) as scratch:
        scratch = Path(scratch)
        scratch.chmod(0o711)   # isolation "user": the worker's uid passes through to its own folder ...
        (scratch / "submission").mkdir(mode=0o700)   # ... but never reads the submission as sent
        source = scratch / "submission" / Path(filename).name
        source.write_bytes(payload)
        images_path = scratch / "images.npy"
        np.save(images_path, images)
        images_path.chmod(0o644)   # the jailed worker's unprivileged user reads it
        context = Context(images=images_path, count=len(images), scratch=scratch, limits=spec.limits,
                          isolation=isolation, checks=spec.checks, batch=spec.batch)
        return predict(source, context)


def jail_problem(isolation):
    """None if this worker can start the isolation; else why not (run on every worker before any task)."""
    try:
        detect_isolation(isolation)
    except IsolationError as error:
        return str(error)
    return None


def require_workers(client, probe, *args):
    """
    Raise ClusterError, naming a worker and why, unless probe(*args), run on every worker
    of the cluster, returns None there (fail closed: checked before any task is sent).
    """
    problems = {worker: problem for worker, problem in client.run(probe, *args).items() if problem}
    if not client.scheduler_info()["workers"]:
        raise ClusterError("The Dask cluster has no workers: start some (dask worker ADDRESS), then grade again")
    if problems:
        worker, problem = next(iter(problems.items()))
        raise ClusterError(f"{len(problems)} worker(s) of the cluster cannot grade, so nothing was graded; "
                           f"{worker}: {problem}. Fix those machines or stop their workers.")


def _require_tls_settings(scheduler):
    import dask

    needed = ("distributed.comm.tls.ca-file", "distributed.comm.tls.client.cert", "distributed.comm.tls.client.key")
    if str(scheduler).startswith("tls://") and not all(dask.config.get(name, None) for name in needed):
        raise ClusterError(f"{scheduler} takes TLS connections only, and the grader has no certificate: set "
                           "DASK_DISTRIBUTED__COMM__TLS__CA_FILE, DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT and "
                           "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY (see the README)")


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ClusterError(f"Grading with --jobs above 1 or --scheduler runs on Dask, which is not installed: "
                           f"{INSTALL}") from None
    return distributed
