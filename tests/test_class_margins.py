"""Class-dependent scores keep every class's own order and decisions (issue: ties from value - t)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfmia.attacks import MetricAttack
from tfmia.data import AttackInputs
from tfmia.thresholds import threshold_margins


def _logit_inputs(rows, labels):
    return AttackInputs(logits=np.array(rows, dtype=np.float64), labels=np.array(labels))


def test_confident_records_keep_their_order_under_class_dependent_thresholds():
    """The minimal case: losses of 2e-22 .. 3e-20 against thresholds fitted on moderate values."""
    members = _logit_inputs([[50, 0], [49, 0], [48, 0]], [0, 0, 0])
    non_members = _logit_inputs([[47, 0], [46, 0], [45, 0]], [0, 0, 0])
    # Shadow records of moderate confidence put class 0's loss threshold near -0.1.
    shadow_in = _logit_inputs([[3, 0], [2.5, 0], [2, 0], [0, 3]], [0, 0, 0, 1])
    shadow_out = _logit_inputs([[1, 0], [0.5, 0], [0, 0.2], [0, 1]], [0, 0, 0, 1])
    attack = MetricAttack("loss", class_dependent=True).fit(shadow_in, shadow_out)
    raw = MetricAttack("loss", class_dependent=False).fit(shadow_in, shadow_out)

    # What value - t would give: one float for all six records.
    values = np.concatenate([attack.values(members), attack.values(non_members)])
    assert len(np.unique(values - attack.thresholds[0])) == 1
    assert len(np.unique(values)) == 6

    result = attack.evaluate(members, non_members)
    assert result.auc == 1.0
    assert raw.evaluate(members, non_members).auc == 1.0
    # Every record is above the threshold: all are called members.
    assert result.decisions.all()


def test_margins_rank_like_the_exact_differences_across_classes():
    """Across classes, margins order records like value - t computed exactly (here: distinct binades apart)."""
    thresholds = np.array([-0.5, -4.0, 0.25])
    values = np.array([-0.25, -1.0, -2.0, -8.0, 0.5, 1.0, 0.125])
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    margins = threshold_margins(values, labels, thresholds)
    np.testing.assert_array_equal(margins >= 0, values >= thresholds[labels])
    # Within each class, the order of the values.
    for c in range(3):
        own = labels == c
        np.testing.assert_array_equal(np.argsort(margins[own]), np.argsort(values[own]))
    # A value equal to its threshold has margin exactly 0.
    assert threshold_margins([-4.0], [1], thresholds)[0] == 0.0


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


def _assert_order_kept(values, labels, margins):
    """Within each class: margins strictly increase with the values, equal values get equal margins."""
    for c in np.unique(labels):
        v, m = values[labels == c], margins[labels == c]
        order = np.argsort(v, kind="stable")
        dv, dm = np.diff(v[order]), np.diff(m[order])
        assert np.all(dm[dv > 0] > 0)
        assert np.all(dm[dv == 0] == 0)


@settings(max_examples=200, deadline=None)
@given(
    magnitudes=hnp.arrays(np.float64, st.integers(1, 40), elements=st.floats(0, None, allow_infinity=False)),
    threshold_magnitudes=hnp.arrays(np.float64, st.integers(1, 4), elements=st.floats(0, None, allow_infinity=False)),
    negative=st.booleans(),
    data=st.data(),
)
def test_same_sign_margins_are_exact(magnitudes, threshold_magnitudes, negative, data):
    """Values and thresholds of one sign (every MetricAttack metric): every step is kept, none saturates."""
    sign = -1.0 if negative else 1.0
    values, thresholds = sign * magnitudes, sign * threshold_magnitudes
    labels = data.draw(hnp.arrays(np.int64, values.shape, elements=st.integers(0, thresholds.size - 1)))
    margins = threshold_margins(values, labels, thresholds)
    assert np.all(np.isfinite(margins))
    np.testing.assert_array_equal(margins >= 0, values >= thresholds[labels])
    _assert_order_kept(values, labels, margins)


@settings(max_examples=200, deadline=None)
@given(
    values=hnp.arrays(np.float64, st.integers(1, 40), elements=finite),
    thresholds=hnp.arrays(np.float64, st.integers(1, 4), elements=finite),
    data=st.data(),
)
def test_margins_keep_decisions_always_and_order_until_they_saturate(values, thresholds, data):
    labels = data.draw(hnp.arrays(np.int64, values.shape, elements=st.integers(0, thresholds.size - 1)))
    margins = threshold_margins(values, labels, thresholds)
    assert not np.isnan(margins).any()
    np.testing.assert_array_equal(margins >= 0, values >= thresholds[labels])
    keep = np.isfinite(margins)
    _assert_order_kept(values[keep], labels[keep], margins[keep])


def test_opposite_signs_saturate_only_beyond_the_float64_ordinal_range():
    """Below 1.0, -2.0 is 2**62 + (2**62 - 2**52) = 2**63 - 2**52 steps away: the position of -inf.

    The step just above keeps its own margin; values further away collapse onto -inf.
    """
    margins = threshold_margins([-1.9999999999999998, -2.0, -3.0], [0, 0, 0], [1.0])
    assert margins.tolist() == [-np.finfo(np.float64).max, -np.inf, -np.inf]


def test_margins_bad_input():
    with pytest.raises(ValueError, match="values must not contain NaN"):
        threshold_margins([np.nan], [0], [0.0])
    with pytest.raises(ValueError, match="thresholds must not contain NaN"):
        threshold_margins([0.0], [0], [np.nan])
    with pytest.raises(ValueError, match="labels"):
        threshold_margins([0.0], [1], [0.0])


def test_class_dependent_scores_on_float32_softmax_outputs_keep_the_logit_order():
    """From logits, confident records that a float32 softmax would tie at p = 1 stay ranked."""
    rng = np.random.default_rng(0)
    margin = rng.uniform(20, 60, size=200)
    logits = np.stack([margin, np.zeros_like(margin)], axis=1)
    labels = np.zeros(200, int)
    members, non_members = _logit_inputs(logits[:100], labels[:100]), _logit_inputs(logits[100:], labels[100:])
    shadow_in = _logit_inputs([[2, 0], [1.5, 0], [0, 2]], [0, 0, 1])
    shadow_out = _logit_inputs([[0.5, 0], [0, 0.5], [0, 1]], [0, 0, 1])
    attack = MetricAttack("loss").fit(shadow_in, shadow_out)
    scores = np.concatenate([attack.score(members), attack.score(non_members)])
    exact_loss = np.log1p(np.exp(-margin))  # -log softmax(z)_0 for two classes, without rounding 1 + e^-margin
    assert len(np.unique(exact_loss)) == 200
    # Scores rank exactly like minus the loss (distinct for every record).
    np.testing.assert_array_equal(np.argsort(scores), np.argsort(-exact_loss))
