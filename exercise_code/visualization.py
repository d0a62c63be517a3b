"""
Faces with their keypoints. The subject's left points, right points and midline
points get their own colours, so a model that confuses left and right shows it.
"""
import matplotlib.pyplot as plt
import torch

from .keypoints import LEFT_IDS, MIDLINE_IDS, RIGHT_IDS, as_keypoint_array, unit_to_pixels
from .evaluation import predict

GROUPS = [("subject's left", LEFT_IDS, "tab:red"),
          ("subject's right", RIGHT_IDS, "tab:blue"),
          ("midline", MIDLINE_IDS, "tab:green")]


def show_all_keypoints(image, keypoints, predicted_keypoints=None, ax=None, legend=True):
    """
    Draw one face with its keypoints (dots) and, optionally, predictions (crosses).

    Inputs:
    - image: Tensor or array of shape (1, 96, 96) or (96, 96), values in [0, 1]
    - keypoints: Tensor of shape (15, 2) or (30,), unit coordinates
    - predicted_keypoints: Optional tensor of the same form
    - ax: Matplotlib axes to draw on; default the current axes
    - legend: Whether to add a legend

    Returns:
    - ax
    """
    ax = ax or plt.gca()
    # numpy, not tensors: matplotlib warns (on stderr) about tensors' __array__
    ax.imshow(torch.as_tensor(image).detach().reshape(96, 96).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
    sets = [(keypoints, "o", "")]
    if predicted_keypoints is not None:
        sets.append((predicted_keypoints, "x", " (predicted)"))
    for points, marker, suffix in sets:
        pixels = unit_to_pixels(as_keypoint_array(points).detach().cpu()[0]).numpy()  # (15, 2)
        for label, ids, colour in GROUPS:
            ax.scatter(pixels[ids, 0], pixels[ids, 1], s=25, marker=marker, c=colour, label=label + suffix)
    if legend:
        ax.legend(loc="lower center", fontsize="x-small", ncol=2, framealpha=0.7)
    ax.set_axis_off()
    return ax


def show_keypoint_grid(dataset, model=None, indices=range(8), ncols=4, path=None):
    """
    Draw several faces of a dataset, with a model's predictions if one is given.

    Inputs:
    - dataset: Dataset of samples {"image": (1, 96, 96), "keypoints": (15, 2)}
    - model: Optional module mapping (N, 1, 96, 96) to (N, 30) or (N, 15, 2)
    - indices: Which samples to show
    - ncols: Faces per row
    - path: If given, the figure is also saved there (PNG)

    Returns:
    - The matplotlib figure
    """
    samples = [dataset[i] for i in indices]
    predictions = [None] * len(samples)
    if model is not None:
        predictions = predict(model, torch.stack([s["image"] for s in samples]))
    nrows = -(-len(samples) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.5 * ncols, 2.5 * nrows), squeeze=False)
    for ax in axes.flat[len(samples):]:
        ax.set_axis_off()
    for ax, sample, prediction in zip(axes.flat, samples, predictions):
        show_all_keypoints(sample["image"], sample["keypoints"], prediction, ax=ax, legend=False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize="small")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
