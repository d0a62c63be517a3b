"""
A Dask cluster as an instructor starts one by hand: a scheduler and workers, each
a separate `dask` process on 127.0.0.1 (the tests of grader/cluster.py and of the
class autograde on a cluster).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import distributed


class Cluster:
    """A Dask scheduler and workers, each a separate process on 127.0.0.1, as an instructor starts them."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.file = self.folder / "scheduler.json"
        self.processes = []
        env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}
        self.processes.append(self._start(["scheduler", "--host", "127.0.0.1", "--port", "0",
                                           "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(self.file)],
                                          env, "scheduler"))
        wait_for(self.file.exists, "the scheduler to start")
        self.address = json.loads(self.file.read_text())["address"]

    def add_worker(self, name, env=None):
        """Start a worker (no nanny: once killed, it stays dead); returns its process."""
        process = self._start(["worker", "--scheduler-file", str(self.file), "--nthreads", "1", "--no-nanny",
                               "--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0", "--name", name],
                              env or dict(os.environ), name)
        self.processes.append(process)
        with distributed.Client(self.address, timeout=30) as client:
            wait_for(lambda: any(w["name"] == name for w in client.scheduler_info()["workers"].values()),
                      f"worker {name} to join")
        return process

    def _start(self, args, env, name):
        log = open(self.folder / f"{name}.log", "w")
        return subprocess.Popen([str(Path(sys.executable).with_name("dask")), *args], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def close(self):
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(condition, what, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s} s for {what}")
        time.sleep(0.2)
