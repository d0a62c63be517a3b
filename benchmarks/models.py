"""Models the benchmarks measure with."""
from torch import nn


def typical_student_cnn():
    """Four blocks Conv3x3 -> ReLU -> MaxPool with 16-32-64-128 channels, then 4608 -> 256 -> 30 (1.28M parameters)."""
    layers, channels = [], [1, 16, 32, 64, 128]
    for c_in, c_out in zip(channels, channels[1:]):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 6 * 6, 256), nn.ReLU(), nn.Linear(256, 30))
