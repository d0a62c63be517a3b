"""
A JupyterLab server for one test, as a student or an instructor starts it, but
private: it listens on 127.0.0.1 on a free port, asks for a random token, opens
no browser, and keeps its settings, workspaces and runtime files in a temporary
folder (never in ~/.jupyter or ~/.local).

    with LabServer(root, env={...}, home=tmp_path / "lab") as server:
        page.goto(server.url("lab/tree/exercise_09/1_facial_keypoints.ipynb"))

Its own settings make the notebook easy to read from the DOM: every cell is in
the page (no windowed notebook, which leaves out cells scrolled out of view),
and no news or update notification covers the page.
"""
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# User settings of JupyterLab, as the Settings Editor would save them.
LAB_SETTINGS = {
    # "none": every cell stays in the DOM. JupyterLab 4's default renders only the cells in view.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    # No "Would you like to receive official Jupyter news?" toast, and no fetch of the news.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
}
START_TIMEOUT_S = 90   # the server imports nbgrader's extensions too (a few seconds on a busy machine)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LabServer:
    """
    `jupyter lab` on 127.0.0.1, run from `root` (the folder it shows, and where
    nbgrader's formgrader finds nbgrader_config.py).

    Inputs:
    - root: The folder to serve
    - home: A folder of its own for settings, workspaces and runtime files (made if missing)
    - env: Environment variables to set for the server and its kernels (a value of None unsets one)
    """

    def __init__(self, root, home, env=None):
        self.root, self.home = Path(root), Path(home)
        self.extra_env = dict(env or {})
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.process, self.log_path = None, self.home / "server.log"

    def __repr__(self):
        return f"LabServer(root={str(self.root)!r}, port={self.port})"

    def url(self, path=""):
        """The address of `path` on this server, token included (it logs the browser in)."""
        separator = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}{separator}token={self.token}"

    def log(self):
        """What the server has printed so far (its log, kernels' messages included)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self):
        for name, settings in LAB_SETTINGS.items():
            path = self.home / "settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(settings))
        env = {**os.environ,
               "JUPYTERLAB_SETTINGS_DIR": str(self.home / "settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(self.home / "workspaces"),
               "JUPYTER_RUNTIME_DIR": str(self.home / "runtime"),
               # nbgrader runs the `alembic` of its own environment: this Python's bin/ goes first.
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        for name, value in self.extra_env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        # jupyter-lab's own script, not `python -m jupyter`: -m would put `root` first on sys.path.
        command = [str(Path(sys.executable).parent / "jupyter-lab"), "--no-browser",
                   "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                   f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
                   "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if os.geteuid() == 0:
            command.append("--allow-root")   # a course machine's test run (or CI's container) may be root
        with self.log_path.open("w") as log:
            # A session of its own: on exit we stop the server and every kernel it started, by group.
            self.process = subprocess.Popen(command, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        try:
            self._wait_until_up()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_until_up(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"jupyter lab did not answer on port {self.port} within {START_TIMEOUT_S} s:\n{self.log()}")

    def __exit__(self, *exc):
        if self.process is None or self.process.poll() is not None:
            return
        # SIGTERM: the server shuts its kernels down and exits. Kernels run in sessions of their own
        # (jupyter_client starts them so), so any the server leaves behind are found by their
        # connection file, which lies in our runtime folder, and killed one by one.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for pid in self._kernel_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _kernel_pids(self):
        """The processes whose command line names a file of our runtime folder (our kernels)."""
        runtime, pids = str(self.home / "runtime"), []
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and runtime in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:   # it ended while we looked
                continue
        return pids
