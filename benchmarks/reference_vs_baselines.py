"""
The reference solution against two baselines, trained in one run on the same split.

    python benchmarks/reference_vs_baselines.py --data DIR --test-data DIR [--minutes M]

Prints one row per model: validation and test score, parameter count, model file
size and training time. Baseline A and B are the recipes described in
benchmarks/models.py (no augmentation); the reference is solutions/train_reference.py
with a budget of --minutes (default: the reference's own default).
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from solutions import train_reference
from benchmarks.models import baseline_a, baseline_b
from exercise_code.data import FacialKeypointsDataset
from exercise_code.evaluation import evaluate_model
from exercise_code.util.limits import count_parameters
from exercise_code.util.model_files import save_model


def train_baseline_a(train_set, seed):
    torch.manual_seed(seed)
    model = baseline_a()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-6)
    train_reference.fit(model, train_set, optimizer, epochs=2, batch_size=20, seed=seed, log=lambda line: None)
    return model


def train_baseline_b(train_set, seed):
    torch.manual_seed(seed)
    model = baseline_b()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-7)
    train_reference.fit(model, train_set, optimizer, epochs=15, batch_size=16, seed=seed, log=lambda line: None)
    return model


def file_size_mb(model):
    """Size of the model's file in the submission format."""
    model.hparams = getattr(model, "hparams", {})
    with tempfile.TemporaryDirectory() as tmp:
        return save_model(model, Path(tmp) / "model.pt").stat().st_size / 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with training.csv and val.csv")
    parser.add_argument("--test-data", type=Path, required=True, help="folder with the hidden test.csv")
    parser.add_argument("--minutes", type=float, default=train_reference.DEFAULT_MINUTES,
                        help="the reference's training budget (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    train_set = FacialKeypointsDataset(args.data, "train")
    val_set = FacialKeypointsDataset(args.data, "val")
    test_set = FacialKeypointsDataset(args.test_data, "test")
    runs = {
        "baseline A": lambda: train_baseline_a(train_set, args.seed),
        "baseline B": lambda: train_baseline_b(train_set, args.seed),
        "reference": lambda: train_reference.train_reference(args.data, args.minutes, args.seed, log=lambda line: None)[0],
    }
    print("| model | val score | test score | parameters | file (MB) | training (min) |")
    print("|---|---|---|---|---|---|")
    for name, train in runs.items():
        start = time.perf_counter()
        model = train()
        minutes = (time.perf_counter() - start) / 60
        print(f"| {name} | {evaluate_model(model, val_set):.1f} | {evaluate_model(model, test_set):.1f} | "
              f"{count_parameters(model):,} | {file_size_mb(model):.2f} | {minutes:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
