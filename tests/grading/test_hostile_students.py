"""
The hostile students' attacks are real: unjailed, mallory's model forges a
perfect score by looking up the hidden labels. The course test
(test_nbgrader_course.py) then shows that the jail leaves her nothing.
"""
import json
import subprocess
import sys

import pytest

from exercise_code.util.model_files import save_model
from exercise_code.networks import KeypointModel
from exercise_code.util.submission import MODEL_ENTRY, create_submission_zip
from grader.api import grade
from grading_scenarios import VALID
from hostile_students import build_hostile

pytestmark = pytest.mark.slow


def test_mallory_forges_a_perfect_score_unjailed_and_nothing_jailed(tmp_path, hidden_subset, jail, solved_workspace):
    """Unjailed, does mallory's untrained model score as if perfect? In the jail, only what it is worth?"""
    pack = solved_workspace(tmp_path / "mallory")
    build_hostile("mallory", pack)
    model_path = save_model(KeypointModel(VALID).eval(), pack / MODEL_ENTRY)
    submission = create_submission_zip(model_path=model_path, out_dir=tmp_path, pack_root=pack)
    # Unjailed, as an instructor's `python -m grader` run: its command line names the hidden file, and
    # mallory reads every process's command line (a walk of the disk alone may run out of time).
    command = [sys.executable, "-m", "grader", "grade", str(submission), "--test-data", str(hidden_subset),
               "--out", str(tmp_path / "none"), "--isolation", "none"]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    unjailed = json.loads((tmp_path / "none" / f"{submission.stem}.json").read_text())
    jailed = grade(submissions=[submission], test_data=hidden_subset, out_dir=tmp_path / "jail")[0]
    assert unjailed["score"] == 100 and unjailed["extra_data"]["raw_score"] > 1e6, unjailed["output"]   # real
    assert jailed["score"] == 0 and jailed["extra_data"]["raw_score"] < 20, jailed["output"]            # stopped
    assert jailed["extra_data"]["isolation"] == "jail" and unjailed["extra_data"]["isolation"] == "none"
