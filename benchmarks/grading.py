"""
Grading speed: a batch of generated valid submissions, graded at --jobs 1 and 2.

    python benchmarks/grading.py [--test-data PATH] [--submissions N] [--rows N] [--hparams JSON]

Each submission is a zip as create_submission_zip writes it: the solved
exercise_code and a KeypointModel with random weights (the score does not
matter here, the work does). After a warm-up run, prints for each number of
jobs the wall-clock seconds per submission and the speed-up, then where one
submission's time goes: unpacking, loading (model checks, importing the code,
building the model), starting the worker (Python and torch), inference and
scoring. Two checks (exit
1 if one fails): a submission takes under 5 s end to end at --jobs 1, and two
jobs are at least 1.6x as fast as one. --rows N grades on the first N test faces
only (a quick smoke run; no checks).
"""
import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from benchmarks.targets import report
from exercise_code.networks import KeypointModel
from exercise_code.util.limits import count_parameters
from exercise_code.util.model_files import save_model
from exercise_code.util.submission import create_submission_zip
from grader.api import grade
from grader.release import REPO_ROOT

# About the compute of a typical I2DL student CNN (a few tens of millions of
# multiply-adds per face); the reference model with flip averaging is
# --hparams '{"channels": [24, 48, 96, 192], "stem": 16, "flip_test": true}'.
DEFAULT_HPARAMS = {"channels": [8, 16, 32, 64], "flip_test": False}
TARGET_SECONDS, TARGET_SPEEDUP = 5.0, 1.6


def make_submissions(folder, count, hparams):
    """count submission zips with random weights, packed from the solved workspace as a student would."""
    import exercise_code
    workspace = Path(exercise_code.__file__).parents[1]   # exercise_code/ and exercise_09/, all solved
    out = folder / "submissions"
    out.mkdir()
    for i in range(count):
        torch.manual_seed(i)
        model = KeypointModel(hparams)
        model_path = save_model(model, folder / "models" / "keypoint_model.pt")
        with contextlib.redirect_stdout(io.StringIO()):   # it lists every file it packs
            create_submission_zip(f"student{i:03d}", model_path=model_path, pack_root=workspace, out_dir=out)
    return out, count_parameters(model)


def cost_split(results):
    """Median seconds per stage of one submission, from the timings in its result."""
    stages = {"unpack": [], "load": [], "worker start": [], "inference": [], "scoring": [], "other": [],
              "total": []}
    for result in results:
        t = result["extra_data"]["timings"]
        worker = t["worker"]
        parts = {"unpack": t["unpack_s"], "load": t["load_s"] + worker["import_code_s"] + worker["load_s"],
                 "worker start": worker["startup_s"], "inference": worker["predict_s"], "scoring": t["scoring_s"]}
        parts["other"] = t["total_s"] - sum(parts.values())   # process launch, jail, sending predictions back
        parts["total"] = t["total_s"]
        for stage, seconds in parts.items():
            stages[stage].append(seconds)
    return {stage: statistics.median(values) for stage, values in stages.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--test-data", type=Path, default=REPO_ROOT / "datasets" / "facial_keypoints_test",
                        help="the hidden test CSV or its folder")
    parser.add_argument("--submissions", type=int, default=8, help="submissions per batch")
    parser.add_argument("--rows", type=int, help="grade on the first N test faces only (smoke run; no checks)")
    parser.add_argument("--hparams", type=json.loads, default=DEFAULT_HPARAMS, help="the models' hparams, JSON")
    args = parser.parse_args(argv)
    test_csv = args.test_data / "test.csv" if args.test_data.is_dir() else args.test_data

    with tempfile.TemporaryDirectory(prefix="grading-benchmark-") as tmp:
        tmp = Path(tmp)
        if args.rows:
            pd.read_csv(test_csv, nrows=args.rows).to_csv(tmp / "test.csv", index=False)
            test_csv = tmp / "test.csv"
        submissions, parameters = make_submissions(tmp, args.submissions, args.hparams)
        faces = len(pd.read_csv(test_csv, usecols=[0]))
        print(f"{args.submissions} valid submissions: KeypointModel({json.dumps(args.hparams)}), "
              f"{parameters:,} parameters; {faces} test faces; {os.cpu_count()} CPU cores, "
              f"load average {os.getloadavg()[0]:.1f} before the run")
        # A first run starts what every batch starts once (the grading processes' fork
        # server, torch in it, the isolation probe), so that both timed runs find it warm.
        start = time.perf_counter()
        grade(submissions=[next(submissions.iterdir())], test_data=test_csv, out_dir=tmp / "warm-up")
        print(f"start-up of a grading run, once per batch: {time.perf_counter() - start:.2f} s "
              "(one submission included)")
        seconds, splits = {}, {}
        for jobs in (1, 2):
            start = time.perf_counter()
            results = grade(submissions=[submissions], test_data=test_csv, out_dir=tmp / f"out-{jobs}", jobs=jobs)
            seconds[jobs] = (time.perf_counter() - start) / len(results)
            failed = [r["output"] for r in results if r["extra_data"]["raw_score"] is None]
            if failed:
                print(f"error: {len(failed)} submissions were not scored: {failed[0]}")
                return 1
            splits[jobs] = cost_split(results)
            print(f"--jobs {jobs}: {seconds[jobs]:.2f} s per submission (batch wall-clock / submissions), "
                  f"isolation {results[0]['extra_data']['isolation']}")
        speedup = seconds[1] / seconds[2]
        print(f"speed-up with 2 jobs: {speedup:.2f}x")
        split = splits[1]
        print("one submission at --jobs 1, median seconds: " +
              ", ".join(f"{stage} {value:.2f}" for stage, value in split.items()))
        for jobs, per_submission in seconds.items():   # a job's seconds per submission: wall-clock x jobs / count
            inference = splits[jobs]["inference"]
            print(f"--jobs {jobs}: per submission {per_submission * jobs:.2f} job-seconds = the model's inference "
                  f"{inference:.2f} + overhead {per_submission * jobs - inference:.2f} "
                  f"({per_submission * jobs / inference:.1f}x the inference)")

    if args.rows:
        print("smoke run (--rows): targets not checked")
        return 0
    checks = [(f"a valid submission takes < {TARGET_SECONDS:g} s end to end at --jobs 1",
               max(seconds[1], split["total"]) < TARGET_SECONDS),
              (f"2 jobs are >= {TARGET_SPEEDUP}x as fast as 1", speedup >= TARGET_SPEEDUP)]
    return report(checks)


if __name__ == "__main__":
    sys.exit(main())
