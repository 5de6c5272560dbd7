"""LiRA: hand-computed Gaussian examples against scipy.stats.norm, reference models, bad input."""

import concurrent.futures as cf

import numpy as np
import pytest
from scipy.stats import norm

from _models import dense_magnitudes, digits_logits_mlp, float32_sum_atol
from _separation import assert_does_not_separate, assert_separates
from scipy.special import logsumexp
from seqmia_helpers import digits_parts
from tfmia.attacks import LiRA
from tfmia.attacks.lira import offline_scores, online_scores, pooled_std
from tfmia.training import FitConfig, build_model, fit_model, load_weights

# 4 reference models x 3 records; keep[j, i]: model j trained on record i.
STATS = np.array([[1.0, 4.0, -1.0],
                  [2.0, 6.0, 0.0],
                  [3.0, 5.0, 2.0],
                  [6.0, 3.0, 1.0]])
KEEP = np.array([[False, True, True],
                 [False, True, False],
                 [True, False, False],
                 [True, False, True]])
OBSERVED = np.array([2.5, 5.0, 0.5])


def test_offline_is_one_sided_gaussian_cdf_over_out_models():
    # Record 0: OUT models 0, 1 -> {1, 2}; record 1: OUT 2, 3 -> {5, 3}; record 2: OUT 1, 2 -> {0, 2}.
    expected = [norm.cdf(2.5, loc=1.5, scale=0.5), norm.cdf(5.0, loc=4.0, scale=1.0), norm.cdf(0.5, loc=1.0, scale=1.0)]
    np.testing.assert_allclose(np.exp(offline_scores(OBSERVED, STATS, KEEP)), expected, rtol=1e-12)


def test_online_is_the_log_likelihood_ratio():
    # IN: record 0 {3, 6}, record 1 {4, 6}, record 2 {-1, 1}.
    expected = [norm.logpdf(2.5, 4.5, 1.5) - norm.logpdf(2.5, 1.5, 0.5),
                norm.logpdf(5.0, 5.0, 1.0) - norm.logpdf(5.0, 4.0, 1.0),
                norm.logpdf(0.5, 0.0, 1.0) - norm.logpdf(0.5, 1.0, 1.0)]
    np.testing.assert_allclose(online_scores(OBSERVED, STATS, KEEP), expected, rtol=1e-12)


def test_global_variance():
    # OUT deviations from each record's OUT mean: (-.5, .5), (1, -1), (-1, 1) -> variance 4.5 / 6.
    sigma = pooled_std(STATS, [~KEEP])
    assert sigma == pytest.approx(np.sqrt(4.5 / 6))
    expected = norm.logcdf(OBSERVED, loc=[1.5, 4.0, 1.0], scale=sigma)
    np.testing.assert_allclose(offline_scores(OBSERVED, STATS, KEEP, std=sigma), expected, rtol=1e-12)
    # With one shared sigma the ranking does not depend on its value.
    a = online_scores(OBSERVED, STATS, KEEP, std=sigma)
    b = online_scores(OBSERVED, STATS, KEEP, std=10 * sigma)
    np.testing.assert_array_equal(np.argsort(a), np.argsort(b))


def test_too_few_reference_models_is_a_clear_error():
    keep = KEEP.copy()
    keep[1, 0] = True  # record 0 now has a single OUT model
    with pytest.raises(ValueError, match="record 0 has 1 reference model"):
        offline_scores(OBSERVED, STATS, keep)
    offline_scores(OBSERVED, STATS, keep, std=1.0)  # fine with a global variance
    with pytest.raises(ValueError, match="keep must be a boolean array"):
        offline_scores(OBSERVED, STATS, KEEP[:2])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A target and 8 reference models memorising 30 randomly labelled digits each.

    Offline, each record's Gaussian comes from its 4 OUT models; with 2 (4 models) the per-record
    spread is too noisy for a reliable separation test on 30 + 30 records."""
    parts = digits_parts(30, seed=2, random_labels=True)
    fit = FitConfig(epochs=20, batch_size=16)
    target = build_model(digits_logits_mlp, seed=40)
    fit_model(target, *parts["target_train"], fit)
    pool = (np.concatenate([parts["target_train"][0], parts["target_test"][0]]),
            np.concatenate([parts["target_train"][1], parts["target_test"][1]]))
    run_dir = tmp_path_factory.mktemp("lira")
    with cf.ThreadPoolExecutor(max_workers=1) as executor:
        lira = LiRA(digits_logits_mlp, fit=fit, n_models=8, executor=executor, run_dir=run_dir, progress=False)
        lira.fit(*pool)
    return {"lira": lira, "target": target, "parts": parts, "pool": pool, "run_dir": run_dir, "fit": fit}


def test_reference_models_and_their_statistic(fitted):
    lira, (x, y) = fitted["lira"], fitted["pool"]
    assert lira.stats.shape == (8, 60) and lira.keep.shape == (8, 60)
    assert np.all(lira.keep.sum(axis=0) == 4)  # every record in exactly half of the models
    # The statistic of model 0, recomputed from its saved weights: log p_y - log(1 - p_y) = z_y - logsumexp(z_{i != y}).
    (weights,) = fitted["run_dir"].glob("shadow_0000_*.weights.h5")  # named after its contents
    model = load_weights(build_model(digits_logits_mlp), weights)
    z = model.predict(x, verbose=0).astype(np.float64)
    is_label = np.eye(10, dtype=bool)[y]
    expected = z[is_label] - logsumexp(np.where(is_label, -np.inf, z), axis=1)
    # Keras predict and tfmia's inference may round each float32 logit differently, by up to d
    # (a few ulps of the magnitudes summed); the statistic, a difference of z_y and a log-sum-exp, by 2 d.
    d = float32_sum_atol(dense_magnitudes(model, x)).max(axis=1)
    assert np.all(np.abs(lira.stats[0] - expected) <= 2 * d + 1e-12 * np.abs(expected))


def test_score_and_evaluate(fitted):
    lira, target, parts = fitted["lira"], fitted["target"], fitted["parts"]
    members, non_members = (target, *parts["target_train"]), (target, *parts["target_test"])
    result = lira.evaluate(members, non_members, member_indices=np.arange(30), non_member_indices=np.arange(30, 60))
    assert result.name == "LiRA (offline)" and np.all(np.isfinite(result.scores)) and np.all(result.scores <= 0)
    assert_separates(result)  # the models memorise their members
    x_out, y_out = parts["target_test"]  # pool records 30 to 59: two halves of the non-members
    assert_does_not_separate(lira.evaluate((target, x_out[:15], y_out[:15]), (target, x_out[15:], y_out[15:]),
                                           member_indices=np.arange(30, 45), non_member_indices=np.arange(45, 60)))
    assert result.threshold == pytest.approx(np.log(0.95))
    whole_pool = lira.score((target, *fitted["pool"]))  # default: the records are the pool, in order
    np.testing.assert_array_equal(whole_pool, result.scores)
    online = LiRA(digits_logits_mlp, fit=fitted["fit"], n_models=8, online=True, global_variance=True,
                  run_dir=fitted["run_dir"], progress=False).fit(*fitted["pool"])  # resumes: same models
    np.testing.assert_array_equal(online.stats, lira.stats)
    assert online.evaluate(members, non_members, member_indices=np.arange(30),
                           non_member_indices=np.arange(30, 60)).threshold == 0.0


def test_bad_input(fitted):
    lira, target, parts = fitted["lira"], fitted["target"], fitted["parts"]
    fit = fitted["fit"]
    with pytest.raises(ValueError, match="n_models must be even"):
        LiRA(digits_logits_mlp, fit=fit, n_models=3)
    with pytest.raises(ValueError, match="n_models must be >= 2"):
        LiRA(digits_logits_mlp, fit=fit, n_models=0)
    with pytest.raises(ValueError, match="alpha must be in"):
        LiRA(digits_logits_mlp, fit=fit, alpha=1.5)
    with pytest.raises(ValueError, match="must be fitted"):
        LiRA(digits_logits_mlp, fit=fit).score((target, *parts["target_train"]))
    with pytest.raises(ValueError, match="give the records' positions in the pool"):
        lira.score((target, *parts["target_train"]))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 60\)"):
        lira.score((target, *parts["target_train"]), indices=np.arange(50, 80))
