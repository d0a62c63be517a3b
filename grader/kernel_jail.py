"""
The student's notebook kernel during `nbgrader autograde`, in the pack's jail (grader/jail.py).

    nbgrader autograde
      -> JailedExecute            the Execute step (nbgrader_config.py), refuses if the jail cannot start
        -> AsyncKernelManager     made by nbclient with nbgrader's config
          -> JailedProvisioner    jupyter_client's extension point for how a kernel is launched
            -> bwrap ... python -m ipykernel_launcher -f <connection file>

What the kernel gets (besides what every jailed process gets, see grader/jail.py):

- a private copy of the notebook's folder (autograded/<student>/<assignment>/) as its
  working folder, so whatever it writes never reaches the files nbgrader reads;
- the training data named by $FACIAL_KEYPOINTS_DIR, read-only;
- NBGRADER_EXECUTION, FACIAL_KEYPOINTS_DIR and MPLBACKEND of nbgrader's environment, and
  nothing else of it;
- its sockets in a per-kernel folder under /tmp: the jail has its own network, so the
  kernel talks over unix sockets ("ipc"), not loopback TCP.

Settings (nbgrader_config.py):

    c.StudentCodeIsolation.isolation = "none"   # the ONLY way to run student code unjailed
    c.JailedProvisioner.memory_mb = 4096        # and cpu_s, timeout_s, processes

Install the kernelspec once per environment (`make setup` does it):

    python -m grader.kernel_jail install
"""
import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from queue import Empty

import nbformat
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.provisioning import KernelProvisionerFactory, LocalProvisioner
from nbgrader.preprocessors import Execute
from traitlets import Enum, Integer, Unicode
from traitlets.config import Configurable

from . import jail
from .replay import Replay, folder_digest, replay_key

KERNEL_NAME = "facial-keypoints-jail"       # the kernelspec's name
PROVISIONER_NAME = "facial-keypoints-jail"  # the entry point's name (pyproject.toml)
METADATA_KEY = "facial_keypoints"           # nb.metadata[METADATA_KEY] = {"isolation": ...}
DATA_ENV = "FACIAL_KEYPOINTS_DIR"
PASSED_ENV = ("NBGRADER_EXECUTION", DATA_ENV, "MPLBACKEND")   # never JPY_PARENT_PID: see JailedProvisioner
# Per-kernel folders: /tmp, not $TMPDIR, because a unix socket's path has at most 107 bytes.
FOLDERS = Path("/tmp")
FOLDER_PREFIX = "fkj-"


class StudentCodeIsolation(Configurable):
    """The one isolation setting for every step of autograde that runs student code."""

    isolation = Enum(jail.KERNEL_ISOLATIONS, default_value="jail", help=(
        "How student code runs during autograde. "
        + " ".join(f"{name!r}: {text}." for name, text in jail.DESCRIPTIONS.items())
        + " If the jail cannot start, autograde refuses to run; 'none' is never chosen for you.")
    ).tag(config=True)


class JailedProvisioner(LocalProvisioner):
    """
    Launch the kernel in the jail: a LocalProvisioner whose command is prefixed with
    jail.jail_command, talking to the kernel over unix sockets in a per-kernel folder.

    Its parent is the kernel manager, whose config (nbgrader's) sets the traits below
    and StudentCodeIsolation. With isolation "none" it is a plain LocalProvisioner.
    """

    memory_mb = Integer(4096, help="Address-space limit of each process in the kernel's jail, in MB").tag(config=True)
    cpu_s = Integer(None, allow_none=True, help="CPU seconds of each process in the jail "
                                                "(default: timeout_s + 10)").tag(config=True)
    timeout_s = Integer(1800, help="Wall-clock seconds the kernel may live, all its cells together; "
                                   "then everything in its jail is killed").tag(config=True)
    processes = Integer(256, help="Processes and threads the kernel's jail may have at once").tag(config=True)
    threads = Integer(2, help="Threads of the kernel's numerical libraries (torch, numpy)").tag(config=True)

    isolation = None   # what the last launch used: "jail" or "none"
    folder = None      # the per-kernel folder: ipc/ (sockets, connection file) and work/ (the private copy)
    _seccomp = None

    def limits(self):
        """The jail.Limits of this kernel."""
        return jail.Limits(timeout_s=self.timeout_s, memory_mb=self.memory_mb, cpu_s=self.cpu_s,
                           processes=self.processes, threads=self.threads)

    async def pre_launch(self, **kwargs):
        """Make the per-kernel folder and the private copy; return the launch arguments with the jail's command."""
        self.isolation = StudentCodeIsolation(parent=self).isolation
        if self.isolation == "none":
            return await super().pre_launch(**kwargs)
        jail.require("jail")   # fail closed: JailUnavailable says what to install
        sweep_stale_folders(self.log)
        km = self.parent
        self.folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{_owner_tag(os.getpid())}-", dir=FOLDERS))
        try:
            uid = jail.new_uid()
            ipc = self.folder / "ipc"
            ipc.mkdir()
            km.transport, km.cache_ports = "ipc", False   # loopback TCP does not cross the jail's network namespace
            km.ip = str(ipc / "kernel")                   # absolute: a relative prefix lands in the notebook's folder
            km.connection_file = str(ipc / "kernel.json")
            # Signals would reach bwrap's session, not the kernel: interrupt with a message on the control channel.
            self.kernel_spec.interrupt_mode = "message"
            cwd = kwargs.get("cwd")
            writable, chdir = [ipc], "/tmp"
            if cwd:
                work = self.folder / "work"
                shutil.copytree(cwd, work, symlinks=True)   # links stay links: nothing outside is copied in
                jail.give_to(work, uid)
                binds, chdir = work_folder_binds(work, cwd)
                writable += binds
            kwargs = await super().pre_launch(**kwargs)     # writes the connection file, builds cmd and env
            jail.give_to(ipc, uid)                          # the kernel reads the connection file, binds its sockets
            # Of nbgrader's environment only PASSED_ENV gets in: never JPY_PARENT_PID, with which ipykernel in
            # a PID namespace of its own exits at once (--die-with-parent does that job).
            env = kwargs["env"]
            self._seccomp = jail.seccomp_fd()
            kwargs["cmd"] = jail.jail_command(
                kwargs["cmd"], limits=self.limits(), chdir=chdir, read_only=data_folders(env, cwd),
                writable=writable, env={name: env[name] for name in PASSED_ENV if name in env}, uid=uid,
                seccomp_fd=self._seccomp)
            kwargs["pass_fds"] = (*kwargs.get("pass_fds", ()), self._seccomp)
            # Without JPY_PARENT_PID ipykernel prints a banner to fd 1; nothing there reaches the notebook.
            kwargs.setdefault("stdout", subprocess.DEVNULL)
            self.log.debug("Jailed kernel %s in %s", self.kernel_id, self.folder)
            return kwargs
        except BaseException:
            self._remove_folder()
            raise

    async def launch_kernel(self, cmd, **kwargs):
        """Launch as LocalProvisioner does, then close our end of the seccomp filter (bwrap has read it)."""
        try:
            return await super().launch_kernel(cmd, **kwargs)
        finally:
            self._close_seccomp()

    async def kill(self, restart=False):
        """
        SIGKILL the jail, and reap it before returning: jupyter_client then finds it gone at once
        instead of sleeping 0.1 s before it looks again (a tenth of a second per notebook).
        """
        await super().kill(restart=restart)
        for _ in range(200):   # 1 s at most; the rest is jupyter_client's wait, as before
            if self.process is None or self.process.poll() is not None:
                return
            await asyncio.sleep(0.005)

    async def cleanup(self, restart=False):
        """Remove the per-kernel folder with the private copy (a restart makes new ones)."""
        await super().cleanup(restart=restart)
        self._remove_folder()

    def _close_seccomp(self):
        if self._seccomp is not None:
            os.close(self._seccomp)
            self._seccomp = None

    def _remove_folder(self):
        self._close_seccomp()
        if self.folder is not None:
            jail.remove_folder(self.folder)
            self.folder = None


class PromptKernelClient(AsyncKernelClient):
    """
    jupyter_client's client, ready as soon as the kernel is: it answered kernel_info and its
    IOPub channel is connected (a message came through it).

    jupyter_client then also waits for 0.2 s of silence on IOPub, to drop the status messages
    of kernel_info; that is 0.2 s of nothing per notebook. Those messages need no dropping:
    nbclient reads only the IOPub messages whose parent is the cell it runs.
    """

    async def wait_for_ready(self, timeout=None):
        """Return once the kernel replied to kernel_info and IOPub delivered; RuntimeError on death or timeout."""
        deadline = asyncio.get_running_loop().time() + (float("inf") if timeout is None else timeout)
        while True:
            self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                reply = None
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                try:
                    await self.iopub_channel.get_msg(timeout=0.2)   # connected: what ZMQ sent before is lost
                except Empty:
                    pass
                else:
                    self._handle_kernel_info_reply(reply)
                    return
            if not await self.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout} seconds")


def work_folder_binds(work, cwd):
    """
    Where the kernel sees its private copy of the notebook's folder.

    Returns a tuple of:
    - The `writable` entries for jail.jail_command
    - The kernel's working folder inside the jail

    The copy is bound at the notebook's own path, so the kernel's folder looks as it
    would unjailed (the notebooks find exercise_code/ beside them by their cwd).
    """
    return [(work, cwd)], cwd


def data_folders(env, cwd):
    """The training data folder named by $FACIAL_KEYPOINTS_DIR in the kernel's env, if it is one, to show read-only."""
    data = env.get(DATA_ENV)
    if not data or not Path(data).is_dir():
        return []
    data = Path(data).resolve()
    if cwd and Path(cwd).resolve().is_relative_to(data):
        raise RuntimeError(f"${DATA_ENV}={data} holds the notebook's folder {cwd}: showing it to the kernel "
                           "would show every submission. Point it at the training data only.")
    return [data]


def sweep_stale_folders(log=None):
    """
    Remove the per-kernel folders whose grading process is gone (a SIGKILLed nbgrader
    never cleans up; its jailed kernels died with it). Returns the folders removed.
    """
    removed = []
    for folder in FOLDERS.glob(f"{FOLDER_PREFIX}*-*-*"):
        try:
            pid, tag = folder.name[len(FOLDER_PREFIX):].split("-")[:2]
            mine = folder.lstat().st_uid == os.geteuid() and folder.is_dir() and not folder.is_symlink()
        except (ValueError, OSError):
            continue
        if mine and pid.isdigit() and _owner_tag(int(pid)) != f"{pid}-{tag}":
            jail.remove_folder(folder)
            removed.append(folder)
            if log:
                log.info("Removed the stale kernel folder %s", folder)
    return removed


def _owner_tag(pid):
    """"<pid>-<start time>" of a running process, or "" if there is none: a pid alone may be reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return f"{pid}-{stat.rsplit(')', 1)[1].split()[19]}"   # field 22, starttime; the name in (...) may hold spaces


class JailedExecute(Execute):
    """
    nbgrader's Execute step with the student's kernel in the jail.

    Every kernel it starts is launched by a JailedProvisioner, whatever kernelspec the
    notebook or the config names. Where the jail cannot start it stops the whole
    autograde before any kernel starts (see stop_autograde), unless isolation "none"
    was asked for by name. It records the isolation in nb.metadata["facial_keypoints"].

    The kernel only gives the student feedback: the points come from trusted code
    (grader/nbgrader_plugins.py). So a kernel that dies, or a cell that never ends
    and ignores the interrupt, costs no points: the notebook is kept as far as it
    ran, the failure goes into the cell that was running (an error output that
    the export flags as FAILED) and into the notebook's metadata, and autograde
    goes on. nbgrader alone would drop the whole notebook and give it 0.
    """

    kernel_name = Unicode(KERNEL_NAME, help="The kernelspec to run every notebook with "
                                            "(`python -m grader.kernel_jail install` installs it)").tag(config=True)
    # A graceful shutdown waits about 2 s for ipykernel to exit; nothing of a graded kernel outlives it (its
    # folder is a private copy, removed), so it is killed: 4 s less per student.
    shutdown_kernel = Enum(["graceful", "immediate"], default_value="immediate",
                           help="How a kernel is stopped after its notebook ran").tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.isolation = StudentCodeIsolation(parent=self).isolation
        self.kernel_isolation = None
        use_jailed_provisioner_by_default()

    def preprocess(self, nb, resources=None, km=None):
        """Execute the notebook in the jail (or refuse); record the isolation it ran under."""
        if self.isolation == "jail":
            try:
                jail.require("jail")
            except jail.JailUnavailable as error:
                stop_autograde(f"it will not run student code: {error}", resources, self.config)
        nb.metadata.pop(METADATA_KEY, None)   # never keep what a submission claims
        replay = Replay(parent=self)
        key = replay.folder and self.replay_key(nb, resources)
        saved = key and replay.load("kernel", key)
        if saved:   # a worker of this class autograde ran this very notebook (see grader/replay.py)
            return nbformat.reads(saved, as_version=4), resources
        record = {}
        try:
            nb, resources = super().preprocess(nb, resources, km=km)
        except jail.JailUnavailable as error:   # from the provisioner: never run on without the jail
            stop_autograde(f"it will not run student code: {error}", resources, self.config)
        except Exception as error:   # the student's kernel died or hung: theirs to see, ours to flag
            record["kernel_error"] = f"{type(error).__name__}: {error}"[:500]
            _record_kernel_failure(nb, error)
        nb.metadata[METADATA_KEY] = {"isolation": self.kernel_isolation, **record}
        if key:
            replay.save("kernel", key, nbformat.writes(nb))
        return nb, resources

    def replay_key(self, nb, resources):
        """
        The key of this run: the notebook, whose it is, its folder's files, and what the kernel
        is given. Not the folder's path: a cluster's worker autogrades in a folder of its own.
        """
        folder = Path(resources.get("metadata", {}).get("path") or ".").resolve()
        owner = [resources.get("nbgrader", {}).get(name) for name in ("student", "assignment", "notebook")]
        settings = {name: self.config.get(name, {}) for name in ("Execute", "JailedExecute", "JailedProvisioner")}
        return replay_key(nbformat.writes(nb), owner, folder_digest(folder), self.isolation, self.kernel_name,
                          self.timeout, {name: os.environ.get(name) for name in PASSED_ENV}, settings)

    def create_kernel_manager(self):
        """nbclient's kernel manager, given a JailedProvisioner up front (not left to the kernelspec)."""
        km = super().create_kernel_manager()
        km.kernel_id = km.kernel_id or str(uuid.uuid4())
        km.provisioner = JailedProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)
        km.client_class = f"{__name__}.PromptKernelClient"
        return km

    def start_new_kernel(self, **kwargs):
        """Start the kernel, then make sure it is the jail's (or that "none" was asked for)."""
        super().start_new_kernel(**kwargs)
        provisioner = self.km.provisioner
        self.kernel_isolation = getattr(provisioner, "isolation", None)
        if self.isolation != "none" and not (isinstance(provisioner, JailedProvisioner)
                                             and self.kernel_isolation == "jail"):
            self._cleanup_kernel()
            stop_autograde(f"the kernel was started by {type(provisioner).__name__}, not in the jail",
                           self.resources, self.config)


def _record_kernel_failure(nb, error):
    """Put an error output for `error` in the cell that was running (started, never answered), or the last one."""
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    running = [cell for cell in code if "shell.execute_reply" not in cell.metadata.get("execution", {})
               and "iopub.execute_input" in cell.metadata.get("execution", {})]
    cell = (running or code or [None])[0]
    if cell is not None:
        cell.setdefault("outputs", []).append(nbformat.v4.new_output(
            "error", ename=type(error).__name__, evalue=str(error)[:500],
            traceback=[f"{type(error).__name__}: {error} (autograde went on; the grader's points do not depend "
                       "on this kernel)"]))


def stop_autograde(reason, resources, config):
    """
    Stop the whole `nbgrader autograde` run: SystemExit, because nbgrader catches an
    Exception per student and goes on to the next.

    Autograde has already written this student's sanitized notebook to autograded/;
    left there, a later run without --force would skip the student (nbgrader does not
    redo a folder that exists). So remove the student's autograded folder first, as
    nbgrader does when a student's autograde fails.
    """
    from nbgrader.coursedir import CourseDirectory

    ids = (resources or {}).get("nbgrader", {})
    if "student" in ids and "assignment" in ids:
        coursedir = CourseDirectory(config=config)
        shutil.rmtree(coursedir.format_path(coursedir.autograded_directory, ids["student"], ids["assignment"]),
                      ignore_errors=True)
    raise SystemExit(f"nbgrader autograde stopped: {reason}")


def use_jailed_provisioner_by_default():
    """Make JailedProvisioner the default for every kernelspec that names no provisioner, in this process."""
    os.environ[KernelProvisionerFactory.default_provisioner_name_env] = PROVISIONER_NAME
    if KernelProvisionerFactory.initialized():   # the singleton read the variable when it was made
        KernelProvisionerFactory.instance().default_provisioner_name = PROVISIONER_NAME


def kernelspec():
    """The kernel.json of the jailed kernel (this Python, this provisioner)."""
    return {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (facial keypoints, jailed)",
        "language": "python",
        "interrupt_mode": "message",   # a signal would reach bwrap's session, not the kernel
        "metadata": {"kernel_provisioner": {"provisioner_name": PROVISIONER_NAME}},
    }


def install(prefix=sys.prefix):
    """Write <prefix>/share/jupyter/kernels/facial-keypoints-jail/kernel.json if it differs; return its path."""
    path = Path(prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
    text = json.dumps(kernelspec(), indent=1) + "\n"
    if path.is_file() and path.read_text() == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    # Imported here: grader.trusted imports torch, which jupyter_client, loading this provisioner
    # for every kernel it starts, never needs.
    from .trusted import atomic_file
    with atomic_file(path, "w") as f:
        os.fchmod(f.fileno(), 0o644)   # every user of this environment reads it
        f.write(text)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.kernel_jail", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["install"], help="install: write the jailed kernel's kernelspec")
    parser.add_argument("--prefix", default=sys.prefix, help="environment to install into (default: %(default)s)")
    args = parser.parse_args(argv)
    print(f"Installed the kernelspec {KERNEL_NAME}: {install(args.prefix)}")


if __name__ == "__main__":
    main()
