"""
The score of the exercise: 1 / (2 * MSE) over all keypoint coordinates, in unit
coordinates ((pixel - 48) / 48). A score of 100 (MSE 0.005) passes.

keypoint_score is the one scoring function: evaluate_model, the notebooks, the
student tests and the grader all call it.
"""
from contextlib import contextmanager

import torch
from torch.utils.data import DataLoader

from .keypoints import as_keypoint_array, unit_to_pixels


def keypoint_score(predicted, target):
    """
    Score predictions against targets.

    Inputs:
    - predicted: Tensor of shape (N, 30) or (N, 15, 2), unit coordinates
    - target: Tensor of shape (N, 30) or (N, 15, 2), unit coordinates

    Returns:
    - score: Float, 1 / (2 * mean squared error); inf for a perfect prediction
    """
    predicted = as_keypoint_array(predicted).to(torch.float64)
    target = as_keypoint_array(target).to(torch.float64)
    if predicted.shape != target.shape:
        raise ValueError(f"{len(predicted)} predictions for {len(target)} targets")
    if len(target) == 0:
        raise ValueError("Nothing to score: there are no targets")
    if not torch.isfinite(predicted).all():
        raise ValueError("The predictions contain NaN or infinity")
    mse = torch.mean((predicted - target) ** 2).item()
    return 1.0 / (2.0 * mse) if mse > 0 else float("inf")


def keypoint_errors(predicted, target):
    """
    The error of each keypoint in pixels, over all faces: the root mean squared
    distance between predicted and true point. Aggregates only: one number per keypoint.

    Inputs:
    - predicted: Tensor of shape (N, 30) or (N, 15, 2), unit coordinates
    - target: Tensor of the same shape, unit coordinates

    Returns:
    - errors: Tensor of shape (15,), float64, in pixels, in the order of KEYPOINT_NAMES
    """
    predicted = as_keypoint_array(predicted).to(torch.float64)
    target = as_keypoint_array(target).to(torch.float64)
    if predicted.shape != target.shape or len(target) == 0:
        raise ValueError(f"{len(predicted)} predictions for {len(target)} targets")
    squared_distance = ((unit_to_pixels(predicted) - unit_to_pixels(target)) ** 2).sum(dim=2)   # (N, 15)
    return squared_distance.mean(dim=0).sqrt()


@contextmanager
def evaluating(model):
    """Put every module of model in eval mode, and back in its own mode afterwards."""
    modes = {module: module.training for module in model.modules()}
    model.eval()  # dropout off, batchnorm on its running statistics
    try:
        yield model
    finally:
        for module, training in modes.items():
            module.train(training)


def _forward(model, images):
    """Model outputs for images (B, 1, 96, 96), as a float32 CPU tensor (B, 15, 2)."""
    device = next(model.parameters(), torch.empty(0)).device
    return as_keypoint_array(model(images.to(device))).float().cpu()


def _channels_last(images):
    """
    The same images (B, C, H, W) stored channels-last, strides (C*H*W, 1, W*C, C).

    images.contiguous(memory_format=torch.channels_last) would return a 1-channel
    batch as it is: with C = 1 both layouts count as contiguous.
    """
    return torch.empty_like(images, memory_format=torch.channels_last).copy_(images)


def _forward_batches(model, batches):
    """
    Model outputs for each batch of images (B, 1, 96, 96), as float32 CPU tensors (B, 15, 2).

    We feed the batches channels-last: each convolution's output then keeps that
    layout, which oneDNN's CPU convolutions and pooling run without reordering:
    1.35-1.65x faster for a typical student CNN on 2 cores (benchmarks/data_pipeline.py),
    and the same outputs to float32 rounding. The weights are left as they are. A model
    that .view()s a feature map needs it contiguous and raises on the first batch;
    that model runs in the usual layout, and any other error is raised again there.
    """
    channels_last = True
    for number, images in enumerate(batches):
        if channels_last:
            try:
                out = _forward(model, _channels_last(images))
            except RuntimeError:
                if number > 0:
                    raise
                channels_last = False
        if not channels_last:
            out = _forward(model, images)
        yield out


def predict(model, images, batch_size=64):
    """
    Run a model over images in batches, in eval mode, without tracking gradients.

    Inputs:
    - model: Module mapping (B, 1, 96, 96) to (B, 30) or (B, 15, 2)
    - images: Tensor of shape (N, 1, 96, 96)

    Returns:
    - predictions: float32 CPU tensor of shape (N, 15, 2)
    """
    with evaluating(model), torch.inference_mode():
        return torch.cat(list(_forward_batches(model, images.split(batch_size))))


def evaluate_model(model, dataset, batch_size=64):
    """
    Score a model on a dataset of faces.

    Inputs:
    - model: Module mapping (B, 1, 96, 96) to (B, 30) or (B, 15, 2), unit coordinates
    - dataset: Dataset of samples {"image": (1, 96, 96), "keypoints": (15, 2)}
    - batch_size: Images per forward pass

    Returns:
    - score: Float, 1 / (2 * MSE); the model's train/eval mode is left unchanged
    """
    targets = []

    def images():  # (B, 1, 96, 96) per batch, keeping the batch's keypoints for the score
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            targets.append(batch["keypoints"])                   # (B, 15, 2)
            yield batch["image"]

    with evaluating(model), torch.inference_mode():
        predictions = list(_forward_batches(model, images()))    # (B, 15, 2) each
    if not targets:
        raise ValueError("The dataset is empty")
    return keypoint_score(torch.cat(predictions), torch.cat(targets))
