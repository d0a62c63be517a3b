"""From raw score to points: I2DL's all-or-nothing rule by default, a linear ramp when asked."""
import math

import pytest

from grader.points import PointsRule


@pytest.mark.parametrize("raw, points", [(None, 0), (math.nan, 0), (0.5, 0), (99.99, 0), (100, 100),
                                         (250, 100), (math.inf, 100)])
def test_default_is_all_or_nothing_at_100(raw, points):
    """Does the default give full points from a score of 100 on, and nothing below (as in I2DL)?"""
    assert PointsRule().points(raw) == points


@pytest.mark.parametrize("raw, points", [(40, 0), (50, 0), (75, 5), (99, 9.8), (100, 10), (400, 10)])
def test_linear_ramp(raw, points):
    """With zero_at, do points rise linearly from zero_at to full_at?"""
    assert PointsRule(max_points=10, zero_at=50).points(raw) == points


@pytest.mark.parametrize("kwargs, words", [({"max_points": 0}, "max_points must be positive"),
                                           ({"zero_at": 100}, "must be below full_at")])
def test_bad_rules_are_refused(kwargs, words):
    """Is a rule that cannot work refused with a reason?"""
    with pytest.raises(ValueError, match=words):
        PointsRule(**kwargs)


def test_description_says_the_rule():
    """Does the description a student reads state the thresholds?"""
    assert PointsRule().describe() == "100 points for a score of 100 or more, 0 below"
    assert "rising linearly to 10 points at 100" in PointsRule(max_points=10, zero_at=50).describe()
