"""
Helpers for a training loop: a progress bar that shows the loss, and a plot of
the training and validation loss per epoch.

    history = {"train": [], "val": []}
    for epoch in range(epochs):
        bar = progress_bar(train_loader, f"epoch {epoch + 1}/{epochs}")
        for batch in bar:
            ...
            bar.set_postfix(loss=f"{loss.item():.4f}")
        history["train"].append(...)
        history["val"].append(...)
    plot_losses(history)
"""
import sys

import matplotlib.pyplot as plt
from tqdm import tqdm


def progress_bar(iterable, description=None, enabled=True):
    """
    Wrap an iterable (a DataLoader, say) in a progress bar.

    Inputs:
    - iterable: What to loop over; its len() gives the bar's length
    - description: Text before the bar, e.g. "epoch 3/10"
    - enabled: If False, nothing is drawn (for logs); set_postfix still works

    Returns:
    - A tqdm bar to loop over; call bar.set_postfix(loss=...) to show the loss
    """
    # stdout, not tqdm's default stderr: nbgrader counts anything on stderr as an error.
    return tqdm(iterable, desc=description, file=sys.stdout, leave=False, dynamic_ncols=True,
                disable=not enabled)


def plot_losses(history, ax=None, path=None):
    """
    Plot loss curves, one point per epoch.

    Inputs:
    - history: Dict name -> list of losses per epoch, e.g. {"train": [...], "val": [...]}
    - ax: Matplotlib axes to draw on; default a new figure
    - path: If given, the figure is also saved there (PNG)

    Returns:
    - ax
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for name, losses in history.items():
        ax.plot(range(1, len(losses) + 1), losses, marker="o", markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (MSE, unit coordinates)")
    ax.set_yscale("log")  # losses fall by orders of magnitude
    ax.grid(True, alpha=0.3)
    ax.legend()
    if path is not None:
        ax.figure.savefig(path, dpi=100)
    return ax
