"""
The class report (grader/report.py) in Chromium: does every image load, offline, under the
page's own Content-Security-Policy?

The results are made here, without grading (tests/grading/test_class_report.py grades a real
class): a few students' predictions are the hidden faces' true points plus noise, scored as the
grader scores them. The page shows hidden faces, so it stays in the temporary folder: no screenshot.
"""
from pathlib import Path

import numpy as np
import torch

from grader.api import save_predictions
from grader.jail import Limits
from grader.pipeline import STEPS, Context, Submission, keypoint_feedback, make_result
from grader.points import PointsRule
from grader.report import build_report
from grader.results import write_json_atomic
from grader.trusted import keypoint_score, pixels_to_unit, read_keypoints_csv

FACES = 64
NOISE = {"alice": 0.02, "bob": 0.05, "carol": 0.2}   # unit coordinates: scores of about 1250, 200, 12


def write_class(results, test_csv):
    """Results of three scored students and one that failed the code check, as grade() writes them."""
    targets = pixels_to_unit(torch.from_numpy(read_keypoints_csv(test_csv).keypoints))   # (N, 15, 2)
    context = Context(images=Path("unused"), count=len(targets), scratch=results, isolation="jail",
                      limits=Limits(timeout_s=60, memory_mb=4096), targets=targets.numpy(), points=PointsRule(),
                      key="browser-test")
    passed = [f"{step.name} passed." for step in STEPS[:-1]]
    generator = torch.Generator().manual_seed(0)
    for name, noise in NOISE.items():
        predictions = (targets + noise * torch.randn(targets.shape, generator=generator)).reshape(len(targets), 30)
        work = Submission(source=results / f"{name}.zip", context=context,
                          raw_score=keypoint_score(predictions, targets),
                          keypoint_errors=keypoint_feedback(predictions, targets))
        write_json_atomic(results / f"{name}.json", make_result(name, work, [*passed, "Scored."]))
        save_predictions(results, name, predictions.numpy())
    work = Submission(source=results / "dave.zip", context=context)
    write_json_atomic(results / "dave.json", make_result("dave", work, passed[:4], "Your code raised KeyError."))


def test_every_image_of_the_class_report_loads(page, test_data_dir, tmp_path):
    """Does Chromium load every <img> of the report (naturalWidth > 0), with no error and nothing blocked?"""
    test_csv = tmp_path / "test.csv"
    lines = (test_data_dir / "test.csv").read_text().splitlines(keepends=True)
    test_csv.write_text("".join(lines[: FACES + 1]))
    results = tmp_path / "results"
    results.mkdir()
    write_class(results, test_csv)
    report = build_report(results_dir=results, test_data=test_csv, out=tmp_path / "report.html")

    page.goto(report.as_uri(), wait_until="load")
    images = page.evaluate("Array.from(document.images, image => [image.complete, image.naturalWidth, "
                           "image.naturalHeight, image.src.slice(0, 22)])")
    assert len(images) == 3, images   # the histogram, the keypoint chart, the faces
    for complete, width, height, source in images:
        assert complete and width > 100 and height > 100 and source == "data:image/png;base64,"
    assert page.errors == []   # no script error, and no resource the Content-Security-Policy blocked
    assert page.locator("section#alike h3").count() == 3
    assert np.isclose(float(page.locator("section#scores td").nth(0).inner_text()), 4)   # submissions
