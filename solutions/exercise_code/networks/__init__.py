"""Keypoint models."""
from .dummy_model import DummyKeypointModel
from .keypoint_nn import KeypointModel

__all__ = ["DummyKeypointModel", "KeypointModel"]
