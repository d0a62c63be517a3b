"""
Normalization layers in numpy, each a forward/backward pair:

    out, cache = layer_forward(x, ...)
    dx, dgamma, dbeta = layer_backward(dout, cache)

batchnorm_forward / batchnorm_backward normalize an (N, D) matrix per column and
are given. On top of them you write spatial batch normalization, which
normalizes (N, C, H, W) feature maps per channel, and, as an extra challenge,
spatial group normalization, which normalizes each sample's groups of channels.

Check your code with the notebook 2_spatial_batchnorm.ipynb, which runs
exercise_code/checks/spatial_batchnorm_checks.py.
"""
import numpy as np

BN_MODES = ("train", "test")


def _check_shape(name, array, shape):
    """Raise a ValueError naming `name` unless array has exactly this shape."""
    if np.shape(array) != tuple(shape):
        raise ValueError(f"{name} should have shape {tuple(shape)}, got {np.shape(array)}")


def _check_feature_maps(name, array):
    """Raise a ValueError naming `name` unless array has four axes (N, C, H, W)."""
    if np.ndim(array) != 4:
        raise ValueError(f"{name} should have shape (N, C, H, W), got {np.shape(array)}")


def batchnorm_forward(x, gamma, beta, bn_param):
    """
    Forward pass for batch normalization.

    In train mode we normalize with the minibatch mean and variance and update
    the running averages in bn_param:

        running_mean = momentum * running_mean + (1 - momentum) * sample_mean
        running_var  = momentum * running_var  + (1 - momentum) * sample_var * N / (N - 1)

    The running variance gets the unbiased estimate of the variance, as
    torch.nn.BatchNorm does; with our momentum m it matches PyTorch's momentum 1 - m.
    In test mode we normalize with the running averages instead.

    Inputs:
    - x: Data of shape (N, D)
    - gamma, beta: Scale and shift parameters, each of shape (D,)
    - bn_param: Dictionary with keys
      - mode: 'train' or 'test'; required
      - eps, momentum: floats (defaults 1e-5, 0.9)
      - running_mean, running_var: arrays of shape (D,), updated in place in
        train mode; created as zeros and ones if missing

    Returns a tuple of:
    - out: Normalized data of shape (N, D)
    - cache: (mode, x_hat, gamma, inv_std) for batchnorm_backward, where x_hat
      (N, D) is the normalized x and inv_std (D,) is 1 / sqrt(variance + eps)
    """
    mode = bn_param.get("mode")
    if mode not in BN_MODES:
        raise ValueError(f"Invalid batchnorm mode {mode!r}; expected one of {BN_MODES}")
    if np.ndim(x) != 2:
        raise ValueError(f"x should have shape (N, D), got {np.shape(x)}")
    n, d = x.shape
    _check_shape("gamma", gamma, (d,))
    _check_shape("beta", beta, (d,))
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    running_mean = bn_param.setdefault("running_mean", np.zeros(d, dtype=x.dtype))  # (D,)
    running_var = bn_param.setdefault("running_var", np.ones(d, dtype=x.dtype))     # (D,)

    if mode == "train":
        if n < 2:
            # One value per column has no variance to normalize by (PyTorch refuses too).
            raise ValueError(f"batchnorm in train mode needs at least 2 rows, got x of shape {x.shape}")
        mean, var = x.mean(axis=0), x.var(axis=0)                  # (D,), (D,)
        running_mean *= momentum
        running_mean += (1 - momentum) * mean
        running_var *= momentum
        running_var += (1 - momentum) * var * n / (n - 1)
    else:
        mean, var = running_mean, running_var                      # (D,), (D,)
    inv_std = 1.0 / np.sqrt(var + eps)                             # (D,)
    x_hat = (x - mean) * inv_std                                   # (N, D)
    out = gamma * x_hat + beta                                     # (N, D)
    return out, (mode, x_hat, gamma, inv_std)


def batchnorm_backward(dout, cache):
    """
    Backward pass for batch normalization.

    In train mode the mean and variance are functions of x, so every output
    depends on every row of its column; in test mode they are constants.

    Inputs:
    - dout: Upstream derivatives, of shape (N, D)
    - cache: The cache from batchnorm_forward

    Returns a tuple of:
    - dx: Gradient with respect to x, of shape (N, D)
    - dgamma: Gradient with respect to gamma, of shape (D,)
    - dbeta: Gradient with respect to beta, of shape (D,)
    """
    mode, x_hat, gamma, inv_std = cache
    _check_shape("dout", dout, x_hat.shape)
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)                                       # (D,)
    dgamma = (dout * x_hat).sum(axis=0)                            # (D,)
    dx_hat = dout * gamma                                          # (N, D)
    if mode == "test":
        return dx_hat * inv_std, dgamma, dbeta
    # x_hat = (x - mean) * inv_std: the two sums are what flows back through
    # the mean and through the variance.
    dx = inv_std / n * (n * dx_hat                                 # (N, D)
                        - dx_hat.sum(axis=0)
                        - x_hat * (dx_hat * x_hat).sum(axis=0))
    return dx, dgamma, dbeta


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """
    Forward pass for spatial batch normalization.

    Each channel is normalized with one mean and one variance, taken over the
    batch and over all positions: axes N, H and W.

    Inputs:
    - x: Data of shape (N, C, H, W)
    - gamma, beta: Scale and shift parameters, each of shape (C,)
    - bn_param: Dictionary with keys as for batchnorm_forward; running_mean and
      running_var have shape (C,)

    Returns a tuple of:
    - out: Output data of shape (N, C, H, W)
    - cache: What spatial_batchnorm_backward needs, e.g. the cache of batchnorm_forward
    """
    _check_feature_maps("x", x)
    out, cache = None, None
    # TODO: Implement spatial batch normalization with batchnorm_forward, which
    # normalizes each column of an (rows, D) matrix. Reshape x so that each
    # channel becomes one column (mind which axes you move), call
    # batchnorm_forward, and shape the result back to (N, C, H, W). Store the
    # output in `out` and whatever spatial_batchnorm_backward needs in `cache`.
    # No Python loops: transpose and reshape do it all.
    # YOUR CODE HERE
    raise NotImplementedError()
    return out, cache


def spatial_batchnorm_backward(dout, cache):
    """
    Backward pass for spatial batch normalization.

    Inputs:
    - dout: Upstream derivatives, of shape (N, C, H, W)
    - cache: The cache from spatial_batchnorm_forward

    Returns a tuple of:
    - dx: Gradient with respect to x, of shape (N, C, H, W)
    - dgamma: Gradient with respect to gamma, of shape (C,)
    - dbeta: Gradient with respect to beta, of shape (C,)
    """
    _check_feature_maps("dout", dout)
    dx, dgamma, dbeta = None, None, None
    # TODO: Implement the backward pass with batchnorm_backward: reshape dout
    # exactly as you reshaped x in the forward pass, and undo that reshape on
    # the gradient with respect to x. Store the results in dx, dgamma, dbeta.
    # YOUR CODE HERE
    raise NotImplementedError()
    return dx, dgamma, dbeta


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """
    Forward pass for spatial group normalization.

    The C channels are split into G groups of C // G consecutive channels. Each
    sample's group is normalized with its own mean and variance, taken over the
    group's channels and all positions, then every channel is scaled and
    shifted with its own gamma and beta. Train and test mode are the same.

    Inputs:
    - x: Data of shape (N, C, H, W)
    - gamma, beta: Scale and shift parameters, each of shape (1, C, 1, 1)
    - G: Number of groups; must divide C
    - gn_param: Dictionary with the optional key eps (default 1e-5)

    Returns a tuple of:
    - out: Output data of shape (N, C, H, W)
    - cache: What spatial_groupnorm_backward needs, e.g. the normalized x, gamma,
      G and the cache of batchnorm_forward
    """
    _check_feature_maps("x", x)
    n, c, h, w = x.shape
    if not (isinstance(G, (int, np.integer)) and G > 0 and c % G == 0):
        raise ValueError(f"G should be a positive integer that divides C = {c}, got {G!r}")
    _check_shape("gamma", gamma, (1, c, 1, 1))
    _check_shape("beta", beta, (1, c, 1, 1))
    eps = gn_param.get("eps", 1e-5)
    out, cache = None, None
    # TODO: Implement spatial group normalization. One way reuses
    # batchnorm_forward: reshape x so that each column holds one sample's group
    # (a matrix of shape (C // G * H * W, N * G)), normalize it with
    # batchnorm_forward in train mode with gamma = 1 and beta = 0 (and a
    # throwaway bn_param with this eps), shape the result back to
    # (N, C, H, W), and only then apply this layer's gamma and beta per
    # channel. Store the output in `out` and what the backward pass needs in
    # `cache`.
    # YOUR CODE HERE
    raise NotImplementedError()
    return out, cache


def spatial_groupnorm_backward(dout, cache):
    """
    Backward pass for spatial group normalization.

    Inputs:
    - dout: Upstream derivatives, of shape (N, C, H, W)
    - cache: The cache from spatial_groupnorm_forward

    Returns a tuple of:
    - dx: Gradient with respect to x, of shape (N, C, H, W)
    - dgamma: Gradient with respect to gamma, of shape (1, C, 1, 1)
    - dbeta: Gradient with respect to beta, of shape (1, C, 1, 1)
    """
    _check_feature_maps("dout", dout)
    dx, dgamma, dbeta = None, None, None
    # TODO: Compute dgamma and dbeta (sums over every axis but C, keeping the
    # (1, C, 1, 1) shape), then the gradient with respect to the normalized x,
    # and send it back through the normalization of your forward pass (with
    # batchnorm_backward if you used batchnorm_forward there). Store the results
    # in dx, dgamma, dbeta.
    # YOUR CODE HERE
    raise NotImplementedError()
    return dx, dgamma, dbeta
