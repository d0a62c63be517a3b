"""
Checks of the normalization layers in exercise_code/layers.py, run from the
notebook 2_spatial_batchnorm.ipynb:

    test_spatial_batchnorm_forward()    # per-channel means and stds, test mode
    test_spatial_batchnorm_backward()   # dx, dgamma, dbeta against numerical gradients
    test_spatial_groupnorm()            # the extra challenge, forward and backward

Each prints one line per check and "Tests passed: k/n", and returns (k, n).
Every check makes its data from a fixed seed: the same numbers on every run.
"""
import numpy as np
import torch
import torch.nn.functional as F

from .. import layers
from ..gradient_check import eval_numerical_gradient_array, rel_error
from ..util.check_runner import check, expect_at_most, expect_equal, run_checks

EPS, MOMENTUM = 1e-5, 0.9  # the layers' defaults, passed explicitly
FORWARD_LIMIT = 1e-6       # right answers land near 1e-15; statistics over a wrong axis near 1
GRADIENT_LIMIT = 1e-6      # a right backward pass has a relative error of about 1e-8 or less
WARMUP_PASSES = 50         # train-mode passes before the test-mode check

BN_SHAPE = (4, 3, 5, 6)    # (N, C, H, W)
BN_GAMMA, BN_BETA = np.array([3.0, 4.0, 5.0]), np.array([6.0, 7.0, 8.0])  # (C,), (C,)
GN_SHAPE, GN_GROUPS = (2, 4, 3, 4), 2
# Seeds of the gradient checks' data, picked so that no entry of dx is near zero:
# the elementwise relative error of a right answer then stays near 1e-9.
BN_GRADIENT_SEED, GN_SEED = 29, 6


def _feature_maps(seed, shape, batches=1):
    """
    Random data with its own mean and scale per channel, so that statistics
    taken over the wrong axes show.

    Returns:
    - Array of shape (batches, N, C, H, W); every batch has the same channel statistics
    """
    rng = np.random.RandomState(seed)
    scale = rng.uniform(0.5, 2, size=(shape[1], 1, 1))    # (C, 1, 1)
    shift = rng.uniform(-2, 2, size=(shape[1], 1, 1))     # (C, 1, 1)
    return scale * rng.randn(batches, *shape) + shift     # (batches, N, C, H, W)


def _expect_shape(out, shape):
    expect_equal("output shape", np.shape(out), tuple(shape))


def _per_channel(a):
    """(N, C, H, W) -> (C, N*H*W): one row per channel, what batch norm averages over."""
    return a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1)


def _per_group(a):
    """(N, C, H, W) -> (N*G, C//G*H*W): one row per sample's group, what group norm averages over."""
    return a.reshape(a.shape[0] * GN_GROUPS, -1)


def _statistics_checks(layer, forward, rows, beta, gamma):
    """
    Checks of the means and stds of a normalization's output.

    Inputs:
    - layer: Layer name, e.g. "spatial_batchnorm", for the check names
    - forward: Function of no arguments returning (x, out), both (N, C, H, W)
    - rows: Function mapping (N, C, H, W) to (K, M), one row per set normalized together
    - beta, gamma: The output's expected mean and scale per row, shape (K,) or scalars

    Returns:
    - [means check, stds check]
    """
    @check(f"{layer}_forward means")
    def means():
        x, out = forward()
        return expect_at_most("max |mean - beta|", np.abs(rows(out).mean(axis=1) - beta).max(), FORWARD_LIMIT)

    @check(f"{layer}_forward stds")
    def stds():
        x, out = forward()
        var = rows(x).var(axis=1)                           # (K,)
        expected = gamma * np.sqrt(var / (var + EPS))       # eps makes each std a hair below gamma
        return expect_at_most("max |std - gamma|", np.abs(rows(out).std(axis=1) - expected).max(), FORWARD_LIMIT)

    return [means, stds]


def _gradient_checks(layer, x, gamma, beta, *args):
    """
    Checks of layer's backward pass against centred-difference gradients.

    Inputs:
    - layer: "spatial_batchnorm" or "spatial_groupnorm"
    - x, gamma, beta: Inputs of the forward pass, float64
    - args: The forward pass's further arguments (bn_param, or G and gn_param)

    Returns:
    - [dx check, dgamma check, dbeta check]
    """
    dout = np.random.RandomState(7).randn(*x.shape)         # (N, C, H, W)

    def gradient_check(name):
        @check(f"{layer}_backward d{name}")
        def run():
            inputs = {"x": x.copy(), "gamma": gamma.copy(), "beta": beta.copy()}
            forward, backward = getattr(layers, f"{layer}_forward"), getattr(layers, f"{layer}_backward")
            _, cache = forward(*inputs.values(), *args)
            grads = dict(zip(inputs, backward(dout, cache)))

            def output(value):  # the forward pass as a function of the one input `name`
                return forward(*{**inputs, name: value}.values(), *args)[0]

            numeric = eval_numerical_gradient_array(output, inputs[name], dout)
            expect_equal(f"d{name} shape", np.shape(grads[name]), numeric.shape)
            return expect_at_most("relative error", rel_error(grads[name], numeric), GRADIENT_LIMIT)
        return run

    return [gradient_check(name) for name in ("x", "gamma", "beta")]


def _bn_train_forward():
    x = _feature_maps(0, BN_SHAPE)[0]                       # (N, C, H, W)
    out, _ = layers.spatial_batchnorm_forward(x, BN_GAMMA, BN_BETA, {"mode": "train", "eps": EPS})
    _expect_shape(out, x.shape)
    return x, out


@check("spatial_batchnorm_forward test mode")
def bn_test_mode():
    """After train-mode passes, test mode must give what nn.BatchNorm2d gives in eval mode."""
    *warmup, x = _feature_maps(1, BN_SHAPE, batches=WARMUP_PASSES + 1)
    bn_param = {"mode": "train", "eps": EPS, "momentum": MOMENTUM}
    c = BN_SHAPE[1]
    # PyTorch's momentum is the weight of the new batch, ours that of the running average.
    torch_mean, torch_var = torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)
    for batch in warmup:
        layers.spatial_batchnorm_forward(batch, BN_GAMMA, BN_BETA, bn_param)
        F.batch_norm(torch.from_numpy(batch), torch_mean, torch_var, training=True,
                     momentum=1 - MOMENTUM, eps=EPS)  # updates torch_mean and torch_var
    bn_param["mode"] = "test"
    out, _ = layers.spatial_batchnorm_forward(x, BN_GAMMA, BN_BETA, bn_param)
    expected = F.batch_norm(torch.from_numpy(x), torch_mean, torch_var, torch.from_numpy(BN_GAMMA),
                            torch.from_numpy(BN_BETA), training=False, eps=EPS).numpy()
    _expect_shape(out, x.shape)
    return expect_at_most("max |out - nn.BatchNorm2d's|", np.abs(out - expected).max(), FORWARD_LIMIT)


def _gn_inputs():
    """x (N, C, H, W), gamma and beta (1, C, 1, 1) for the group norm checks."""
    x = _feature_maps(GN_SEED, GN_SHAPE)[0]
    rng = np.random.RandomState(3)
    c = GN_SHAPE[1]
    return x, rng.randn(1, c, 1, 1), rng.randn(1, c, 1, 1)


def _gn_plain_forward():
    """Group norm with gamma = 1 and beta = 0, so each group's statistics show directly."""
    x, _, _ = _gn_inputs()
    ones, zeros = np.ones((1, x.shape[1], 1, 1)), np.zeros((1, x.shape[1], 1, 1))
    out, _ = layers.spatial_groupnorm_forward(x, ones, zeros, GN_GROUPS, {"eps": EPS})
    _expect_shape(out, x.shape)
    return x, out


@check("spatial_groupnorm_forward gamma and beta")
def gn_matches_torch():
    """With gamma and beta per channel, the output must be nn.GroupNorm's."""
    x, gamma, beta = _gn_inputs()
    out, _ = layers.spatial_groupnorm_forward(x, gamma, beta, GN_GROUPS, {"eps": EPS})
    expected = F.group_norm(torch.from_numpy(x), GN_GROUPS, torch.from_numpy(gamma.ravel()),
                            torch.from_numpy(beta.ravel()), eps=EPS).numpy()
    _expect_shape(out, x.shape)
    return expect_at_most("max |out - nn.GroupNorm's|", np.abs(out - expected).max(), FORWARD_LIMIT)


def spatial_batchnorm_forward_checks():
    return _statistics_checks("spatial_batchnorm", _bn_train_forward, _per_channel,
                              BN_BETA, BN_GAMMA) + [bn_test_mode]


def spatial_batchnorm_backward_checks():
    x = _feature_maps(BN_GRADIENT_SEED, (2, 3, 4, 5))[0]
    rng = np.random.RandomState(5)
    return _gradient_checks("spatial_batchnorm", x, rng.randn(3), rng.randn(3),
                            {"mode": "train", "eps": EPS})


def spatial_groupnorm_checks():
    return (_statistics_checks("spatial_groupnorm", _gn_plain_forward, _per_group, 0.0, 1.0)
            + [gn_matches_torch]
            + _gradient_checks("spatial_groupnorm", *_gn_inputs(), GN_GROUPS, {"eps": EPS}))


def test_spatial_batchnorm_forward():
    """Run the checks of spatial_batchnorm_forward; returns (passed, total)."""
    return run_checks(spatial_batchnorm_forward_checks())


def test_spatial_batchnorm_backward():
    """Run the checks of spatial_batchnorm_backward; returns (passed, total)."""
    return run_checks(spatial_batchnorm_backward_checks())


def test_spatial_batchnorm():
    """Run every spatial batch norm check; returns (passed, total)."""
    return run_checks(spatial_batchnorm_forward_checks() + spatial_batchnorm_backward_checks())


def test_spatial_groupnorm():
    """Run every spatial group norm check; returns (passed, total)."""
    return run_checks(spatial_groupnorm_checks())
