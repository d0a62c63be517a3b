"""
The normalization layers of the solved exercise_code/layers.py, against PyTorch in
float64 (forward and backward, train and eval mode) and against numerical gradients.
"""
import ast
import inspect
import textwrap
import time

import numpy as np
import pytest
import torch

from exercise_code import layers
from exercise_code.gradient_check import eval_numerical_gradient_array, rel_error

TORCH_TOL = 1e-8      # max |ours - torch|; float64 arithmetic lands near 1e-14
NUMERIC_TOL = 1e-6    # relative error against centred differences


def feature_maps(shape, seed):
    """Data of shape `shape` with its own mean and scale per axis-1 entry."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.5, 3, size=(shape[1],) + (1,) * (len(shape) - 2))
    shift = rng.uniform(-5, 5, size=scale.shape)
    return scale * rng.standard_normal(shape) + shift


def max_diff(ours, theirs):
    return float(np.max(np.abs(np.asarray(ours) - theirs.detach().numpy())))


def torch_batchnorm(c, gamma, beta, dims=2, momentum=0.9, eps=1e-5):
    """nn.BatchNorm1d / 2d in float64 with our gamma and beta (PyTorch's momentum is 1 - ours)."""
    module = (torch.nn.BatchNorm1d if dims == 1 else torch.nn.BatchNorm2d)(
        c, eps=eps, momentum=1 - momentum, dtype=torch.float64)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(gamma))
        module.bias.copy_(torch.from_numpy(beta))
    return module


def torch_forward_backward(module, x, dout):
    """Output and the gradients of sum(out * dout) with respect to x, weight and bias."""
    x_t = torch.from_numpy(x.copy()).requires_grad_()
    out = module(x_t)
    out.backward(torch.from_numpy(dout))
    return out, x_t.grad, module.weight.grad, module.bias.grad


@pytest.mark.parametrize("dims, shape", [(1, (16, 5)), (2, (4, 3, 5, 6))])
def test_batchnorm_matches_torch_over_training_then_eval(dims, shape):
    """Do forward, backward and running statistics match nn.BatchNorm over 5 train steps, then eval?"""
    forward = layers.batchnorm_forward if dims == 1 else layers.spatial_batchnorm_forward
    backward = layers.batchnorm_backward if dims == 1 else layers.spatial_batchnorm_backward
    c = shape[1]
    rng = np.random.default_rng(0)
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    module = torch_batchnorm(c, gamma, beta, dims)
    bn_param = {"mode": "train"}
    for step in range(6):
        if step == 5:
            bn_param["mode"] = "test"
            module.eval()
        x, dout = feature_maps(shape, seed=10 + step), rng.standard_normal(shape)
        out, cache = forward(x, gamma, beta, bn_param)
        dx, dgamma, dbeta = backward(dout, cache)
        module.zero_grad()
        out_t, dx_t, dgamma_t, dbeta_t = torch_forward_backward(module, x, dout)
        for ours, theirs in [(out, out_t), (dx, dx_t), (dgamma, dgamma_t), (dbeta, dbeta_t),
                             (bn_param["running_mean"], module.running_mean),
                             (bn_param["running_var"], module.running_var)]:
            assert max_diff(ours, theirs) < TORCH_TOL, f"step {step} ({bn_param['mode']} mode)"


@pytest.mark.parametrize("groups", [1, 2, 6])
@pytest.mark.parametrize("train", [True, False])
def test_groupnorm_matches_torch(groups, train):
    """Do forward and backward match nn.GroupNorm in float64, in both modes (which must not matter)?"""
    n, c, h, w = 3, 6, 4, 5
    rng = np.random.default_rng(groups)
    x, dout = feature_maps((n, c, h, w), seed=groups), rng.standard_normal((n, c, h, w))
    gamma, beta = rng.standard_normal((1, c, 1, 1)), rng.standard_normal((1, c, 1, 1))
    module = torch.nn.GroupNorm(groups, c, eps=1e-5, dtype=torch.float64).train(train)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(gamma.ravel()))
        module.bias.copy_(torch.from_numpy(beta.ravel()))

    out, cache = layers.spatial_groupnorm_forward(x, gamma, beta, groups, {"eps": 1e-5})
    dx, dgamma, dbeta = layers.spatial_groupnorm_backward(dout, cache)
    out_t, dx_t, dgamma_t, dbeta_t = torch_forward_backward(module, x, dout)

    assert dgamma.shape == dbeta.shape == (1, c, 1, 1)
    assert max_diff(out, out_t) < TORCH_TOL
    assert max_diff(dx, dx_t) < TORCH_TOL
    assert max_diff(dgamma.ravel(), dgamma_t) < TORCH_TOL
    assert max_diff(dbeta.ravel(), dbeta_t) < TORCH_TOL


def numeric_gradients(forward, x, gamma, beta, args, dout):
    """Centred-difference gradients of sum(forward(...) * dout) for x, gamma and beta."""
    inputs = {"x": x, "gamma": gamma, "beta": beta}

    def output_of(name):
        return lambda value: forward(*{**inputs, name: value}.values(), *args)[0]

    return [eval_numerical_gradient_array(output_of(name), inputs[name].copy(), dout) for name in inputs]


@pytest.mark.parametrize("mode", ["train", "test"])
def test_spatial_batchnorm_backward_matches_numeric_gradient(mode):
    """Does spatial_batchnorm_backward agree with centred differences in both modes?"""
    rng = np.random.default_rng(1)
    x, dout = feature_maps((2, 3, 4, 5), seed=2), rng.standard_normal((2, 3, 4, 5))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    # In test mode the statistics are constants: fixed running averages stand in for them.
    bn_param = {"mode": mode, "running_mean": rng.standard_normal(3), "running_var": rng.uniform(1, 2, 3)}
    _, cache = layers.spatial_batchnorm_forward(x, gamma, beta, dict(bn_param))
    analytic = layers.spatial_batchnorm_backward(dout, cache)
    numeric = numeric_gradients(layers.spatial_batchnorm_forward, x, gamma, beta, [bn_param], dout)
    for name, a, b in zip(("dx", "dgamma", "dbeta"), analytic, numeric):
        assert rel_error(a, b) < NUMERIC_TOL, name


def test_spatial_groupnorm_backward_matches_numeric_gradient():
    """Does spatial_groupnorm_backward agree with centred differences?"""
    rng = np.random.default_rng(3)
    x, dout = feature_maps((2, 4, 3, 4), seed=4), rng.standard_normal((2, 4, 3, 4))
    gamma, beta = rng.standard_normal((1, 4, 1, 1)), rng.standard_normal((1, 4, 1, 1))
    _, cache = layers.spatial_groupnorm_forward(x, gamma, beta, 2, {})
    analytic = layers.spatial_groupnorm_backward(dout, cache)
    numeric = numeric_gradients(layers.spatial_groupnorm_forward, x, gamma, beta, [2, {}], dout)
    for name, a, b in zip(("dx", "dgamma", "dbeta"), analytic, numeric):
        assert rel_error(a, b) < NUMERIC_TOL, name


def test_gradient_check_finds_a_wrong_gradient():
    """Would the numeric comparison notice a backward pass that forgets the mean's share of dx?"""
    rng = np.random.default_rng(5)
    x, dout = feature_maps((8, 3), seed=6), rng.standard_normal((8, 3))
    gamma, beta = np.ones(3), np.zeros(3)
    _, (_, _, _, inv_std) = layers.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    wrong_dx = dout * inv_std  # the test-mode formula, wrong in train mode
    dx_num = eval_numerical_gradient_array(
        lambda v: layers.batchnorm_forward(v, gamma, beta, {"mode": "train"})[0], x, dout)
    assert rel_error(wrong_dx, dx_num) > 1e-2


def test_numerical_gradient_of_a_known_function():
    """Is the centred difference of sum(x**3 * df) equal to 3 x**2 df, with x left unchanged?"""
    rng = np.random.default_rng(10)
    x, df = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    before = x.copy()
    grad = eval_numerical_gradient_array(lambda v: v ** 3, x, df)
    assert rel_error(grad, 3 * before ** 2 * df) < 1e-8
    np.testing.assert_array_equal(x, before)


def test_gradient_check_refuses_what_it_cannot_measure():
    """Do a float32 input and arrays of different shapes raise instead of giving a noisy answer?"""
    with pytest.raises(ValueError, match="float64"):
        eval_numerical_gradient_array(lambda v: v, np.ones(3, dtype=np.float32), np.ones(3))
    with pytest.raises(ValueError, match="shapes"):
        rel_error(np.ones(3), np.ones(4))


def test_running_statistics_are_created_and_updated_in_place():
    """Does train mode create missing running statistics and update the caller's arrays in place?"""
    x = feature_maps((4, 2, 3, 3), seed=7)
    bn_param = {"mode": "train"}
    layers.spatial_batchnorm_forward(x, np.ones(2), np.zeros(2), bn_param)
    running_mean = bn_param["running_mean"]
    assert running_mean.shape == bn_param["running_var"].shape == (2,)
    expected = 0.1 * x.mean(axis=(0, 2, 3))  # momentum 0.9 from zeros
    np.testing.assert_allclose(running_mean, expected, rtol=1e-12)
    layers.spatial_batchnorm_forward(x, np.ones(2), np.zeros(2), bn_param)
    assert bn_param["running_mean"] is running_mean


def test_test_mode_leaves_running_statistics_alone():
    """Does test mode read the running statistics without changing them?"""
    bn_param = {"mode": "test", "running_mean": np.array([1.0, 2.0]), "running_var": np.array([4.0, 9.0])}
    out, _ = layers.spatial_batchnorm_forward(
        np.full((1, 2, 2, 2), 3.0), np.ones(2), np.zeros(2), bn_param)
    np.testing.assert_allclose(out[0, :, 0, 0], [2 / np.sqrt(4 + 1e-5), 1 / np.sqrt(9 + 1e-5)])
    np.testing.assert_array_equal(bn_param["running_mean"], [1.0, 2.0])
    np.testing.assert_array_equal(bn_param["running_var"], [4.0, 9.0])


@pytest.mark.parametrize("call, message", [
    (lambda: layers.spatial_batchnorm_forward(np.zeros((2, 3, 4, 4)), np.ones(3), np.zeros(3), {"mode": "eval"}),
     "'train', 'test'"),
    (lambda: layers.batchnorm_forward(np.zeros((2, 3)), np.ones(3), np.zeros(3), {}), "Invalid batchnorm mode None"),
    (lambda: layers.batchnorm_forward(np.zeros((2, 3)), np.ones(4), np.zeros(3), {"mode": "train"}),
     r"gamma should have shape \(3,\)"),
    (lambda: layers.batchnorm_forward(np.zeros((1, 3)), np.ones(3), np.zeros(3), {"mode": "train"}),
     "at least 2 rows"),
    (lambda: layers.spatial_batchnorm_forward(np.zeros((2, 3)), np.ones(3), np.zeros(3), {"mode": "train"}),
     r"\(N, C, H, W\)"),
    (lambda: layers.spatial_groupnorm_forward(np.zeros((2, 6, 2, 2)), np.ones((1, 6, 1, 1)),
                                              np.zeros((1, 6, 1, 1)), 4, {}), "divides C = 6"),
    (lambda: layers.spatial_groupnorm_forward(np.zeros((2, 6, 2, 2)), np.ones(6), np.zeros(6), 2, {}),
     r"gamma should have shape \(1, 6, 1, 1\)"),
])
def test_bad_inputs_raise_clear_errors(call, message):
    """Do bad modes and shapes raise a ValueError that says what is allowed?"""
    with pytest.raises(ValueError, match=message):
        call()


STUDENT_FUNCTIONS = ["spatial_batchnorm_forward", "spatial_batchnorm_backward",
                     "spatial_groupnorm_forward", "spatial_groupnorm_backward"]


@pytest.mark.parametrize("name", STUDENT_FUNCTIONS)
def test_solution_has_no_python_loops(name):
    """Is the reference solution vectorized: no for, while or comprehension in its body?"""
    tree = ast.parse(textwrap.dedent(inspect.getsource(getattr(layers, name))))
    loops = (ast.For, ast.While, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
    assert not [node for node in ast.walk(tree) if isinstance(node, loops)]


@pytest.mark.slow
def test_spatial_layers_are_fast_on_a_realistic_batch():
    """Do forward and backward of both layers take well under a second on (64, 32, 24, 24)?"""
    x = feature_maps((64, 32, 24, 24), seed=8)
    dout = np.random.default_rng(9).standard_normal(x.shape)
    start = time.perf_counter()
    _, cache = layers.spatial_batchnorm_forward(x, np.ones(32), np.zeros(32), {"mode": "train"})
    layers.spatial_batchnorm_backward(dout, cache)
    _, cache = layers.spatial_groupnorm_forward(x, np.ones((1, 32, 1, 1)), np.zeros((1, 32, 1, 1)), 8, {})
    layers.spatial_groupnorm_backward(dout, cache)
    # About 0.2 s on one core; a Python loop over N, H or W takes many seconds.
    assert time.perf_counter() - start < 2.0
