"""Models the benchmarks measure with."""
from torch import nn


def typical_student_cnn():
    """Four blocks Conv3x3 -> ReLU -> MaxPool with 16-32-64-128 channels, then 4608 -> 256 -> 30 (1.28M parameters)."""
    layers, channels = [], [1, 16, 32, 64, 128]
    for c_in, c_out in zip(channels, channels[1:]):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 6 * 6, 256), nn.ReLU(), nn.Linear(256, 30))


def baseline_a():
    """
    Baseline A: four blocks Conv3x3 -> MaxPool -> ReLU (1-32-64-128-256), kaiming-normal
    init, then Linear(9216, 256) -> ReLU -> Linear(256, 30) -> Tanh. About 2.75M parameters.
    """
    layers, channels = [], [1, 32, 64, 128, 256]
    for c_in, c_out in zip(channels, channels[1:]):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.MaxPool2d(2), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(256 * 6 * 6, 256), nn.ReLU(), nn.Linear(256, 30), nn.Tanh())
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight)
    return model


def baseline_b():
    """
    Baseline B: four blocks Conv3x3 -> ReLU -> MaxPool (1-16-32-64-128), Dropout2d(0.5),
    then Linear(4608, 256) -> ReLU -> Linear(256, 30); kaiming-uniform init, zero biases.
    """
    model = typical_student_cnn()
    model.insert(12, nn.Dropout2d(0.5))  # after the last pooling, before Flatten
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return model
