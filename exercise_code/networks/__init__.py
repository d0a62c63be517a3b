"""Keypoint models."""
from .dummy_model import DummyKeypointModel

__all__ = ["DummyKeypointModel"]
