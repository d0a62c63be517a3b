"""
Data pipeline and scoring speed: the pack against the I2DL way, in one run.

    python benchmarks/data_pipeline.py [--data DIR] [--limit N]

Prints each measurement and three checks (exit 1 if one fails):
- building the train split from a warm cache takes under 0.5 s;
- one epoch through a DataLoader is at least 50x faster than with a dataset that
  re-parses the pixel string in every __getitem__;
- scoring a typical student CNN (conv blocks 16-32-64-128, about 1.3M parameters)
  on the validation split, dataset construction included, is at least 2.5x faster
  than the I2DL way (per-item parsing dataset plus per-image loop).
--limit N uses the first N rows of each split (a quick smoke run; no checks).
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

from benchmarks.i2dl_baseline import I2DLFacialKeypointsDataset, i2dl_evaluate_model
from benchmarks.models import typical_student_cnn
from exercise_code.data import FacialKeypointsDataset
from exercise_code.util.download import default_data_dir
from exercise_code.evaluation import evaluate_model


def seconds(fn, repeat=1):
    """Median wall-clock seconds of fn() over `repeat` calls, and its last result."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def epoch(dataset):
    for _ in DataLoader(dataset, batch_size=32, shuffle=True):
        pass


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data_dir(), help="folder with training.csv, val.csv")
    parser.add_argument("--limit", type=int, help="use only the first N rows of each split (smoke run)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        # Our own copy of the CSVs, so the cold parse really is cold.
        csv = {}
        for split, name in (("train", "training.csv"), ("val", "val.csv")):
            csv[split] = Path(tmp) / name
            pd.read_csv(args.data / name, nrows=args.limit).to_csv(csv[split], index=False)

        cold, _ = seconds(lambda: FacialKeypointsDataset(csv["train"]))
        warm, train_set = seconds(lambda: FacialKeypointsDataset(csv["train"]), repeat=5)
        print(f"train split ({len(train_set)} faces): first parse {cold:.2f} s, from warm cache {warm:.3f} s")

        baseline_set = I2DLFacialKeypointsDataset(csv["train"])
        ours_epoch, _ = seconds(lambda: epoch(train_set), repeat=3)
        i2dl_epoch, _ = seconds(lambda: epoch(baseline_set))
        epoch_ratio = i2dl_epoch / ours_epoch
        print(f"one epoch, batch 32: ours {ours_epoch:.3f} s, I2DL-style {i2dl_epoch:.2f} s -> {epoch_ratio:.0f}x")

        model = typical_student_cnn()
        n_params = sum(p.numel() for p in model.parameters())
        FacialKeypointsDataset(csv["val"])  # warm the cache, as any earlier use would
        ours_score_s, ours = seconds(lambda: evaluate_model(model, FacialKeypointsDataset(csv["val"])), repeat=3)
        i2dl_score_s, theirs = seconds(lambda: i2dl_evaluate_model(model, I2DLFacialKeypointsDataset(csv["val"])))
        score_ratio = i2dl_score_s / ours_score_s
        print(f"scoring a {n_params / 1e6:.2f}M-parameter CNN on val: ours {ours_score_s:.2f} s, "
              f"I2DL way {i2dl_score_s:.2f} s -> {score_ratio:.1f}x (scores {ours:.4f} vs {theirs:.4f})")

    if args.limit:
        print("smoke run (--limit): targets not checked")
        return 0
    checks = [("warm-cache train split < 0.5 s", warm < 0.5),
              ("epoch speed-up >= 50x", epoch_ratio >= 50),
              ("scoring speed-up >= 2.5x", score_ratio >= 2.5)]
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'} {name}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
