"""The one scoring function, evaluate_model and the dummy model."""
import pytest
import torch
from torch import nn

from benchmarks.models import typical_student_cnn
from benchmarks.i2dl_baseline import i2dl_evaluate_model
from exercise_code.evaluation import evaluate_model, keypoint_score, predict
from exercise_code.networks import DummyKeypointModel


def test_score_formula():
    """Is the score 1 / (2 * MSE) over all 30 coordinates?"""
    target = torch.zeros(4, 15, 2)
    predicted = torch.full((4, 30), 0.1)  # MSE 0.01 -> score 50
    assert keypoint_score(predicted, target) == pytest.approx(50.0)
    assert keypoint_score(target, target) == float("inf")


@pytest.mark.parametrize("predicted, words", [
    (torch.zeros(4, 29), "shape"),
    (torch.zeros(3, 30), "3 predictions for 4 targets"),
    (torch.full((4, 30), float("nan")), "NaN or infinity"),
    (torch.full((4, 30), float("inf")), "NaN or infinity"),
])
def test_bad_predictions(predicted, words):
    """Are wrong shapes and non-finite predictions refused with a clear message?"""
    with pytest.raises(ValueError, match=words):
        keypoint_score(predicted, torch.zeros(4, 15, 2))


def test_matches_i2dl_per_image_loop(val_set):
    """Does evaluate_model equal I2DL's per-image loop to 1e-6 relative (the dummy and a randomly initialised CNN)?"""
    torch.manual_seed(0)
    for model in (DummyKeypointModel(), typical_student_cnn()):
        ours = evaluate_model(model, val_set)
        theirs = i2dl_evaluate_model(model, val_set)
        assert ours == pytest.approx(theirs, rel=1e-6)


def test_model_mode_is_left_as_found(val_set):
    """Are train mode, eval mode and mixed modes all restored after scoring?"""
    model = nn.Sequential(typical_student_cnn(), nn.Dropout(0.5))
    model.train()
    model[1].eval()
    before = [m.training for m in model.modules()]
    evaluate_model(model, torch.utils.data.Subset(val_set, range(16)))
    assert [m.training for m in model.modules()] == before


def test_scoring_is_deterministic_and_untracked(val_set):
    """Does scoring a dropout model in train mode use eval mode (same score twice) and track no gradients?"""
    model = nn.Sequential(typical_student_cnn(), nn.Dropout(0.5)).train()
    subset = torch.utils.data.Subset(val_set, range(32))
    assert evaluate_model(model, subset) == evaluate_model(model, subset)
    assert all(p.grad is None for p in model.parameters())
    assert not predict(model, torch.zeros(2, 1, 96, 96)).requires_grad


def test_flat_and_shaped_outputs_score_the_same(val_set):
    """Is a model returning (N, 15, 2) scored like one returning (N, 30)?"""
    flat = DummyKeypointModel()
    shaped = nn.Sequential(DummyKeypointModel(), nn.Unflatten(1, (15, 2)))
    assert evaluate_model(shaped, val_set) == evaluate_model(flat, val_set)


class ViewFlattenCNN(nn.Module):
    """typical_student_cnn with x.view(N, -1) instead of nn.Flatten, as many students write it."""

    def __init__(self, cnn):
        super().__init__()
        self.features, self.head = cnn[:12], cnn[13:]

    def forward(self, x):
        features = self.features(x)                                  # (N, 128, 6, 6)
        return self.head(features.view(features.size(0), -1))       # needs a contiguous map


def test_view_on_a_feature_map_is_scored_like_flatten(val_set):
    """Is a model that .view()s its feature map (impossible channels-last) scored, and like its nn.Flatten twin?"""
    torch.manual_seed(0)
    cnn = typical_student_cnn()
    subset = torch.utils.data.Subset(val_set, range(80))             # two batches: the fallback holds for both
    assert evaluate_model(ViewFlattenCNN(cnn), subset) == pytest.approx(evaluate_model(cnn, subset), rel=1e-6)
    images = torch.rand(3, 1, 96, 96)
    with torch.no_grad():
        assert torch.allclose(predict(ViewFlattenCNN(cnn), images).flatten(1), cnn(images), atol=1e-6)


def test_errors_of_the_model_are_raised():
    """Is a model's own error raised, not hidden by the retry in the usual layout?"""
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        evaluate_model(nn.Sequential(nn.Flatten(), nn.Linear(3, 30)), [{"image": torch.zeros(1, 96, 96),
                                                                        "keypoints": torch.zeros(15, 2)}])


def test_empty_dataset():
    """Is an empty dataset an error instead of a division by zero?"""
    with pytest.raises(ValueError, match="empty"):
        evaluate_model(DummyKeypointModel(), [])


def test_dummy_model_shapes():
    """Does the dummy take a batch or a single image and return (N, 30)?"""
    model = DummyKeypointModel()
    assert model(torch.zeros(5, 1, 96, 96)).shape == (5, 30)
    assert model(torch.zeros(1, 96, 96)).shape == (1, 30)


def test_dummy_model_is_the_floor(val_set):
    """Does the dummy score something real but below the pass mark of 100?"""
    score = evaluate_model(DummyKeypointModel(), val_set)
    assert 20 < score < 100


def test_keypoint_errors_are_pixel_distances_per_keypoint():
    """Is each keypoint's error the root mean squared distance in pixels, over all faces?"""
    from exercise_code.evaluation import keypoint_errors
    from exercise_code.keypoints import pixels_to_unit

    target = torch.zeros(2, 15, 2)
    shifted = target.clone()
    shifted[0, 3] += pixels_to_unit(torch.tensor([51.0, 52.0])) - pixels_to_unit(torch.tensor([48.0, 48.0]))   # 3-4-5
    errors = keypoint_errors(shifted.reshape(2, 30), target)
    assert errors.shape == (15,)
    assert errors[3].item() == pytest.approx((25 / 2) ** 0.5)   # 5 px on one face of two
    assert errors.sum().item() == pytest.approx(errors[3].item())
    with pytest.raises(ValueError):
        keypoint_errors(shifted[:1], target)
