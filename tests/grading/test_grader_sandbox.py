"""The model worker's isolation: the jail or a refusal, never a silent fallback to none."""
import pytest

from grader import jail as jail_module
from grader.api import GradingConfigError, grade
from grader.sandbox import IsolationError, detect_isolation


def test_auto_is_the_jail(jail):
    """Does "auto" (and the default) mean the bubblewrap jail, which starts on this machine?"""
    assert detect_isolation("auto") == detect_isolation() == "jail"


def test_unknown_isolation_is_refused():
    """Is a misspelt isolation level an error that lists the choices?"""
    with pytest.raises(IsolationError, match="choose 'jail', 'user' or 'none'"):
        detect_isolation("docker")


@pytest.fixture
def jail_broken(monkeypatch):
    """The jail made unavailable, as on a machine without bubblewrap (the probe is cached: replace it)."""
    monkeypatch.setattr(jail_module, "_probe", lambda: "bwrap not found")


def test_auto_never_falls_back_to_none(jail_broken):
    """Where the jail cannot start, does "auto" refuse with what to install, rather than run unjailed
    (or as another user: only the platform adapters choose "user", and say so)?"""
    for choice in ("auto", "jail"):
        with pytest.raises(IsolationError, match="apt-get install bubblewrap"):
            detect_isolation(choice)
    assert detect_isolation("none") == "none"   # only by name


def test_grading_refuses_before_grading_anything(jail_broken, tmp_path, hidden_subset):
    """Does grade() refuse the whole run, writing nothing, when the jail cannot start?"""
    (tmp_path / "a.zip").write_bytes(b"junk")
    with pytest.raises(GradingConfigError, match="The jail for student code cannot start: bwrap not found"):
        grade(submissions=[tmp_path / "a.zip"], test_data=hidden_subset, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
