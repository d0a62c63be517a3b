"""
The pack's main job, end to end, as a student who solved everything and the
instructor who grades them would run it:

    data -> datasets -> faces.png -> train -> save -> submission zip -> grade

    python solutions/end_to_end.py [--source ZIP_OR_URL] [--test-source ZIP_OR_URL] [--minutes M]

Sources default to $FACIAL_KEYPOINTS_SOURCE and $FACIAL_KEYPOINTS_TEST_SOURCE.
The student's side runs in the solved workspace, solutions/ (the installed
exercise_code is solutions/exercise_code); the grader then scores the zip on the
hidden test split.
"""
import argparse
import os
import sys
import time
from pathlib import Path

from grader.release import REPO_ROOT

TEST_SOURCE_ENV = "FACIAL_KEYPOINTS_TEST_SOURCE"
DEMO_MINUTES = 3.0  # 15 epochs: already far past the course threshold; the full reference budget is 6


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="zip or URL of the students' data (default: $FACIAL_KEYPOINTS_SOURCE)")
    parser.add_argument("--test-source", default=os.environ.get(TEST_SOURCE_ENV),
                        help=f"zip or URL of the hidden test split (default: ${TEST_SOURCE_ENV})")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / "datasets" / "facial_keypoints")
    parser.add_argument("--test-data-dir", type=Path, default=REPO_ROOT / "datasets" / "facial_keypoints_test")
    parser.add_argument("--minutes", type=float, default=DEMO_MINUTES, help="training budget of the reference model")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "end_to_end")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # Imported here, not at the top: grading processes import this module again.
    from exercise_code.data import FacialKeypointsDataset
    from exercise_code.util.download import DataSourceError, fetch_dataset
    from exercise_code.evaluation import evaluate_model
    from exercise_code.util.model_files import save_model
    from exercise_code.networks import DummyKeypointModel
    from exercise_code.util.submission import create_submission_zip
    from exercise_code.visualization import show_keypoint_grid
    from grader.api import HIDDEN_TEST_SHA256, GradingConfigError, grade
    from exercise_code.util.layout import WORKSPACE as workspace
    from solutions.train_reference import train_reference

    print("[1/7] Getting the data")
    try:
        data_dir = fetch_dataset(args.source, args.data_dir)
        test_dir = None
        if args.test_source:
            # Known by name, not passed as sha256=: a test zip an instructor rebuilt is accepted (download.py).
            test_dir = fetch_dataset(args.test_source, args.test_data_dir, known_sha256=HIDDEN_TEST_SHA256)
    except DataSourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    print("[2/7] Building the datasets")
    start = time.perf_counter()
    splits = {split: FacialKeypointsDataset(data_dir, split) for split in ("train", "val")}
    if test_dir:
        splits["test"] = FacialKeypointsDataset(test_dir, "test")
    sizes = ", ".join(f"{name} {len(dataset)}" for name, dataset in splits.items())
    print(f"      {sizes} faces ({time.perf_counter() - start:.2f} s)")
    dummy_score = evaluate_model(DummyKeypointModel(), splits["val"])
    print(f"      the dummy model scores {dummy_score:.2f} on val (1 / (2 * MSE); 100 passes)")

    print(f"[3/7] Training the reference model (a budget of {args.minutes:g} minutes)")
    model, history = train_reference(data_dir, args.minutes, log=lambda line: print(f"      {line}"))
    print(f"      the trained model scores {evaluate_model(model, splits['val']):.1f} on val")

    print("[4/7] Drawing validation faces with its predictions")
    args.out.mkdir(parents=True, exist_ok=True)
    show_keypoint_grid(splits["val"], model=model, path=args.out / "faces.png")
    print(f"      {args.out / 'faces.png'}")

    print("[5/7] Saving the model")
    model_path = save_model(model, workspace / "models" / "keypoint_model.pt")
    print(f"      {model_path} ({model_path.stat().st_size / 1e6:.2f} MB)")

    print("[6/7] Building the submission zip")
    zip_path = create_submission_zip(model_path=model_path, out_dir=args.out, pack_root=workspace)

    if not test_dir:
        print("[7/7] No hidden test split given (--test-source): not grading")
        return 0
    print("[7/7] Grading the zip on the hidden test split")
    try:
        result = grade(submissions=[zip_path], test_data=test_dir, out_dir=args.out / "grades", force=True)[0]
    except GradingConfigError as error:   # the jail cannot start, say: the grader refuses, and says why
        print(f"error: grading did not run: {error}", file=sys.stderr)
        return 1
    print(f"      {result['output']}")
    if result["extra_data"]["raw_score"] is None:
        print(f"error: the grader could not score the zip (see above; details in {args.out / 'grades'})",
              file=sys.stderr)
        return 1
    print(f"      score on the hidden test split: {result['extra_data']['raw_score']:.1f} "
          f"-> {result['score']:g}/{result['tests'][-1]['max_score']:g} points "
          f"(isolation: {result['extra_data']['isolation']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
