"""
The pack's main job, end to end, as a student who solved everything would run it:
get the data, build the datasets, draw some faces, score a model.

    python solutions/end_to_end.py [--source ZIP_OR_URL] [--test-source ZIP_OR_URL]

Sources default to $FACIAL_KEYPOINTS_SOURCE and $FACIAL_KEYPOINTS_TEST_SOURCE. The
hidden test split is optional: without it, only the validation score is printed.
The run happens in the solved workspace build/solved (see grader/release.py).
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for `grader`
from grader.release import REPO_ROOT, use_solved_package  # noqa: E402

use_solved_package()
from exercise_code.data import FacialKeypointsDataset  # noqa: E402
from exercise_code.data.download import DataSourceError, fetch_dataset  # noqa: E402
from exercise_code.evaluation import evaluate_model  # noqa: E402
from exercise_code.networks import DummyKeypointModel  # noqa: E402
from exercise_code.visualization import show_keypoint_grid  # noqa: E402

TEST_SOURCE_ENV = "FACIAL_KEYPOINTS_TEST_SOURCE"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="zip or URL of the students' data (default: $FACIAL_KEYPOINTS_SOURCE)")
    parser.add_argument("--test-source", default=os.environ.get(TEST_SOURCE_ENV),
                        help=f"zip or URL of the hidden test split (default: ${TEST_SOURCE_ENV})")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / "datasets" / "facial_keypoints")
    parser.add_argument("--test-data-dir", type=Path, default=REPO_ROOT / "datasets" / "facial_keypoints_test")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "end_to_end")
    args = parser.parse_args(argv)

    print("[1/4] Getting the data")
    try:
        data_dir = fetch_dataset(args.source, args.data_dir)
        test_dir = fetch_dataset(args.test_source, args.test_data_dir) if args.test_source else None
    except DataSourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    print("[2/4] Building the datasets")
    start = time.perf_counter()
    splits = {split: FacialKeypointsDataset(data_dir, split) for split in ("train", "val")}
    if test_dir:
        splits["test"] = FacialKeypointsDataset(test_dir, "test")
    sizes = ", ".join(f"{name} {len(dataset)}" for name, dataset in splits.items())
    print(f"      {sizes} faces ({time.perf_counter() - start:.2f} s)")

    print("[3/4] Drawing faces with their keypoints")
    args.out.mkdir(parents=True, exist_ok=True)
    model = DummyKeypointModel()
    picture = args.out / "faces.png"
    show_keypoint_grid(splits["val"], model=model, path=picture)
    print(f"      {picture}")

    print("[4/4] Scoring the dummy model (1 / (2 * MSE); 100 passes)")
    for name in ("val", "test"):
        if name in splits:
            print(f"      {name}: {evaluate_model(model, splits[name]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
