"""tfmia.attacks.RMIA: the tempered signal, the attacker's choice of a, end to end on a memorising target."""

import math

import numpy as np
import pytest
from _models import digits, digits_logits_mlp, digits_mlp, float32_softmax_rtol
from sklearn.metrics import roc_auc_score

from tfmia.attacks import RMIA
from tfmia.attacks.rmia import A_GRID, select_offline_a, tempered_probability
from tfmia._serialization import load_npz
from tfmia.data import AttackInputs
from tfmia.training import FitConfig, build_model, fit_model, load_weights


def test_tempered_probability_from_logits_and_probabilities():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 4)) * 3
    y = rng.integers(0, 4, 6)
    rows = np.arange(6)
    for T in (1.0, 0.5, 2.0):
        e = np.exp(z / T)
        np.testing.assert_allclose(tempered_probability(AttackInputs(logits=z, labels=y), T),
                                   (e / e.sum(axis=1, keepdims=True))[rows, y], rtol=1e-13)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    for T in (1.0, 0.5, 3.0):
        sharpened = p ** (1 / T)
        np.testing.assert_allclose(tempered_probability(AttackInputs(probs=p, labels=y), T),
                                   (sharpened / sharpened.sum(axis=1, keepdims=True))[rows, y], rtol=1e-12)


def test_tempered_probability_is_stable_for_huge_logits_and_zero_probabilities():
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 800.0, 0.0]])
    got = tempered_probability(AttackInputs(logits=logits, labels=np.array([0, 0])), 2.0)
    np.testing.assert_array_equal(got, [1.0, math.exp(-400.0)])  # exp(z/T) alone would overflow
    probs = np.array([[0.0, 1.0], [0.25, 0.75]])
    got = tempered_probability(AttackInputs(probs=probs, labels=np.array([0, 0])), 0.5)
    np.testing.assert_allclose(got, [0.0, 0.0625 / (0.0625 + 0.5625)], rtol=1e-14)
    with pytest.raises(ValueError, match="row 0 has no positive probability"):
        tempered_probability(AttackInputs(probs=np.zeros((1, 2)), labels=np.array([0]), sum_tol=None))
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        tempered_probability(AttackInputs(probs=probs, labels=np.array([0, 0])), 0.0)


def dense_offline_scores(target_x, mean_x, target_z, mean_z, a):
    """Offline RMIA written out: the N x Z likelihood ratios against gamma = 1."""
    P = lambda mean: (1 + a) / 2 * mean + (1 - a) / 2  # noqa: E731
    lr = (target_x / P(mean_x))[:, None] / (target_z / P(mean_z))[None, :]
    return (lr > 1.0).mean(axis=1)


def test_offline_a_is_chosen_from_the_references_alone():
    # Two references.  Records 0-1: trained by reference 0 only; 2-3: by reference 1 only; 4-5: by neither.
    # A reference's members have signal 0.6 on it and 0.3 on the other; records 4-5 have 0.95 on both.
    # Small a makes the well-fitted non-members look like members; large a separates them.
    refs_own = np.array([[0.6, 0.6, 0.3, 0.3, 0.95, 0.95],
                         [0.3, 0.3, 0.6, 0.6, 0.95, 0.95]])
    trained = np.array([[True, True, False, False, False, False],
                        [False, False, True, True, False, False]])
    rng = np.random.default_rng(1)
    refs_z = np.tile(rng.uniform(0.01, 1.0, 300), (2, 1))
    refs_z[1] = rng.uniform(0.01, 1.0, 300)
    a, mean_auc = select_offline_a(refs_own, trained, refs_z)
    # Expected: reference j as the target, the other one as the only reference, on records it left out.
    expected = []
    for value in A_GRID:
        aucs = []
        for j, usable in ((0, [0, 1, 4, 5]), (1, [2, 3, 4, 5])):
            other = 1 - j
            scores = dense_offline_scores(refs_own[j, usable], refs_own[other, usable], refs_z[j], refs_z[other],
                                          value)
            aucs.append(roc_auc_score(trained[j, usable], scores))
        expected.append(np.mean(aucs))
    np.testing.assert_allclose(mean_auc, expected, rtol=0, atol=1e-15)
    assert a == A_GRID[int(np.argmax(expected))]
    assert 0.0 < a < 1.0 and max(expected) == 1.0 and expected[0] < 1.0  # a genuine choice


def test_offline_a_ties_go_to_the_smallest_and_bad_input():
    refs = np.full((3, 8), 0.5)
    trained = np.zeros((3, 8), bool)
    trained[0, :4] = trained[1, 4:] = trained[2, ::2] = True
    a, mean_auc = select_offline_a(refs, trained, np.full((3, 5), 0.5))
    assert a == 0.0 and np.all(mean_auc == 0.5)
    with pytest.raises(ValueError, match="needs >= 2 reference models"):
        select_offline_a(refs[:1], trained[:1], np.full((1, 5), 0.5))
    with pytest.raises(ValueError, match="trained must be a bool array"):
        select_offline_a(refs, trained.astype(int), np.full((3, 5), 0.5))
    with pytest.raises(ValueError, match="no reference model has both members and non-members"):
        select_offline_a(refs, np.ones((3, 8), bool), np.full((3, 5), 0.5))


def chance_bound(n1: int, n2: int) -> float:
    """4 standard deviations of the AUC of random scores (Mann-Whitney U under the null)."""
    return 4 * math.sqrt((n1 + n2 + 1) / (12 * n1 * n2))


@pytest.fixture(scope="module")
def memorising():
    """A target that memorises 100 digits; 100 non-members; 200 population records; 200 attacker records."""
    x, y = digits()
    order = np.random.default_rng(0).permutation(len(y))
    audited, population, attacker = order[:200], order[200:400], order[400:600]
    fit = FitConfig(epochs=30, batch_size=20)
    target = build_model(digits_logits_mlp, seed=3)
    fit_model(target, x[audited[:100]], y[audited[:100]], fit)
    return {"x": x, "y": y, "audited": audited, "population": population, "attacker": attacker, "fit": fit,
            "target": target}


@pytest.mark.parametrize("online", [True, False])
def test_memorising_target_is_caught_and_shuffled_membership_is_at_chance(memorising, online):
    m = memorising
    x, y, target = m["x"], m["y"], m["target"]
    xa, ya = x[m["audited"]], y[m["audited"]]
    population = (x[m["population"]], y[m["population"]])
    attack = RMIA(digits_logits_mlp, fit=m["fit"], n_models=2, online=online, progress=False, seed=5)
    attack.fit(xa, ya, population, reference_data=None if online else (x[m["attacker"]], y[m["attacker"]]))
    if online:
        assert attack.in_mask.shape == (2, 200) and np.all(attack.in_mask.sum(axis=0) == 1)
    else:
        assert attack.in_mask is None and attack.a in A_GRID and attack.a_auc.shape == A_GRID.shape
    target_pop = (target, *population)
    result = attack.evaluate((target, xa[:100], ya[:100]), (target, xa[100:], ya[100:]), population=target_pop,
                             member_indices=np.arange(100), non_member_indices=np.arange(100, 200))
    assert result.name == f"RMIA ({'online' if online else 'offline'})"
    assert result.auc > 0.5 + chance_bound(100, 100)
    # Same scores, membership labels shuffled: at chance.
    scores = attack.score((target, xa, ya), population=target_pop)
    np.testing.assert_array_equal(scores, result.scores)
    shuffled = np.random.default_rng(9).permutation(np.arange(200) < 100)
    assert abs(roc_auc_score(shuffled, scores) - 0.5) < chance_bound(100, 100)


def test_bad_input(memorising):
    m = memorising
    x, y, fit = m["x"], m["y"], m["fit"]
    with pytest.raises(ValueError, match="n_models must be even for online RMIA"):
        RMIA(digits_mlp, fit=fit, n_models=3, online=True)
    with pytest.raises(ValueError, match="n_models must be >= 2"):
        RMIA(digits_mlp, fit=fit, n_models=1, online=True)
    with pytest.raises(ValueError, match="gamma must be a finite number > 0"):
        RMIA(digits_mlp, fit=fit, gamma=0.0)
    with pytest.raises(ValueError, match="gamma must be a finite number > 0"):
        RMIA(digits_mlp, fit=fit, gamma=-2.0)
    with pytest.raises(ValueError, match=r"a must be in \[0, 1\]"):
        RMIA(digits_mlp, fit=fit, a=1.5)
    with pytest.raises(ValueError, match="a must be a number in"):
        RMIA(digits_mlp, fit=fit, a="best")
    with pytest.raises(ValueError, match="a='auto' needs n_models >= 2"):
        RMIA(digits_mlp, fit=fit, n_models=1)
    with pytest.raises(ValueError, match="temperature must be"):
        RMIA(digits_mlp, fit=fit, temperature=0)
    online = RMIA(digits_mlp, fit=fit, n_models=2, online=True, progress=False)
    with pytest.raises(ValueError, match="population labels must not be empty"):
        online.fit(x[:10], y[:10], (x[:0], y[:0]))
    with pytest.raises(ValueError, match="population must be an"):
        online.fit(x[:10], y[:10], None)
    with pytest.raises(ValueError, match="reference_data is for offline RMIA"):
        online.fit(x[:10], y[:10], (x[10:20], y[10:20]), reference_data=(x[20:30], y[20:30]))
    with pytest.raises(ValueError, match="offline RMIA needs reference_data"):
        RMIA(digits_mlp, fit=fit, n_models=2).fit(x[:10], y[:10], (x[10:20], y[10:20]))
    with pytest.raises(ValueError, match="must be fitted"):
        online.score((m["target"], x[:10], y[:10]), population=(m["target"], x[10:20], y[10:20]))
    poisoned = x[:10].astype(np.float32)
    poisoned[4, 0] = np.inf
    with pytest.raises(ValueError, match=r"^x must be finite \(found NaN or Inf\)"):
        online.fit(poisoned, y[:10], (x[10:20], y[10:20]))
    with pytest.raises(ValueError, match=r"^population must be finite"):
        online.fit(x[:10], y[:10], (poisoned, y[10:20]))
    with pytest.raises(ValueError, match=r"^reference_data must be finite"):
        RMIA(digits_mlp, fit=fit, n_models=2).fit(x[:10], y[:10], (x[10:20], y[10:20]),
                                                  reference_data=(poisoned, y[20:30]))


def test_config_is_json_whatever_number_type_a_was_given_as():
    import json

    config = RMIA(digits_mlp, fit=FitConfig(epochs=1), n_models=1, a=np.float32(0.5)).config()
    assert json.loads(json.dumps(config))["a_setting"] == 0.5
    assert config["method"] == "RMIA" and config["population_records"] is None  # not fitted yet


def test_logits_references_keep_their_pre_softmax_scores(memorising, tmp_path):
    """logits=True stores the references' logits, so their signals are computed like the target's; the
    models are the same as with probabilities (same seed), so the signals agree to float32 softmax rounding."""
    m = memorising
    xa, ya = m["x"][m["audited"]], m["y"][m["audited"]]
    population = (m["x"][m["population"]], m["y"][m["population"]])
    fit = FitConfig(epochs=2, batch_size=20)
    kwargs = dict(fit=fit, n_models=2, online=True, progress=False, seed=5)
    from_logits = RMIA(digits_mlp, logits=True, run_dir=tmp_path, **kwargs).fit(xa, ya, population)
    from_probs = RMIA(digits_mlp, **kwargs).fit(xa, ya, population)
    stored = [load_npz(path) for path in sorted(tmp_path.glob("shadow_*.npz"))]
    assert len(stored) == 2 and all(bool(s["is_logits"]) for s in stored)
    assert from_logits.config()["logits"] is True and from_probs.config()["logits"] is False
    reference = load_weights(build_model(digits_mlp), tmp_path / str(stored[0]["weights_file"]))
    rtol = float32_softmax_rtol(reference, np.concatenate([xa, population[0]]))
    np.testing.assert_allclose(from_logits.refs_x, from_probs.refs_x, rtol=rtol, atol=0)
    np.testing.assert_allclose(from_logits.refs_z, from_probs.refs_z, rtol=rtol, atol=0)


def test_logits_must_be_a_flag():
    with pytest.raises(ValueError, match="logits must be True or False"):
        RMIA(digits_mlp, fit=FitConfig(epochs=1), logits="yes")
