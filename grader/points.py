"""
From the raw score, 1 / (2 * MSE) on the hidden test split, to points.

The default is I2DL's rule: a score of 100 or more (MSE at most 0.005 in unit
coordinates) earns full points, anything below earns none. With zero_at set,
points rise linearly instead, from 0 at zero_at to max_points at full_at:

    PointsRule()                          # 100 points at score >= 100, else 0
    PointsRule(max_points=10, zero_at=50) # 0 at <= 50, 5 at 75, 10 at >= 100
"""
import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class PointsRule:
    """
    - max_points: Points for a score of full_at or more
    - full_at: The raw score that earns max_points (I2DL: 100)
    - zero_at: None for all-or-nothing; else the raw score at or below which a
      submission earns 0, with a linear ramp up to full_at
    """
    max_points: float = 100.0
    full_at: float = 100.0
    zero_at: float | None = None

    def __post_init__(self):
        if not self.max_points > 0:
            raise ValueError(f"max_points must be positive, got {self.max_points}")
        if self.zero_at is not None and not self.zero_at < self.full_at:
            raise ValueError(f"zero_at ({self.zero_at}) must be below full_at ({self.full_at})")

    def points(self, raw_score):
        """Points for a raw score (None, for a submission that could not be scored, earns 0)."""
        if raw_score is None or math.isnan(raw_score):
            return 0.0
        if raw_score >= self.full_at:
            return float(self.max_points)
        if self.zero_at is None or raw_score <= self.zero_at:
            return 0.0
        return round(self.max_points * (raw_score - self.zero_at) / (self.full_at - self.zero_at), 2)

    def describe(self):
        """One sentence for the result's output."""
        if self.zero_at is None:
            return f"{self.max_points:g} points for a score of {self.full_at:g} or more, 0 below"
        return (f"0 points at a score of {self.zero_at:g} or less, rising linearly to "
                f"{self.max_points:g} points at {self.full_at:g} or more")

    def as_dict(self):
        return asdict(self)
