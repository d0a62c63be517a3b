"""
The student's kernel during autograde (grader/kernel_jail.py), tried from inside:
each test starts a real jailed kernel on the installed kernelspec through
JailedExecute (nbgrader's Execute step) or jupyter_client, runs hostile code in it
and checks what it could reach, and what it left behind.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from jupyter_client.provisioning import KernelProvisionerFactory
from nbconvert.exporters import NotebookExporter
from nbformat.v4 import new_code_cell, new_notebook
from traitlets.config import Config, PyFileConfigLoader

from grader import jail, kernel_jail
from grader.kernel_jail import KERNEL_NAME, METADATA_KEY, JailedExecute, JailedProvisioner
from grader.release import REPO_ROOT
from small_course import SMALL_COURSE_CONFIG

SECRET = "FKJ_TEST_SECRET"
# What ipykernel sets itself, and the thread counts jail_command sets; the rest must be BASE_ENV or PASSED_ENV.
KERNEL_OWN_ENV = {"CLICOLOR", "CLICOLOR_FORCE", "FORCE_COLOR", "GIT_PAGER", "PAGER", "TERM", "PWD",
                  "PYDEVD_USE_FRAME_EVAL", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"}


@pytest.fixture(scope="session")
def kernelspec():
    """The pack's jailed kernelspec, installed as `make setup` installs it (idempotent)."""
    return kernel_jail.install()


@pytest.fixture(autouse=True)
def _restore_default_provisioner(monkeypatch):
    """JailedExecute makes the jail every kernel's default in its process: undo that after each test."""
    monkeypatch.delenv(KernelProvisionerFactory.default_provisioner_name_env, raising=False)
    factory = KernelProvisionerFactory.instance()
    before = factory.default_provisioner_name
    yield
    factory.default_provisioner_name = before


@pytest.fixture
def jail_broken(monkeypatch, tmp_path):
    """A machine without bubblewrap: a PATH without bwrap, and the cached probe forgotten before and after."""
    monkeypatch.setenv("PATH", str(tmp_path))
    jail._probe.cache_clear()
    yield
    jail._probe.cache_clear()


@pytest.fixture
def course():
    """
    A course laid out as autograde sees it, outside /tmp (the jail has a /tmp of its own,
    so a folder there would prove nothing):

        course/autograded/alice/exercise_09/   the notebook's folder: notes.txt, old.txt, exercise_code/
        course/autograded/bob/exercise_09/     another student: bob.txt
        hidden/test.csv                        the hidden labels
        data/training.csv                      the training data ($FACIAL_KEYPOINTS_DIR)
    """
    root = Path(tempfile.mkdtemp(prefix="kernel-jail-", dir="/var/tmp"))
    alice = root / "course" / "autograded" / "alice" / "exercise_09"
    (alice / "exercise_code").mkdir(parents=True)
    (alice / "notes.txt").write_text("alice's notes")
    (alice / "old.txt").write_text("to be deleted")
    (alice / "exercise_code" / "__init__.py").write_text("ANSWER = 42\n")
    bob = root / "course" / "autograded" / "bob" / "exercise_09"
    bob.mkdir(parents=True)
    (bob / "bob.txt").write_text("bob's work")
    (root / "hidden").mkdir()
    (root / "hidden" / "test.csv").write_text("the labels")
    (root / "data").mkdir()
    (root / "data" / "training.csv").write_text("faces")
    (root / "data" / "training.csv").chmod(0o666)   # so only the read-only mount can stop a write
    yield root
    shutil.rmtree(root)


def execute(*sources, cwd=None, config=None):
    """Run cells in a kernel started by JailedExecute; return the executed notebook."""
    nb = new_notebook(cells=[new_code_cell(textwrap.dedent(source)) for source in sources])
    resources = {"metadata": {"path": str(cwd)}} if cwd else {}
    nb, _ = JailedExecute(config=Config(config or {})).preprocess(nb, resources)
    return nb


def stdout(cell):
    return "".join(output.get("text", "") for output in cell.outputs if output.get("name") == "stdout")


def report(cell):
    """The JSON a cell printed last."""
    assert stdout(cell).strip(), cell.outputs
    return json.loads(stdout(cell).strip().splitlines()[-1])


def snapshot(folder):
    """{relative path: content} of every file below folder."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def processes_of(uid):
    """Pids of the host's processes running as uid."""
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if re.search(rf"^Uid:\s+{uid}\s", status.read_text(), re.M):
                pids.append(int(status.parent.name))
        except OSError:
            pass
    return pids


def seccomp_fds():
    """Our file descriptors that hold a jail's seccomp filter (jail.seccomp_fd names them)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if "jail-seccomp" in os.readlink(f"/proc/self/fd/{fd}"):
                found.append(fd)
        except OSError:   # the listing's own descriptor, closed by now
            pass
    return found


def my_kernel_folders():
    return sorted(kernel_jail.FOLDERS.glob(f"{kernel_jail.FOLDER_PREFIX}{os.getpid()}-*"))


# --- Installing: the kernelspec and the provisioner's entry point.

def test_install_writes_the_kernelspec_once(tmp_path):
    """Does `python -m grader.kernel_jail install` write a kernelspec naming the jail, and leave it be next time?"""
    command = [sys.executable, "-m", "grader.kernel_jail", "install", "--prefix", str(tmp_path)]
    subprocess.run(command, check=True, cwd=tmp_path, capture_output=True)
    path = tmp_path / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
    first = path.stat().st_mtime_ns
    kernel_jail.main(command[3:])                          # again (in this process: the command's start-up is slow)
    assert path.stat().st_mtime_ns == first                # idempotent: not even rewritten
    spec = json.loads(path.read_text())
    assert spec["argv"] == [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert spec["interrupt_mode"] == "message"             # a signal would reach bwrap's session, not the kernel
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == kernel_jail.PROVISIONER_NAME
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_installed_kernelspec_and_entry_point(kernelspec):
    """Does Jupyter find the installed kernelspec in this environment, and its provisioner by its entry point?"""
    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    assert Path(spec.resource_dir) == kernelspec.parent
    factory = KernelProvisionerFactory.instance()
    assert factory.is_provisioner_available(spec)
    assert factory.provisioners[kernel_jail.PROVISIONER_NAME].load() is JailedProvisioner


def test_the_course_config_executes_with_the_jail():
    """Does nbgrader_config.py run notebooks with JailedExecute; does its ClearMetadataPreprocessor keep our record?"""
    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO_ROOT)).load_config()
    steps = config.Autograde.autograde_preprocessors
    assert "grader.kernel_jail.JailedExecute" in steps and "nbgrader.preprocessors.Execute" not in steps
    # nbconvert's preprocessors are off unless enabled, and the config does not enable this one.
    exporter = NotebookExporter(config=config)
    exporter.register_preprocessor("nbconvert.preprocessors.ClearMetadataPreprocessor")
    nb = new_notebook(metadata={METADATA_KEY: {"isolation": "jail"}})
    out, _ = exporter.from_notebook_node(nb)
    assert f'"{METADATA_KEY}"' in out


# --- Hostile code in the kernel.

@pytest.mark.jail
def test_kernel_sees_only_its_jail_and_no_secrets(kernelspec, isolation, monkeypatch):
    """Does the kernel see only the jail's processes, and neither our environment nor its secret anywhere?"""
    monkeypatch.setenv(SECRET, "hunter2-in-the-grader")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    nb = execute("""
        import os
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
        def read(path):
            try:
                return open(path, "rb").read().replace(b"\\0", b" ").decode()
            except OSError as error:
                return type(error).__name__
        report = {"commands": [read(f"/proc/{p}/cmdline") for p in pids],
                  "environs": [read(f"/proc/{p}/environ") for p in pids], "env": dict(os.environ)}
        import json
        print(json.dumps(report))
        """)
    seen = report(nb.cells[0])
    assert len(seen["commands"]) <= 4, seen["commands"]          # bwrap's init, timeout, the kernel
    for command in seen["commands"]:
        assert command.split()[0].rsplit("/", 1)[-1] in {"bwrap", "timeout", "python", "python3"}, command
        assert "pytest" not in command
    assert not any("hunter2" in environ for environ in seen["environs"])
    env = seen["env"]
    assert SECRET not in env and "JPY_PARENT_PID" not in env
    assert set(env) <= set(jail.BASE_ENV) | set(kernel_jail.PASSED_ENV) | KERNEL_OWN_ENV, set(env)
    assert env["NBGRADER_EXECUTION"] == "autograde" and env["HOME"] == "/tmp"
    assert nb.metadata[METADATA_KEY] == {"isolation": "jail"}


@pytest.mark.jail
def test_kernel_has_no_network(kernelspec, isolation):
    """Is a TCP listener of ours on 127.0.0.1 unreachable from the kernel, with only a loopback of its own?"""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        nb = execute(f"""
            import socket
            report = {{"interfaces": [name for _, name in socket.if_nameindex()]}}
            # Only our own loopback listener: a test never dials an outside address, jail or not.
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
                report["loopback"] = "reached"
            except OSError as error:
                report["loopback"] = type(error).__name__
            import json
            print(json.dumps(report))
            """)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()                                      # nobody knocked
    seen = report(nb.cells[0])
    assert seen["interfaces"] == ["lo"]
    assert seen["loopback"] == "ConnectionRefusedError"           # the jail's own loopback, not ours


@pytest.mark.jail
def test_kernel_is_unprivileged(kernelspec, isolation):
    """Is the kernel a fresh uid without capabilities, with no_new_privs and seccomp, unable to unshare or be root?"""
    nb = execute("""
        import ctypes, os, subprocess
        status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
        libc = ctypes.CDLL(None, use_errno=True)
        report = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
                  **{key: status[key].strip() for key in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp")},
                  "unshare": "allowed" if libc.unshare(0x10000000) == 0 else os.strerror(ctypes.get_errno())}
        run = subprocess.run(["unshare", "-r", "id"], capture_output=True, text=True)
        report["unshare -r"] = [run.returncode, run.stdout]
        try:
            os.setuid(0)
            report["setuid"] = "root"
        except OSError as error:
            report["setuid"] = type(error).__name__
        import json
        print(json.dumps(report))
        """)
    seen = report(nb.cells[0])
    if os.geteuid() == 0:
        assert seen["uid"] != 0 and seen["gid"] != 0 and seen["groups"] == []
    assert seen["CapEff"] == seen["CapPrm"] == seen["CapBnd"] == "0000000000000000"
    assert seen["NoNewPrivs"] == "1" and seen["Seccomp"] == "2"
    assert seen["unshare"] == "Operation not permitted"
    assert seen["unshare -r"][0] != 0 and "uid=0" not in seen["unshare -r"][1]
    assert seen["setuid"] == "PermissionError"


@pytest.mark.jail
def test_kernel_writes_only_its_private_copy(kernelspec, isolation, course, monkeypatch):
    """
    Does the kernel work in a copy of its notebook's folder, leaving the host folder as it was,
    and see no other student, no hidden file, and the training data read-only?
    """
    alice = course / "course" / "autograded" / "alice" / "exercise_09"
    before = snapshot(course)
    monkeypatch.setenv(kernel_jail.DATA_ENV, str(course / "data"))
    nb = execute(f"""
        import os, shutil
        from exercise_code import ANSWER
        report = {{"answer": ANSWER, "listing": sorted(os.listdir("."))}}
        open("notes.txt", "w").write("overwritten")
        open("new.txt", "w").write("new")
        os.remove("old.txt")
        shutil.rmtree("exercise_code")
        for name, path in [("bob", "{course}/course/autograded/bob/exercise_09/bob.txt"),
                           ("hidden", "{course}/hidden/test.csv"),
                           ("data", os.path.join(os.environ["{kernel_jail.DATA_ENV}"], "training.csv"))]:
            try:
                report[name] = open(path).read()
            except OSError as error:
                report[name] = type(error).__name__
        try:
            open(os.path.join(os.environ["{kernel_jail.DATA_ENV}"], "training.csv"), "a").write("poisoned")
            report["write data"] = "written"
        except OSError as error:
            report["write data"] = type(error).__name__
        report["after"] = sorted(os.listdir("."))
        import json
        print(json.dumps(report))
        """, cwd=alice)
    seen = report(nb.cells[0])
    assert seen["answer"] == 42                                   # the student's own package, from the copy
    assert seen["listing"] == ["exercise_code", "notes.txt", "old.txt"]
    assert seen["after"] == ["new.txt", "notes.txt"]
    assert seen["bob"] == seen["hidden"] == "FileNotFoundError"
    assert seen["data"] == "faces" and seen["write data"] == "OSError"   # EROFS: a read-only file system
    assert snapshot(course) == before                             # the host's folders are as they were


def test_training_data_may_not_hold_the_course(course):
    """Is a $FACIAL_KEYPOINTS_DIR that holds the notebook's folder refused, rather than shown to the kernel?"""
    alice = course / "course" / "autograded" / "alice" / "exercise_09"
    assert kernel_jail.data_folders({kernel_jail.DATA_ENV: str(course / "data")}, alice) == [course / "data"]
    assert kernel_jail.data_folders({kernel_jail.DATA_ENV: str(course / "missing")}, alice) == []
    with pytest.raises(RuntimeError, match="would show every submission"):
        kernel_jail.data_folders({kernel_jail.DATA_ENV: str(course)}, alice)


@pytest.mark.jail
@pytest.mark.slow
def test_fork_bomb_and_memory_hog_stop_at_the_limits(kernelspec, isolation):
    """Do c.JailedProvisioner's limits reach the kernel, stop a fork loop and an allocation loop, and keep it alive?"""
    config = {"JailedProvisioner": {"processes": 64, "memory_mb": 2048, "cpu_s": 300}}
    nb = execute("""
        import resource
        report = {name: resource.getrlimit(getattr(resource, name))[0]
                  for name in ("RLIMIT_NPROC", "RLIMIT_AS", "RLIMIT_CPU")}
        import json
        print(json.dumps(report))
        """, """
        import os, signal, time
        children = []
        try:
            for _ in range(1000):
                pid = os.fork()
                if pid == 0:
                    time.sleep(60)
                    os._exit(0)
                children.append(pid)
            report = {"outcome": "no limit"}
        except OSError as error:
            report = {"outcome": type(error).__name__}
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        report["forked"] = len(children)
        import json
        print(json.dumps(report))
        """, """
        chunks = []
        try:
            while True:
                chunks.append(bytes(256 << 20))   # calloc: address space, not memory
            report = {"outcome": "no limit"}
        except MemoryError:
            report = {"outcome": "MemoryError", "mb": 256 * len(chunks)}
        del chunks
        import json
        print(json.dumps(report))
        """, "print('still here')", config=config)
    limits = report(nb.cells[0])
    assert limits == {"RLIMIT_NPROC": 64, "RLIMIT_AS": 2048 << 20, "RLIMIT_CPU": 300}
    forks = report(nb.cells[1])
    assert forks["outcome"] == "BlockingIOError" and 0 < forks["forked"] < 64
    memory = report(nb.cells[2])
    assert memory["outcome"] == "MemoryError" and memory["mb"] < 2048
    assert stdout(nb.cells[3]) == "still here\n"


@pytest.mark.jail
@pytest.mark.slow
def test_cell_timeout_interrupts_the_kernel(kernelspec, isolation):
    """Does a cell timeout interrupt a long sleep in the jailed kernel (by a message), and does the next cell run?"""
    start = time.monotonic()
    nb = execute("import time\ntime.sleep(60)", "print('next')", config={"Execute": {"timeout": 3}})
    assert time.monotonic() - start < 30
    assert [output.ename for output in nb.cells[0].outputs] == ["KeyboardInterrupt", "CellTimeoutError"]
    assert stdout(nb.cells[1]) == "next\n"


# --- Every kernel starts jailed, or none does.

def test_execute_refuses_without_the_jail(jail_broken):
    """
    Without bubblewrap, does JailedExecute stop the whole autograde (SystemExit, not an Exception
    nbgrader would log for one student and go on) and say what to install?
    """
    with pytest.raises(SystemExit, match="apt-get install bubblewrap") as refused:
        JailedExecute().preprocess(new_notebook(cells=[new_code_cell("print('ran')")]), {})
    assert "bwrap" in str(refused.value) and "not found" in str(refused.value)


def test_provisioner_refuses_without_the_jail(kernelspec, jail_broken):
    """Without bubblewrap, does the kernelspec's provisioner refuse to start the kernel, leaving nothing behind?"""
    km = KernelManager(kernel_name=KERNEL_NAME)
    with pytest.raises(jail.JailUnavailable, match="apt-get install bubblewrap"):
        km.start_kernel()
    assert not km.has_kernel and my_kernel_folders() == []


@pytest.mark.slow
def test_isolation_none_by_name_runs_unjailed(kernelspec, jail_broken):
    """With c.StudentCodeIsolation.isolation = "none" set by name, does the kernel start unjailed; is that recorded?"""
    nb = execute("import json, os\nreport = {'uid': os.getuid(), 'pid_seen': os.path.exists('/proc/%d')}\n"
                 "print(json.dumps(report))" % os.getpid(), config={"StudentCodeIsolation": {"isolation": "none"}})
    seen = report(nb.cells[0])
    assert seen == {"uid": os.getuid(), "pid_seen": True}        # our process: no PID namespace
    assert nb.metadata[METADATA_KEY] == {"isolation": "none"}    # what the provisioner ran with


@pytest.mark.jail
@pytest.mark.slow
@pytest.mark.parametrize("named", ["python3 in the config", "python3 in the notebook", "a local-provisioner spec"])
def test_every_kernelspec_starts_jailed(named, kernelspec, isolation, tmp_path, monkeypatch):
    """Whatever kernelspec the config or notebook names, even one with another provisioner: is the kernel jailed?"""
    config, kernel_name = {}, None
    if named == "python3 in the config":
        config = {"Execute": {"kernel_name": "python3"}}
    elif named == "python3 in the notebook":
        config = {"Execute": {"kernel_name": ""}}   # nbclient then takes the notebook's
        kernel_name = "python3"
    else:
        spec = tmp_path / "kernels" / "sneaky"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "x",
            "language": "python", "metadata": {"kernel_provisioner": {"provisioner_name": "local-provisioner"}}}))
        monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
        config = {"Execute": {"kernel_name": "sneaky"}}
    nb = new_notebook(cells=[new_code_cell("import os\n"
                                           "print(os.getuid(), len([p for p in os.listdir('/proc') if p.isdigit()]))")])
    if kernel_name:
        nb.metadata["kernelspec"] = {"name": kernel_name, "display_name": kernel_name, "language": "python"}
    nb, _ = JailedExecute(config=Config(config)).preprocess(nb, {})
    uid, processes = map(int, stdout(nb.cells[0]).split())
    assert processes <= 4                                          # a PID namespace of its own
    assert uid != 0 or os.geteuid() != 0
    assert nb.metadata[METADATA_KEY] == {"isolation": "jail"}


@pytest.mark.jail
@pytest.mark.slow
def test_config_reaches_the_provisioner_through_the_kernel_manager(kernelspec, isolation):
    """
    Does nbgrader's config (the kernel manager's) reach a JailedProvisioner made from the kernelspec,
    and does JailedExecute make it the default in its process, for a plain python3 kernel too?
    """
    config = Config({"JailedProvisioner": {"memory_mb": 1536, "timeout_s": 600}})
    km = KernelManager(kernel_name=KERNEL_NAME, config=config)
    km.start_kernel()
    try:
        assert isinstance(km.provisioner, JailedProvisioner)
        assert km.provisioner.limits() == jail.Limits(timeout_s=600, memory_mb=1536, processes=256, threads=2)
        assert km.transport == "ipc" and km.ip.startswith(str(km.provisioner.folder))
    finally:
        km.shutdown_kernel(now=True)
    JailedExecute()
    plain = KernelManager(kernel_name="python3")
    plain.start_kernel()
    try:
        assert isinstance(plain.provisioner, JailedProvisioner) and plain.provisioner.isolation == "jail"
    finally:
        plain.shutdown_kernel(now=True)


@pytest.mark.jail
def test_the_kernel_is_ready_without_a_pause_and_its_cells_get_their_own_outputs(kernelspec, isolation):
    """
    JailedExecute's client (PromptKernelClient) skips jupyter_client's 0.2 s of silence on IOPub
    after kernel_info: do the first cells still get exactly their own outputs, none of kernel_info's?
    """
    nb = execute("print('first')", "print('second')\n1 + 1")
    assert [output.get("text") for output in nb.cells[0].outputs] == ["first\n"]
    assert [output.output_type for output in nb.cells[1].outputs] == ["stream", "execute_result"]
    assert nb.cells[1].outputs[1].data["text/plain"] == "2"
    km = JailedExecute().create_kernel_manager()
    assert isinstance(km.client(), kernel_jail.PromptKernelClient)


@pytest.mark.jail
def test_a_kernel_that_dies_at_start_is_recorded_not_waited_for(kernelspec, isolation, tmp_path, monkeypatch):
    """A kernel that exits before it answers kernel_info: does the notebook say so, at once, instead of hanging?"""
    spec = tmp_path / "kernels" / "dies"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-c", "import sys; sys.exit(3)", "{connection_file}"], "display_name": "x",
        "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    started = time.monotonic()
    nb = execute("print('never')", config={"Execute": {"kernel_name": "dies"}, "JailedExecute": {"kernel_name": "dies"}})
    assert time.monotonic() - started < 30
    assert "Kernel died before replying to kernel_info" in nb.metadata[METADATA_KEY]["kernel_error"]
    assert nb.metadata[METADATA_KEY]["isolation"] == "jail"


# --- What is left afterwards.

@pytest.mark.jail
def test_nothing_left_after_shutdown(kernelspec, isolation, course):
    """After the notebook ran, are the kernel's folder, its processes (a background one too) and our seccomp fd gone?"""
    nb = execute("""
        import os, subprocess
        subprocess.Popen(["sleep", "1000"], start_new_session=True)
        print(os.getuid())
        """, cwd=course / "course" / "autograded" / "alice" / "exercise_09")
    uid = int(stdout(nb.cells[0]))
    assert my_kernel_folders() == []
    deadline = time.monotonic() + 10
    while processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if os.geteuid() == 0:
        assert processes_of(uid) == []
    assert seccomp_fds() == []


GRADER_KILLED = """
import os, sys, time
from jupyter_client.manager import KernelManager
km = KernelManager(kernel_name=sys.argv[1])
km.start_kernel(cwd=sys.argv[2])
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=60)
kc.execute_interactive("import os, subprocess; subprocess.Popen(['sleep', '1000']); print(os.getuid())",
                       output_hook=lambda msg: print(msg["content"].get("text", "").strip(), flush=True)
                       if msg["msg_type"] == "stream" else None)
print(km.provisioner.folder, flush=True)
time.sleep(1000)
"""


@pytest.mark.jail
@pytest.mark.slow
def test_sigkilled_grader_leaves_no_kernel_and_its_folder_is_swept(kernelspec, isolation, course, tmp_path):
    """When nbgrader is SIGKILLed, does its jailed kernel die with it, and a sweep remove its folder (and only its)?"""
    alice = course / "course" / "autograded" / "alice" / "exercise_09"
    grader = subprocess.Popen([sys.executable, "-c", GRADER_KILLED, KERNEL_NAME, str(alice)], cwd=tmp_path,
                              stdout=subprocess.PIPE, text=True)
    try:
        uid = int(grader.stdout.readline())
        folder = Path(grader.stdout.readline().strip())
    finally:
        grader.send_signal(signal.SIGKILL)
        grader.wait()
    assert folder.is_dir()                                         # nobody cleaned up
    deadline = time.monotonic() + 10
    while processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if os.geteuid() == 0:
        assert processes_of(uid) == []                             # --die-with-parent took the jail along
    live = Path(tempfile.mkdtemp(prefix=f"{kernel_jail.FOLDER_PREFIX}{kernel_jail._owner_tag(os.getpid())}-",
                                 dir=kernel_jail.FOLDERS))
    try:
        assert folder in kernel_jail.sweep_stale_folders()
        assert not folder.exists() and live.is_dir()               # a live grader's folder stays
    finally:
        shutil.rmtree(live)


# --- The real thing: `nbgrader autograde` with JailedExecute in its config.

TINY_CONFIG = SMALL_COURSE_CONFIG + "c.JailedProvisioner.memory_mb = 1536\n"
TINY_CELL = ("import os, resource\n"
             "print(os.getuid(), resource.getrlimit(resource.RLIMIT_AS)[0], os.environ.get('NBGRADER_EXECUTION'))")


@pytest.fixture(scope="module")
def generated_tiny_course(tmp_path_factory):
    """A one-notebook nbgrader course, its assignment generated and one student's copy submitted."""
    from grader.release import run_nbgrader

    root = tmp_path_factory.mktemp("tiny")
    (root / "nbgrader_config.py").write_text(TINY_CONFIG)   # paths relative to itself: the course can be copied
    cell = new_code_cell(TINY_CELL, metadata={"nbgrader": {
        "grade": True, "grade_id": "check", "locked": True, "points": 1, "schema_version": 3, "solution": False,
        "task": False}})
    nb = new_notebook(cells=[cell], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                             "language": "python"}})
    (root / "source" / "ps1").mkdir(parents=True)
    (root / "source" / "ps1" / "p1.ipynb").write_text(json.dumps(nb))
    run_nbgrader(["generate_assignment", "ps1", "--force"], cwd=root)
    (root / "submitted" / "alice" / "ps1").mkdir(parents=True)
    shutil.copy(root / "release" / "ps1" / "p1.ipynb", root / "submitted" / "alice" / "ps1" / "p1.ipynb")
    return root


@pytest.fixture
def tiny_course(generated_tiny_course, tmp_path):
    """A fresh copy of the tiny course, for one test to autograde."""
    return Path(shutil.copytree(generated_tiny_course, tmp_path / "course"))


@pytest.mark.jail
@pytest.mark.slow
def test_nbgrader_autograde_runs_the_kernel_jailed(kernelspec, isolation, tiny_course):
    """Does `nbgrader autograde` run the notebook jailed, with c.JailedProvisioner from its config; is that recorded?"""
    from grader.release import run_nbgrader

    run_nbgrader(["autograde", "ps1"], cwd=tiny_course)
    graded = nbformat.read(tiny_course / "autograded" / "alice" / "ps1" / "p1.ipynb", as_version=4)
    uid, address_space, execution = stdout(graded.cells[0]).split()
    assert int(uid) != 0 or os.geteuid() != 0
    assert int(address_space) == 1536 << 20 and execution == "autograde"
    assert graded.metadata[METADATA_KEY] == {"isolation": "jail"}
    assert my_kernel_folders() == [] and not list(kernel_jail.FOLDERS.glob(f"{kernel_jail.FOLDER_PREFIX}*"))


@pytest.mark.jail
@pytest.mark.slow
def test_nbgrader_autograde_stops_without_the_jail(kernelspec, isolation, tiny_course):
    """
    Without bubblewrap, does `nbgrader autograde` stop, saying what to install, and leave nothing
    that a later run (with the jail) would skip?
    """
    from grader.release import run_nbgrader

    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}   # nbgrader's own bin/, without bwrap
    run = run_nbgrader(["autograde", "ps1"], cwd=tiny_course, env=env, check=False)
    assert run.returncode != 0
    assert "apt-get install bubblewrap" in run.stderr + run.stdout
    assert not (tiny_course / "autograded" / "alice" / "ps1").exists()
    run_nbgrader(["autograde", "ps1"], cwd=tiny_course)            # bubblewrap back: alice is graded, no --force
    graded = nbformat.read(tiny_course / "autograded" / "alice" / "ps1" / "p1.ipynb", as_version=4)
    assert graded.metadata[METADATA_KEY] == {"isolation": "jail"} and stdout(graded.cells[0])



def test_the_provisioner_loads_without_torch(tmp_path):
    """jupyter_client imports this module for every kernel it starts: does it stay light (no torch)?"""
    code = "import sys, grader.kernel_jail; print('torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "False", run.stderr
