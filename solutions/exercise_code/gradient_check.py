"""
Numerical gradients to check backward passes against, as in CS231n.

    dx_num = eval_numerical_gradient_array(lambda x: layer_forward(x, ...)[0], x, dout)
    print(rel_error(dx_num, dx))   # about 1e-8 or less when dx is right
"""
import numpy as np


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """
    Centred-difference gradient of sum(f(x) * df) with respect to x.

    Each entry of x is nudged in place and restored afterwards.

    Inputs:
    - f: Function that maps an array like x to an array, e.g. lambda x: layer_forward(x, ...)[0]
    - x: Float array of any shape; f is evaluated at x
    - df: Upstream derivatives, of the shape of f(x)
    - h: Step size

    Returns:
    - grad: Array of the shape of x, the derivative of sum(f(x) * df)
    """
    if x.dtype != np.float64:
        # A float32 array loses most of h's digits: the difference would be noise.
        raise ValueError(f"x should be float64 for a numerical gradient, got {x.dtype}")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        pos = f(x).copy()  # copy: f may return a view of a buffer it reuses
        x[i] = old - h
        neg = f(x).copy()
        x[i] = old
        grad[i] = np.sum((pos - neg) * df) / (2 * h)
    return grad


def rel_error(x, y):
    """
    The largest relative error between two arrays of the same shape.

    Returns:
    - Float, max |x - y| / max(1e-8, |x| + |y|) over all entries; 0 for equal arrays
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"Cannot compare arrays of shapes {x.shape} and {y.shape}")
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))
