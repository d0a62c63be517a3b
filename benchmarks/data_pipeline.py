"""
Data pipeline and scoring speed: the pack against the I2DL way, in one run.

    python benchmarks/data_pipeline.py [--data DIR] [--limit N]

Prints each measurement and three checks (exit 1 if one fails):
- building the train split from a warm cache takes under 0.5 s;
- one epoch through a DataLoader is at least 50x faster than with a dataset that
  re-parses the pixel string in every __getitem__;
- scoring a typical student CNN (conv blocks 16-32-64-128, about 1.3M parameters)
  on the validation split, dataset construction included, is at least SCORE_TARGET
  times faster than the I2DL way (per-item parsing dataset plus per-image loop),
  as the median ratio of SCORE_ROUNDS rounds that time both ways back to back.
It also prints where the scoring time goes: parsing, and the forward passes in
the usual (NCHW) and the channels-last layout that evaluate_model uses.
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
from benchmarks.targets import report
from exercise_code.data import FacialKeypointsDataset
from exercise_code.evaluation import evaluate_model, predict
from exercise_code.util.download import default_data_dir

# Scoring is nearly all forward passes, and those are compute-bound on the CPU: the
# batched NCHW forward was barely faster per image than I2DL's batch of one (0.98 s
# against 2.05 s with parsing on an idle fresh clone: 2.1x, not the 2.5x once claimed).
# The gain has to come from how the model runs: evaluate_model feeds channels-last
# batches, 1.35-1.65x faster than NCHW (7 runs on a loaded 2-core machine). Other load
# slows the per-image loop far more than the batched one (its ratio read 6x-12x on a
# loaded machine), so an idle machine is the hard case for these targets.
SCORE_TARGET = 2.5    # whole scoring, ours vs the I2DL way, median of the rounds
LAYOUT_TARGET = 1.2   # our forward passes alone, channels-last vs NCHW
SCORE_ROUNDS = 3


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


def forward_nchw(model, images, batch_size=64):
    """evaluate_model's forward passes in the usual memory layout, for comparison."""
    with torch.inference_mode():
        return torch.cat([model(batch) for batch in images.split(batch_size)])


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

        model = typical_student_cnn().eval()
        n_params = sum(p.numel() for p in model.parameters())
        FacialKeypointsDataset(csv["val"])  # warm the cache, as any earlier use would
        ratios, ours_s, i2dl_s = [], [], []
        for _ in range(SCORE_ROUNDS):  # back to back, so that both see the same load
            ours_time, ours = seconds(lambda: evaluate_model(model, FacialKeypointsDataset(csv["val"])))
            i2dl_time, theirs = seconds(lambda: i2dl_evaluate_model(model, I2DLFacialKeypointsDataset(csv["val"])))
            ratios.append(i2dl_time / ours_time)
            ours_s.append(ours_time)
            i2dl_s.append(i2dl_time)
        score_ratio = statistics.median(ratios)
        print(f"scoring a {n_params / 1e6:.2f}M-parameter CNN on val: ours {statistics.median(ours_s):.2f} s, "
              f"I2DL way {statistics.median(i2dl_s):.2f} s -> {score_ratio:.1f}x "
              f"(rounds {min(ratios):.1f}x to {max(ratios):.1f}x; scores {ours:.4f} vs {theirs:.4f})")

        # Where the time goes: parsing, and the forward passes alone.
        val_set = FacialKeypointsDataset(csv["val"])
        i2dl_set = I2DLFacialKeypointsDataset(csv["val"])
        images = torch.stack([val_set[i]["image"] for i in range(len(val_set))])  # (N, 1, 96, 96)
        parse_s, samples = seconds(lambda: [i2dl_set[i] for i in range(len(i2dl_set))])
        per_image_s, _ = seconds(lambda: i2dl_evaluate_model(model, samples))
        nchw_s, _ = seconds(lambda: forward_nchw(model, images), repeat=3)
        channels_last_s, _ = seconds(lambda: predict(model, images), repeat=3)
        layout_ratio = nchw_s / channels_last_s
        print(f"  I2DL way: parsing {parse_s:.2f} s, forward one image at a time {per_image_s:.2f} s; "
              f"ours: forward in batches of 64, NCHW {nchw_s:.2f} s, channels-last {channels_last_s:.2f} s "
              f"-> {layout_ratio:.2f}x")

    if args.limit:
        print("smoke run (--limit): targets not checked")
        return 0
    checks = [("warm-cache train split < 0.5 s", warm < 0.5),
              ("epoch speed-up >= 50x", epoch_ratio >= 50),
              (f"scoring speed-up >= {SCORE_TARGET:g}x", score_ratio >= SCORE_TARGET),
              (f"channels-last forward speed-up >= {LAYOUT_TARGET:g}x", layout_ratio >= LAYOUT_TARGET)]
    return report(checks)


if __name__ == "__main__":
    sys.exit(main())
