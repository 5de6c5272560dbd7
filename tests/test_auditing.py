"""One-run privacy auditing: the epsilon lower bound against direct binomial tails, canaries, DP-SGD."""

import math

import numpy as np
import pytest
from _models import digits, digits_mlp
from scipy.stats import binom

from tfmia.auditing import correct_guesses, draw_canaries, one_run_epsilon, one_run_p_value
from tfmia.data import AttackInputs
from tfmia.defenses import DPSGD, defended
from tfmia.training import FitConfig, build_model, fit_model


def direct_p_value(m, r, v, eps, delta):
    """The theorem's p-value from binomial pmf sums, term by term."""
    q = math.exp(eps) / (1 + math.exp(eps))
    beta = sum(binom.pmf(k, r, q) for k in range(v, r + 1))
    alpha = max([sum(binom.pmf(k, r, q) for k in range(v - i, v)) / i for i in range(1, v + 1)], default=0.0)
    return min(1.0, beta + 2 * m * delta * alpha)


def guesses_with(m, k_pos, k_neg, v):
    """Scores 0..m-1 and an inclusion mask under which the k_pos top / k_neg bottom guesses get v right."""
    scores = np.arange(m, dtype=float)
    included = np.zeros(m, bool)
    included[k_neg:m - k_pos] = np.arange(m - k_pos - k_neg) % 2 == 0  # abstentions: irrelevant
    right_in = min(v, k_pos)
    included[m - k_pos:m - k_pos + right_in] = True         # correct IN guesses
    wrong_out = k_neg - (v - right_in)
    included[:wrong_out] = True                              # the other OUT guesses are wrong
    return scores, included


@pytest.mark.parametrize("m, r, v, delta", [
    (100, 40, 30, 0.0), (100, 40, 30, 1e-3), (50, 50, 50, 1e-5), (50, 50, 50, 0.0), (1000, 200, 120, 1e-5),
    (1000, 200, 120, 5e-4), (20, 10, 0, 1e-3), (30, 12, 7, 1e-2), (30, 12, 7, 0.0),
])
def test_p_value_equals_the_direct_binomial_tails(m, r, v, delta):
    for eps in (0.0, 0.3, 1.0, 2.5, 6.0):
        assert one_run_p_value(eps, r=r, v=v, m=m, delta=delta) == pytest.approx(direct_p_value(m, r, v, eps, delta),
                                                                                 rel=1e-10, abs=1e-300)


@pytest.mark.parametrize("m, k_pos, k_neg, v, delta, level", [
    (100, 20, 20, 35, 0.0, 0.05), (100, 20, 20, 35, 1e-3, 0.05), (1000, 100, 0, 90, 1e-5, 0.05),
    (1000, 50, 150, 170, 1e-4, 0.01), (60, 30, 30, 55, 0.0, 0.1),
])
def test_epsilon_is_where_the_direct_p_value_crosses_the_level(m, k_pos, k_neg, v, delta, level):
    scores, included = guesses_with(m, k_pos, k_neg, v)
    assert correct_guesses(scores, included, k_pos, k_neg) == (k_pos + k_neg, v)
    eps = one_run_epsilon(scores, included, k_pos, k_neg, delta=delta, p_value=level)
    assert eps > 0
    assert one_run_p_value(eps, r=k_pos + k_neg, v=v, m=m, delta=delta) < level  # rejected, to the last bit
    # The direct sums round differently from scipy's tails (by ulps of p): compare 1e-7 either side of eps,
    # where p differs from the level by far more.
    assert direct_p_value(m, k_pos + k_neg, v, eps * (1 - 1e-7), delta) < level
    assert direct_p_value(m, k_pos + k_neg, v, eps * (1 + 1e-7), delta) >= level


def test_hand_case_all_guesses_right():
    # m = r = v = 10, delta = 0: p(eps) = q^10 < 0.05 iff q < 0.05^(1/10), so eps = logit(0.05^(1/10)).
    scores, included = np.arange(10.0), np.arange(10) >= 5
    t = 0.05 ** (1 / 10)
    assert one_run_epsilon(scores, included, 5, 5) == pytest.approx(math.log(t / (1 - t)), rel=1e-12)
    assert one_run_epsilon(scores, ~included, 5, 5) == 0.0  # every guess wrong


def test_more_correct_guesses_never_lower_the_bound():
    for delta in (0.0, 1e-4):
        bounds = [one_run_epsilon(*guesses_with(500, 60, 60, v), 60, 60, delta=delta) for v in range(0, 121, 4)]
        assert all(b <= c for b, c in zip(bounds, bounds[1:]))
        assert bounds[0] == 0.0 and bounds[-1] > 3.0
    assert one_run_epsilon(*guesses_with(500, 60, 60, 100), 60, 60, delta=1e-4) < \
        one_run_epsilon(*guesses_with(500, 60, 60, 100), 60, 60)  # delta > 0 can only weaken the bound


def test_random_guesses_give_zero_at_the_promised_rate():
    rng = np.random.default_rng(0)
    # At most half right: never significant.
    assert one_run_epsilon(*guesses_with(200, 50, 50, 50), 50, 50) == 0.0
    # Scores independent of inclusion (an epsilon = 0 mechanism): a positive bound is a false rejection,
    # which must happen in at most p_value of the runs.
    trials = 600
    positive = sum(one_run_epsilon(rng.normal(size=200), rng.random(200) < 0.5, 30, 30) > 0 for _ in range(trials))
    assert positive <= binom.ppf(1 - 1e-6, trials, 0.05)


def test_ties_are_broken_by_position():
    scores = np.zeros(10)
    included = np.arange(10) >= 5
    # Equal scores: the earlier canary ranks lower, so IN = the last 3, OUT = the first 3, all right.
    assert correct_guesses(scores, included, 3, 3) == (6, 6)
    assert correct_guesses(scores, ~included, 3, 3) == (6, 0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(k_pos=60, k_neg=50), r"k_pos \+ k_neg = 110 guesses exceed the m = 100 canaries"),
    (dict(k_pos=-1), "k_pos must be >= 0"),
    (dict(k_neg=-2), "k_neg must be >= 0"),
    (dict(k_pos=2.5), "k_pos must be an integer"),
    (dict(delta=-0.1), r"delta must be in \[0, 1\)"),
    (dict(delta=1.0), r"delta must be in \[0, 1\)"),
    (dict(delta=0.01), r"delta must be at most 1 / \(2 m\)"),
    (dict(p_value=0.0), r"p_value must be in \(0, 1\)"),
    (dict(p_value=1.0), r"p_value must be in \(0, 1\)"),
    (dict(included=np.ones(99, bool)), "included has 99 entries, expected 100"),
    (dict(included=np.full(100, 0.5)), "included must contain only 0/1"),
    (dict(scores=np.full(100, np.nan)), "scores must be finite"),
])
def test_bad_input_names_the_argument(kwargs, match):
    args = dict(scores=np.arange(100.0), included=np.arange(100) % 2 == 0, k_pos=10, k_neg=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        one_run_epsilon(args.pop("scores"), args.pop("included"), args.pop("k_pos"), args.pop("k_neg"), **args)


def test_draw_canaries():
    x, y = digits()
    a = draw_canaries(x, y, 200, seed=4)
    b = draw_canaries(x, y, 200, seed=4)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.included, b.included)
    assert np.unique(a.indices).size == 200
    np.testing.assert_array_equal(a.x, x[a.indices])
    np.testing.assert_array_equal(a.y, y[a.indices])
    assert abs(a.included.mean() - 0.5) < 4 * math.sqrt(0.25 / 200)
    wrong = draw_canaries(x, y, 200, seed=4, mislabel=True)
    assert np.all(wrong.y != y[wrong.indices]) and set(np.unique(wrong.y)) == set(range(10))
    xt, yt = a.training_set(x, y)
    assert len(yt) == len(y) - 200 + a.included.sum()
    np.testing.assert_array_equal(xt[-a.included.sum():], a.x[a.included])
    others = np.setdiff1d(np.arange(len(y)), a.indices)
    np.testing.assert_array_equal(xt[:others.size], x[others])
    with pytest.raises(ValueError, match="m = 2000 canaries exceed the 1797 records"):
        draw_canaries(x, y, 2000, seed=0)
    with pytest.raises(ValueError, match="num_classes = 5 but y holds label 9"):
        draw_canaries(x, y, 10, seed=0, num_classes=5)
    for seed in (None, -1, 1.5):
        with pytest.raises(ValueError, match="seed"):
            draw_canaries(x, y, 10, seed=seed)
    with pytest.raises(ValueError, match="source data"):
        a.training_set(x[:100], y[:100])


def _audit(model_fn, seed):
    """Train once on 300 digits + the included ones of 200 mislabelled canaries; bound epsilon from the loss."""
    x, y = digits()
    pool = np.random.default_rng(seed).permutation(len(y))[:500]
    canaries = draw_canaries(x[pool], y[pool], 200, seed=seed, mislabel=True)
    xt, yt = canaries.training_set(x[pool], y[pool])
    fit = FitConfig(epochs=20, batch_size=50)
    model = build_model(model_fn, seed=seed)
    fit_model(model, xt, yt, fit)
    scores = -AttackInputs.from_model(model, canaries.x, canaries.y).signals["loss"]
    eps = one_run_epsilon(scores, canaries.included, 20, 20, delta=1e-5)
    return eps, len(yt), fit


def test_dp_sgd_bound_stays_below_its_accounting_epsilon_and_an_undefended_model_leaks():
    eps_undefended, _, _ = _audit(digits_mlp, seed=1)
    assert eps_undefended > 1.0  # memorised mislabelled canaries: the audit has power
    defense = DPSGD(l2_norm_clip=1.0, noise_multiplier=3.0, seed=0)
    eps_private, n_train, fit = _audit(defended(digits_mlp, defense), seed=1)
    eps_accounting = defense.epsilon(n_train, batch_size=fit.batch_size, epochs=fit.epochs, delta=1e-5)
    assert eps_private <= eps_accounting
