"""
Train the reference KeypointModel from scratch on the CPU and save it in the
submission format.

    python solutions/train_reference.py --data DIR --out PATH [--minutes M] [--seed S]

The recipe:
- the reference KeypointModel (solutions/exercise_code/networks/keypoint_nn.py): a
  small U-Net drawing one heatmap per keypoint, read off by soft-argmax, with
  test-time flip averaging;
- flip and brightness/contrast augmentation. No rotation, scaling or shifting:
  these faces are already detector-aligned crops, and the resampling blurs the
  training images the test images never are (measured: val 1000 without, 720
  with +-5 degrees / 5 % / 2 px, 430 with +-10 degrees / 10 % / 4 px);
- loss: MSE on the keypoints plus a small term pulling each heatmap towards a
  Gaussian around its keypoint, which shapes the maps early (DSNT, Nibali et al. 2018);
- AdamW with a one-cycle learning-rate schedule, and an exponential moving
  average of the weights, which is the model we keep;
- channels-last memory layout, which makes the convolutions about 1.7x faster on CPU.

The time budget is turned into a number of epochs with a fixed rate,
EPOCHS_PER_MINUTE (measured on the course machine's 2 cores), so a run is the
same for the same --minutes and --seed wherever it runs; it only takes longer
on a slower machine.
"""
import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader

from exercise_code.data import (
    Compose, FacialKeypointsDataset, RandomBrightnessContrast, RandomHorizontalFlip,
)
from exercise_code.keypoints import NUM_KEYPOINTS
from exercise_code.evaluation import evaluate_model
from exercise_code.util.model_files import save_model
from exercise_code.networks import KeypointModel
from exercise_code.training import progress_bar

REFERENCE_HPARAMS = {"channels": [24, 48, 96, 192], "stem": 16, "flip_test": True}
RECIPE = {"batch_size": 32, "lr": 2e-3, "weight_decay": 1e-4, "warmup": 0.15,
          "heatmap_weight": 1.0, "heatmap_sigma": 1.0, "ema_decay": 0.998}
EPOCHS_PER_MINUTE = 5.0  # measured on the course machine: 30 epochs, validation included, took 6.1 minutes
DEFAULT_MINUTES = 6.0    # 30 epochs; validation peaks around epoch 20 of 30, so longer budgets do not help
CI_MINUTES = 0.5         # the CI test's budget: 2 epochs, well past the course threshold (val about 450)


def augmentation():
    """The training-time transforms: every change moves the keypoints with the face."""
    return Compose([RandomHorizontalFlip(), RandomBrightnessContrast(0.2, 0.2)])


def mse_loss(model, images, keypoints):
    """
    The plain loss: MSE between predicted and true keypoints.

    Inputs:
    - model: Module mapping (B, 1, 96, 96) to (B, 30)
    - images: Tensor of shape (B, 1, 96, 96)
    - keypoints: Tensor of shape (B, 15, 2), unit coordinates

    Returns:
    - Scalar tensor
    """
    return F.mse_loss(model(images).view(-1, NUM_KEYPOINTS, 2), keypoints)


def gaussian_heatmaps(keypoints, centres, sigma):
    """
    Normalized Gaussian bumps around each keypoint, on the model's heatmap grid.

    Inputs:
    - keypoints: Tensor of shape (B, K, 2), unit coordinates
    - centres: Tensor of shape (S,), the unit coordinate of each grid cell's centre
    - sigma: Standard deviation in grid cells

    Returns:
    - Tensor of shape (B, K, S, S) whose maps each sum to 1
    """
    spread = sigma * (centres[1] - centres[0])
    gx = torch.exp(-(centres - keypoints[..., 0:1]) ** 2 / (2 * spread ** 2))  # (B, K, S) over columns
    gy = torch.exp(-(centres - keypoints[..., 1:2]) ** 2 / (2 * spread ** 2))  # (B, K, S) over rows
    maps = gy.unsqueeze(-1) * gx.unsqueeze(-2)                                   # (B, K, S, S)
    return maps / maps.sum((-2, -1), keepdim=True)


def js_divergence(p, q, eps=1e-12):
    """Jensen-Shannon divergence between maps p and q of shape (B, K, S, S); returns (B, K)."""
    m = (p + q) / 2
    kl_pm = (p * (torch.log(p + eps) - torch.log(m + eps))).sum((-2, -1))
    kl_qm = (q * (torch.log(q + eps) - torch.log(m + eps))).sum((-2, -1))
    return (kl_pm + kl_qm) / 2


def reference_loss(model, images, keypoints):
    """
    MSE on the keypoints plus RECIPE["heatmap_weight"] times the JS divergence
    between each heatmap and a Gaussian around its true keypoint.

    Inputs and Returns: as mse_loss; the model must be a reference KeypointModel,
    whose forward_with_heatmaps returns its keypoints and the maps they were read from.
    """
    predicted, heatmaps = model.forward_with_heatmaps(images)   # (B, 30), (B, 15, S, S)
    loss = F.mse_loss(predicted.view(-1, NUM_KEYPOINTS, 2), keypoints)
    targets = gaussian_heatmaps(keypoints, model.centres, RECIPE["heatmap_sigma"])  # (B, 15, S, S)
    return loss + RECIPE["heatmap_weight"] * js_divergence(heatmaps, targets).mean()


def moving_average(decay):
    """
    The update rule of an exponential moving average of the weights, for
    torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=moving_average(decay)).

    After n updates the average moves towards the model by 1 - min(decay, (1 + n) / (10 + n)):
    quickly at first, so that it forgets the random initial weights, then by
    1 - decay per step. Integer buffers (BatchNorm's batch counter) are copied.
    """
    @torch.no_grad()
    def update(averaged, current, num_averaged):  # lists of tensors of one dtype, the count so far
        n = num_averaged.item()
        weight = 1 - min(decay, (1 + n) / (10 + n))
        for average, value in zip(averaged, current):
            if average.is_floating_point():
                average.lerp_(value, weight)
            else:
                average.copy_(value)
    return update


def fit(model, train_set, optimizer, epochs, batch_size, scheduler=None, val_set=None, seed=0, log=print,
        progress=None, loss_fn=mse_loss, average=None):
    """
    A plain training loop.

    Inputs:
    - model: Module mapping (B, 1, 96, 96) to (B, 30)
    - train_set: Dataset of {"image", "keypoints"} samples
    - optimizer: A torch optimizer over model's parameters
    - epochs, batch_size: Integers
    - scheduler: Optional learning-rate scheduler, stepped after every batch
    - val_set: Optional dataset scored after each epoch
    - seed: Seeds the shuffling and the augmentation
    - log: Called with one line of text per epoch
    - progress: Draw a progress bar; default only when stdout is a terminal
    - loss_fn: loss_fn(model, images, keypoints) -> scalar tensor; default mse_loss
    - average: Optional torch.optim.swa_utils.AveragedModel of model, updated
      after every step; when given, it is the model scored on val_set

    Returns:
    - history: Dict with "train" (mean loss per epoch) and, with val_set, "val_score"
    """
    torch.manual_seed(seed)  # the transforms draw from torch's global generator
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    scored = model if average is None else average.module
    history = {"train": [], "val_score": []} if val_set is not None else {"train": []}
    for epoch in range(epochs):
        model.train()
        total = 0.0
        bar = progress_bar(loader, f"epoch {epoch + 1}/{epochs}",
                           enabled=sys.stdout.isatty() if progress is None else progress)
        for batch in bar:
            loss = loss_fn(model, batch["image"], batch["keypoints"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if average is not None:
                average.update_parameters(model)
            total += loss.item()
            bar.set_postfix(loss=f"{loss.item():.5f}")
        history["train"].append(total / len(loader))
        line = f"epoch {epoch + 1}/{epochs}: train loss {history['train'][-1]:.5f}"
        if val_set is not None:
            history["val_score"].append(evaluate_model(scored, val_set))
            line += f", val score {history['val_score'][-1]:.1f}"
        log(line)
    return history


def train_reference(data_dir, minutes=DEFAULT_MINUTES, seed=0, log=print):
    """
    Train the reference model.

    Inputs:
    - data_dir: Folder with training.csv and val.csv
    - minutes: Training budget on the course machine (turned into epochs)
    - seed: Random seed: the same seed and budget give the same model

    Returns:
    - model: The trained KeypointModel (the weights' moving average), in eval mode
    - history: Dict from fit
    """
    epochs = max(1, math.floor(minutes * EPOCHS_PER_MINUTE))
    torch.manual_seed(seed)
    model = KeypointModel(REFERENCE_HPARAMS).to(memory_format=torch.channels_last)
    average = AveragedModel(model, multi_avg_fn=moving_average(RECIPE["ema_decay"]), use_buffers=True)
    train_set = FacialKeypointsDataset(data_dir, "train", transform=augmentation())
    val_set = FacialKeypointsDataset(data_dir, "val")
    optimizer = torch.optim.AdamW(model.parameters(), lr=RECIPE["lr"], weight_decay=RECIPE["weight_decay"])
    steps = epochs * (len(train_set) // RECIPE["batch_size"])
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=RECIPE["lr"], total_steps=steps,
                                                    pct_start=RECIPE["warmup"])
    log(f"Training the reference model for {epochs} epochs (a budget of {minutes:g} minutes)")
    history = fit(model, train_set, optimizer, epochs, RECIPE["batch_size"], scheduler, val_set=val_set,
                  seed=seed, log=log, loss_fn=reference_loss, average=average)
    return average.module.eval(), history


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train the reference keypoint model.")
    parser.add_argument("--data", type=Path, required=True, help="folder with training.csv and val.csv")
    parser.add_argument("--out", type=Path, required=True, help="where to save the model file")
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES,
                        help="training budget on the course machine (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    model, history = train_reference(args.data, args.minutes, args.seed)
    save_model(model, args.out)
    print(f"Saved {args.out} after {(time.perf_counter() - start) / 60:.1f} minutes; "
          f"validation score {history['val_score'][-1]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
