"""Training helpers and the reference recipe."""
import math

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
import torch  # noqa: E402
from torch.optim.swa_utils import AveragedModel  # noqa: E402

from exercise_code.training import plot_losses, progress_bar  # noqa: E402
from solutions import train_reference  # noqa: E402


def test_progress_bar_shows_the_loss_on_stdout(capsys):
    """Does the bar draw on stdout (never stderr, which nbgrader counts as an error) with the loss?"""
    bar = progress_bar(range(3), "epoch 1/2")
    for _ in bar:
        bar.set_postfix(loss="0.12345")
    captured = capsys.readouterr()
    assert "epoch 1/2" in captured.out and "loss=0.12345" in captured.out and captured.err == ""


def test_plot_losses_saves_a_png(tmp_path):
    """Does the loss plot draw one line per series and save a PNG?"""
    path = tmp_path / "losses.png"
    ax = plot_losses({"train": [0.1, 0.05, 0.02], "val": [0.12, 0.06, 0.04]}, path=path)
    assert [line.get_label() for line in ax.get_lines()] == ["train", "val"]
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_fit_is_deterministic(val_set):
    """Do two runs of the reference loop with the same seed (augmentation, heatmap loss, averaging) give identical weights?"""
    subset = torch.utils.data.Subset(val_set, range(64))
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        model = train_reference.KeypointModel({"channels": [4, 8, 8, 8], "stem": 4})
        average = AveragedModel(model, multi_avg_fn=train_reference.moving_average(0.99), use_buffers=True)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        train_reference.fit(model, subset, optimizer, epochs=2, batch_size=16, seed=3, log=lambda line: None,
                            loss_fn=train_reference.reference_loss, average=average)
        weights.append(torch.cat([p.detach().flatten() for p in average.module.parameters()]))
    assert torch.equal(weights[0], weights[1])


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_forward_with_heatmaps_returns_what_the_loss_needs(mode):
    """Does forward_with_heatmaps return forward's keypoints and maps that sum to 1, with nothing kept on the model?"""
    torch.manual_seed(0)
    model = getattr(train_reference.KeypointModel({"channels": [4, 8, 8, 8], "stem": 4}), mode)()
    images = torch.rand(3, 1, 96, 96)
    with torch.no_grad():                                        # no grad: BatchNorm's statistics still move in train mode
        state = {k: v.clone() for k, v in model.state_dict().items()}
        keypoints, heatmaps = model.forward_with_heatmaps(images)
        model.load_state_dict(state)                             # the same running statistics for forward
        assert torch.equal(model(images), keypoints)            # (3, 30): one code path
    assert heatmaps.shape == (3, 15, 24, 24)
    assert torch.allclose(heatmaps.sum((-2, -1)), torch.ones(3, 15))
    assert not any(isinstance(v, torch.Tensor) and v.shape == heatmaps.shape for v in vars(model).values())


def test_gaussian_heatmaps_peak_at_the_keypoint():
    """Does each target map sum to 1 and peak in the grid cell that holds its keypoint?"""
    centres = torch.linspace(-0.9, 0.9, 10)                    # 10 cells, 0.2 apart
    keypoints = torch.tensor([[[-0.9, 0.3], [0.5, -0.5]]])      # (1, 2, 2): on cell centres (0, 6) and (7, 2)
    maps = train_reference.gaussian_heatmaps(keypoints, centres, sigma=1.0)
    assert maps.shape == (1, 2, 10, 10)
    assert torch.allclose(maps.sum((-2, -1)), torch.ones(1, 2))
    rows_cols = [divmod(int(m.argmax()), 10) for m in maps[0]]
    assert rows_cols == [(6, 0), (2, 7)]                        # (row = y, column = x)


def test_js_divergence_is_zero_for_equal_maps_and_positive_otherwise():
    """Is the heatmap term 0 when the maps agree, symmetric, and at most log 2 when they do not overlap?"""
    p = torch.zeros(1, 1, 3, 3); p[..., 0, 0] = 1
    q = torch.zeros(1, 1, 3, 3); q[..., 2, 2] = 1
    uniform = torch.full((1, 1, 3, 3), 1 / 9)
    assert train_reference.js_divergence(p, p).item() == pytest.approx(0, abs=1e-6)
    assert train_reference.js_divergence(p, q).item() == pytest.approx(math.log(2), rel=1e-5)
    assert train_reference.js_divergence(p, uniform).item() == pytest.approx(
        train_reference.js_divergence(uniform, p).item())


def test_moving_average_forgets_the_start_quickly_then_decays_slowly():
    """Does the average follow the weights closely at first, by 1 - decay later, and copy integer buffers?"""
    update = train_reference.moving_average(0.99)
    average, integer = torch.zeros(1), torch.zeros(1, dtype=torch.long)
    update([average], [torch.ones(1)], torch.tensor(0))          # n = 0: moves by 1 - 1/10
    assert average.item() == pytest.approx(0.9)
    update([integer], [torch.tensor([7])], torch.tensor(0))
    assert integer.item() == 7
    average.zero_()
    update([average], [torch.ones(1)], torch.tensor(10_000))     # late: moves by 1 - 0.99
    assert average.item() == pytest.approx(0.01)
