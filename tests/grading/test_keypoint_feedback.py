"""
Feedback a student can act on: each scored result carries the error of each
keypoint in pixels on the hidden set, as aggregates over all faces only (never a
value of one face, never an image), shown as a table in the score row (Markdown
on Gradescope); and each scored submission's predictions are kept beside its
result for the instructors' class report, and merged with it.
"""
import json

import numpy as np
import pytest
import torch

from exercise_code.keypoints import KEYPOINT_NAMES, pixels_to_unit
from grader.api import save_predictions
from grader.jail import Limits
from grader.pipeline import FEEDBACK_MIN_FACES, PREDICT_STEPS, Context, Outcome, finish
from grader.platforms.gradescope import with_visibility
from grader.platforms.gradescope_results import check_results
from grader.points import PointsRule
from grader.results import PREDICTIONS, merge_results


def graded(tmp_path, n, shift_px):
    """finish() on n faces whose predictions are the labels moved right by shift_px on the nose tip only."""
    rng = np.random.default_rng(0)
    targets = pixels_to_unit(torch.from_numpy(rng.uniform(20, 76, (n, 15, 2)).astype(np.float32))).numpy()
    predictions = targets.copy()
    predictions[:, KEYPOINT_NAMES.index("nose_tip"), 0] += shift_px / 48
    context = Context(images=tmp_path / "images.npy", count=n, scratch=tmp_path,
                      limits=Limits(timeout_s=1, memory_mb=64), isolation="jail", targets=targets,
                      points=PointsRule(), key="k")
    outcome = Outcome(passed=["passed"] * len(PREDICT_STEPS), predictions=predictions.reshape(n, 30))
    return finish("ada", tmp_path / "ada.zip", outcome, context).to_json()


def test_each_keypoint_gets_its_error_in_pixels(tmp_path):
    result = graded(tmp_path, 64, shift_px=3.0)
    errors = result["extra_data"]["keypoint_errors_px"]
    assert list(errors) == KEYPOINT_NAMES
    assert errors["nose_tip"] == pytest.approx(3.0, abs=0.05)
    assert all(error == 0.0 for name, error in errors.items() if name != "nose_tip")
    score_row = result["tests"][-1]["output"]
    assert "nose_tip" in score_row and "3.0 px" in score_row
    assert score_row.index("nose_tip") < score_row.index("left_eye_center")   # worst first


def test_only_aggregates_leave_the_grader(tmp_path):
    """15 numbers rounded to 0.1 px, whatever the number of faces; none at all for a split too small
    to hide a single face; never an image."""
    result = graded(tmp_path, 64, shift_px=1.234)
    errors = result["extra_data"]["keypoint_errors_px"]
    assert len(errors) == 15 and all(round(error, 1) == error for error in errors.values())
    text = json.dumps(result)
    assert "1.234" not in text and "base64" not in text and "png" not in text.lower()
    assert graded(tmp_path, FEEDBACK_MIN_FACES - 1, 1.0)["extra_data"]["keypoint_errors_px"] is None
    assert "px" not in graded(tmp_path, FEEDBACK_MIN_FACES - 1, 1.0)["tests"][-1]["output"]


def test_gradescope_shows_a_markdown_table(tmp_path):
    data = with_visibility(graded(tmp_path, 64, shift_px=2.0), "visible")
    check_results(data)
    score = data["tests"][-1]
    assert score["output_format"] == "md"
    assert "| keypoint | error (px) |" in score["output"] and "| nose_tip | 2.0 |" in score["output"]
    assert all(test.get("output_format") is None for test in data["tests"][:-1])


def test_predictions_are_kept_for_the_report_and_merged(tmp_path):
    """Kept for a scored submission, removed when a resubmission is not scored, merged with its result."""
    first, second, merged = tmp_path / "machine1", tmp_path / "machine2", tmp_path / "merged"
    for folder, name in ((first, "ada"), (second, "bob")):
        folder.mkdir()
        data = graded(tmp_path, 32, 1.0)
        data["extra_data"]["submission"] = name
        (folder / f"{name}.json").write_text(json.dumps(data))
        save_predictions(folder, name, np.full((32, 15, 2), 0.5, dtype=np.float32))
    assert np.load(first / PREDICTIONS / "ada.npy").shape == (32, 30)
    merge_results(result_dirs=[first, second], out_dir=merged)
    assert sorted(p.name for p in (merged / PREDICTIONS).iterdir()) == ["ada.npy", "bob.npy"]
    save_predictions(first, "ada", None)
    assert not (first / PREDICTIONS / "ada.npy").exists()


def test_prairielearn_shows_a_chart(tmp_path):
    """PrairieLearn's result carries the table in the score test's output and a chart as an image."""
    import base64

    from grader.platforms.prairielearn import to_prairielearn

    data = to_prairielearn(graded(tmp_path, 64, shift_px=2.0))
    [image] = data["images"]
    assert image["url"].startswith("data:image/png;base64,")
    assert base64.b64decode(image["url"].split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    assert "nose_tip" in data["tests"][-1]["output"]
    assert "images" not in to_prairielearn(graded(tmp_path, FEEDBACK_MIN_FACES - 1, 2.0))
