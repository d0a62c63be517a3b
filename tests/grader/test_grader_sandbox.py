"""The worker's jail, probed without any student code: what it can see, who it runs as."""
import os

import pytest

from grader.sandbox import (
    ISOLATIONS, SYSTEM_DIRS, IsolationError, Limits, detect_isolation, exposed_paths, run_worker,
)
from grading_fixtures import isolation, jail  # noqa: F401 (fixtures)


def probe(level, tmp_path):
    (tmp_path / "submission").mkdir()
    (tmp_path / "images.npy").write_bytes(b"")
    return run_worker(submission_root=tmp_path / "submission", images=tmp_path / "images.npy",
                      scratch=tmp_path / "scratch", limits=Limits(timeout_s=30, memory_mb=512),
                      isolation=level, probe=True)


def test_auto_picks_the_strongest_isolation_that_works(isolation):
    """Does "auto" pick namespaces as root, and a level that really starts a worker?"""
    assert isolation in ISOLATIONS
    if os.geteuid() == 0 and isolation != "namespaces":
        pytest.fail(f"running as root, but only {isolation!r} works")


def test_unknown_isolation_is_refused():
    """Is a misspelt isolation level an error that lists the choices?"""
    with pytest.raises(IsolationError, match="choose one of auto, namespaces, userns, none"):
        detect_isolation("docker")


@pytest.mark.jail
@pytest.mark.parametrize("level", ["namespaces", "userns"])
def test_jail_shows_only_the_system_python_and_the_submission(level, jail, tmp_path):
    """Inside the jail, is "/" a fresh minimal root (no home, no data), and who is the worker?"""
    if level == "namespaces" and os.geteuid() != 0:
        pytest.skip("namespaces needs root")
    (tmp_path / "scratch").mkdir()
    run = probe(level, tmp_path)
    assert run.report and run.report["ok"], (run.report, run.stderr)
    top = {path.strip("/").split("/")[0] for path in exposed_paths(level) + SYSTEM_DIRS}   # /lib may be a link
    assert set(run.report["root"]) <= top | {"dev", "proc", "tmp", "sandbox", "etc"}, run.report["root"]
    assert "home" not in run.report["root"] and "mnt" not in run.report["root"]
    assert run.report["uid"] != 0 if level == "namespaces" else run.report["uid"] == 0  # userns: root of nothing


def test_without_isolation_the_worker_still_runs(tmp_path):
    """Does the "none" level start a worker in its scratch folder (the fallback where no namespaces work)?"""
    (tmp_path / "scratch").mkdir()
    run = probe("none", tmp_path)
    assert run.report["ok"] and "proc" in run.report["root"] and run.report["uid"] == os.getuid()
