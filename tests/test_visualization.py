"""Drawing faces renders headless, with the sides coloured apart."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from exercise_code.networks import DummyKeypointModel  # noqa: E402
from exercise_code.visualization import show_all_keypoints, show_keypoint_grid  # noqa: E402


def test_show_all_keypoints(val_set):
    """Are ground truth and predictions drawn as three coloured groups each, with a legend?"""
    sample = val_set[0]
    fig, ax = plt.subplots()
    show_all_keypoints(sample["image"], sample["keypoints"], sample["keypoints"].flatten() * 0.9, ax=ax)
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["subject's left", "subject's right", "midline", "subject's left (predicted)",
                      "subject's right (predicted)", "midline (predicted)"]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 30
    plt.close(fig)


def test_grid_saves_a_png(val_set, tmp_path):
    """Does the grid with model predictions save a PNG file?"""
    path = tmp_path / "faces.png"
    fig = show_keypoint_grid(val_set, model=DummyKeypointModel(), indices=range(6), ncols=3, path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert len(fig.axes) == 6
    plt.close(fig)
