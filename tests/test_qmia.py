"""QuantileMIA (Bertran et al. 2023): hinge score, losses, decision rule, calibration, a memorising target."""

import json
import math

import numpy as np
import pytest
from scipy import stats

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from _models import digits, digits_mlp  # noqa: E402
from tfmia.attacks import QuantileMIA  # noqa: E402
from tfmia.attacks.qmia import gaussian_nll, hinge_scores, pinball_loss  # noqa: E402
from tfmia.data import AttackInputs  # noqa: E402
from tfmia.defenses import TopK  # noqa: E402
from tfmia.evaluation import AttackResult  # noqa: E402


def chance_band(n1: int, n2: int) -> float:
    """Four standard deviations of the AUC of uninformative scores (Mann-Whitney, no ties)."""
    return 4 * math.sqrt((n1 + n2 + 1) / (12 * n1 * n2))


def numpy_hinge(z, labels):
    """z_y - max over the other classes, row by row."""
    return np.array([row[y] - np.delete(row, y).max() for row, y in zip(z, labels)])


def linear_regressor(units):
    return lambda shape: keras.Sequential([keras.Input(shape), keras.layers.Dense(units)])


# -- the score -------------------------------------------------------------------------------------
def test_hinge_from_logits_and_from_probabilities():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (50, 5))
    labels = rng.integers(0, 5, 50)
    expected = numpy_hinge(logits, labels)
    np.testing.assert_array_equal(hinge_scores(AttackInputs(logits=logits, labels=labels)), expected)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    # log p_y - log p_y' = z_y - z_y'; each log of a float64 probability is off by an ulp or so of |log p| <= 40
    np.testing.assert_allclose(hinge_scores(AttackInputs(probs=probs, labels=labels)), expected, rtol=0, atol=1e-12)
    tied = AttackInputs(logits=np.array([[2.0, 2.0, 1.0]]), labels=[0])
    assert hinge_scores(tied)[0] == 0.0


def test_probabilities_that_underflowed_are_floored_at_the_dtype_smallest_subnormal():
    saturated = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    log_float32_floor = -149 * math.log(2)  # float32's smallest subnormal is 2^-149
    log_float64_floor = -1074 * math.log(2)
    s32 = hinge_scores(AttackInputs(probs=saturated.astype(np.float32), labels=[0, 1]))
    np.testing.assert_allclose(s32, [-log_float32_floor, log_float32_floor], rtol=1e-15)
    s64 = hinge_scores(AttackInputs(probs=saturated, labels=[0, 1]))
    np.testing.assert_allclose(s64, [-log_float64_floor, log_float64_floor], rtol=1e-15)
    with pytest.raises(ValueError, match="logits contain NaN or Inf"):
        hinge_scores(AttackInputs(logits=np.array([[np.inf, 0.0]]), labels=[0]))


# -- the losses ------------------------------------------------------------------------------------
@pytest.mark.parametrize("tau", [0.5, 0.9, 0.99])
def test_pinball_loss_and_its_gradient_match_numpy(tau):
    rng = np.random.default_rng(1)
    s = rng.normal(size=200)
    q = rng.normal(size=200)  # s == q has probability 0: the gradient is defined everywhere here
    q_var = tf.Variable(q)
    with tf.GradientTape() as tape:
        loss = pinball_loss(tf.constant(s), q_var, tau)
        total = tf.reduce_sum(loss)
    u = s - q
    np.testing.assert_allclose(loss.numpy(), np.where(u > 0, tau * u, (tau - 1) * u), rtol=1e-15)
    np.testing.assert_allclose(tape.gradient(total, q_var).numpy(), np.where(u > 0, -tau, 1 - tau), rtol=1e-15)


def test_gaussian_loss_and_its_gradient_match_numpy():
    rng = np.random.default_rng(2)
    s, mu, log_sigma = rng.normal(size=200), rng.normal(size=200), rng.normal(0, 0.5, size=200)
    mu_var, log_sigma_var = tf.Variable(mu), tf.Variable(log_sigma)
    with tf.GradientTape() as tape:
        loss = gaussian_nll(tf.constant(s), mu_var, log_sigma_var)
        total = tf.reduce_sum(loss)
    d_mu, d_log_sigma = tape.gradient(total, [mu_var, log_sigma_var])
    sigma = np.exp(log_sigma)
    np.testing.assert_allclose(loss.numpy(), log_sigma + (s - mu) ** 2 / (2 * sigma**2), rtol=1e-13)
    np.testing.assert_allclose(d_mu.numpy(), -(s - mu) / sigma**2, rtol=1e-13)
    np.testing.assert_allclose(d_log_sigma.numpy(), 1 - (s - mu) ** 2 / sigma**2, rtol=1e-12, atol=1e-13)


# -- calibration where the true quantile is learnable ----------------------------------------------
@pytest.mark.parametrize("head, epochs, learning_rate", [("pinball", 20, 1e-2), ("gaussian", 30, 3e-3)])
def test_observed_fpr_matches_alpha_when_the_regressor_is_well_specified(head, epochs, learning_rate):
    """s | x = mu(x) + sigma(x) eps with mu linear and sigma linear (pinball) or exp-linear (gaussian):
    a linear regressor holds the true quantile (pinball) or the true (mu, log sigma) (gaussian)."""
    alpha = 0.1
    rng = np.random.default_rng(1)

    def draw(n):
        x = rng.uniform(0, 1, (n, 2)).astype(np.float32)
        mu = 2.0 * x[:, 0] - x[:, 1]
        sigma = 0.5 + x[:, 1] if head == "pinball" else np.exp(x[:, 1] - 0.5)
        return x, mu, sigma, mu + sigma * rng.standard_normal(n)

    x, _, _, s = draw(8000)
    attack = QuantileMIA(alpha, head=head, regressor_fn=linear_regressor(1 if head == "pinball" else 2),
                         epochs=epochs, learning_rate=learning_rate, seed=0).fit_signal(x, s)
    calibration = attack.calibration
    assert attack.architecture == "regressor_fn"
    assert calibration["held_out"] == 1600 and attack.sizes == {"train": 5760, "validation": 640, "calibration": 1600}
    assert calibration["observed_fpr"] == calibration["false_positives"] / 1600
    low, high = stats.binomtest(calibration["false_positives"], 1600).proportion_ci(0.95, method="exact")
    assert calibration["ci_low"] == pytest.approx(low, abs=1e-9)
    assert calibration["ci_high"] == pytest.approx(high, abs=1e-9)
    assert low <= alpha <= high
    # the learned quantile's own false-positive rate, on a large fresh sample, and its distance to the truth
    x_new, mu_new, sigma_new, s_new = draw(50_000)
    q = attack.quantile(x_new)
    assert abs(np.mean(s_new > q) - alpha) < 0.02
    true_q = mu_new + sigma_new * stats.norm.isf(alpha)
    assert np.mean(np.abs(q - true_q)) < 0.15 * np.mean(sigma_new)


def test_gaussian_head_serves_every_alpha():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (1000, 2)).astype(np.float32)
    s = x[:, 0] + rng.standard_normal(1000)
    attack = QuantileMIA(0.1, head="gaussian", regressor_fn=linear_regressor(2), epochs=2, seed=0).fit_signal(x, s)
    mu, sigma = attack.gaussian(x)
    assert np.all(sigma > 0)
    for alpha in (0.001, 0.1, 0.5):
        np.testing.assert_allclose(attack.quantile(x, alpha), mu + sigma * stats.norm.ppf(1 - alpha), rtol=1e-12)
    np.testing.assert_allclose(attack.score_signal(x, s), (s - mu) / sigma, rtol=1e-12)
    assert attack.threshold() == pytest.approx(stats.norm.ppf(0.9), rel=1e-12)
    wide, narrow = attack.calibration_at(0.3), attack.calibration_at(0.01)
    assert wide["false_positives"] >= narrow["false_positives"] and wide["alpha"] == 0.3
    pinball = QuantileMIA(0.1, regressor_fn=linear_regressor(1), epochs=1, seed=0).fit_signal(x, s)
    with pytest.raises(ValueError, match="alpha"):
        pinball.calibration_at(0.2)  # trained for 0.1 only
    with pytest.raises(ValueError, match="alpha"):
        pinball.quantile(x, 0.2)


def test_same_seed_same_scores():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    s = x[:, 0] + rng.standard_normal(300)
    first = QuantileMIA(0.2, epochs=3, seed=7).fit_signal(x, s)
    again = QuantileMIA(0.2, epochs=3, seed=7).fit_signal(x, s)
    assert first.architecture == "mlp"  # no target to copy
    np.testing.assert_array_equal(first.score_signal(x, s), again.score_signal(x, s))
    assert first.calibration == again.calibration


# -- end to end on a memorising target -------------------------------------------------------------
@pytest.fixture(scope="module")
def memorising():
    """A softmax MLP that memorises 200 digits, 30 % of all labels random (members' and everyone else's)."""
    x, y = digits()
    rng = np.random.default_rng(0)
    y = np.where(rng.random(len(y)) < 0.3, rng.integers(0, 10, len(y)), y)
    order = rng.permutation(len(x))
    members, public, outside = order[:200], order[200:1000], order[1000:1200]
    keras.utils.set_random_seed(0)
    target = digits_mlp()
    target.fit(x[members], y[members], epochs=40, batch_size=32, verbose=0)
    return target, x.astype(np.float32), y, members, public, outside


@pytest.mark.parametrize("head, logits", [("pinball", False), ("gaussian", True)])
def test_memorising_target_is_detected_and_shuffled_membership_is_not(memorising, head, logits):
    target, x, y, members, public, outside = memorising
    attack = QuantileMIA(0.1, head=head, epochs=20, logits=logits, seed=0).fit(target, x[public], y[public])
    assert attack.architecture == "target architecture"
    hidden = attack.regressor.layers[1]
    assert hidden.units == target.layers[0].units
    assert attack.regressor.layers[-1].units == (1 if head == "pinball" else 2)
    assert not np.allclose(hidden.kernel.numpy(), target.layers[0].kernel.numpy())  # fresh weights

    result = attack.evaluate((target, x[members], y[members]), (target, x[outside], y[outside]))
    assert result.auc > 0.5 + chance_band(200, 200)
    assert result.metadata["calibration"] == attack.calibration and result.metadata["head"] == head
    stored = AttackResult.from_dict(json.loads(json.dumps(result.to_dict())))  # how reports keep it
    assert stored.metadata["calibration"] == attack.calibration

    # the decision rule, against numpy: member iff s > q_alpha(x), with s from the target's own outputs
    both = np.r_[members, outside]
    if logits:
        hidden_out = target.layers[0](x[both]).numpy().astype(np.float64)
        z = hidden_out @ target.layers[1].kernel.numpy() + target.layers[1].bias.numpy()
        s = numpy_hinge(z, y[both])
    else:
        p = target.predict(x[both], verbose=0).astype(np.float64)
        s = numpy_hinge(np.log(np.maximum(p, np.finfo(np.float32).smallest_subnormal)), y[both])
    q = attack.quantile(x[both])
    scale = np.abs(s).max()
    exact = np.abs(s - q) > 1e-4 * scale  # numpy's float64 matmul vs TensorFlow's float32 one
    np.testing.assert_array_equal(result.decisions[exact], (s > q)[exact])
    np.testing.assert_array_equal(result.decisions, result.scores > attack.threshold())
    if head == "pinball":
        np.testing.assert_allclose(result.scores, s - q, rtol=0, atol=1e-4 * scale)

    # membership drawn independently of the target: the attack is at chance
    shuffled = np.random.default_rng(1).permutation(both)
    fake_in, fake_out = shuffled[:200], shuffled[200:]
    control = attack.evaluate((target, x[fake_in], y[fake_in]), (target, x[fake_out], y[fake_out]))
    assert abs(control.auc - 0.5) < chance_band(200, 200)


def test_a_predict_only_target_gets_the_mlp_and_truncated_outputs_are_floored(memorising):
    """A DefendedModel is no Keras model to copy; top-1 outputs are zero except the top class."""
    target, x, y, members, public, outside = memorising
    defended = TopK(1).wrap(target)
    attack = QuantileMIA(0.1, epochs=2, seed=0).fit(defended, x[public], y[public])
    assert attack.architecture == "mlp"
    _, inputs = attack.observe((defended, x[outside], y[outside]))
    floor = np.log(np.finfo(inputs.probs.dtype).smallest_subnormal)
    top = inputs.probs.max(axis=1)
    right = inputs.probs[np.arange(len(inputs)), inputs.labels] > 0
    expected = np.where(right, np.log(top) - floor, floor - np.log(top))
    np.testing.assert_allclose(hinge_scores(inputs), expected, rtol=1e-15)
    assert np.all(np.isfinite(attack.score((defended, x[outside], y[outside]))))


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("options, argument", [
    ({"alpha": 0.0}, "alpha"), ({"alpha": 1.0}, "alpha"), ({"alpha": -0.1}, "alpha"),
    ({"head": "laplace"}, "head"), ({"regressor_fn": 3}, "regressor_fn"), ({"epochs": 0}, "epochs"),
    ({"calibration_fraction": 1.0}, "calibration_fraction"), ({"validation_fraction": 1.5}, "validation_fraction"),
    ({"learning_rate": -1.0}, "learning_rate"),
])
def test_bad_settings_name_the_argument(options, argument):
    with pytest.raises(ValueError, match=argument):
        QuantileMIA(**options)


def test_bad_records_name_the_argument():
    x, y = digits()
    target = digits_mlp()
    attack = QuantileMIA(epochs=1)
    with pytest.raises(ValueError, match="must be fitted"):
        attack.score((target, x[:5], y[:5]))
    with pytest.raises(ValueError, match="x_public must hold at least one record"):
        attack.fit(target, x[:0], y[:0])
    with pytest.raises(ValueError, match="x_public has 10 records but y_public has 9"):
        attack.fit(target, x[:10], y[:9])
    with pytest.raises(ValueError, match="x_public: 2 public records are too few"):
        attack.fit(target, x[:2], y[:2])
    with pytest.raises(ValueError, match="x_public has 10 records but s_public has 9"):
        attack.fit_signal(x[:10], np.zeros(9))
    with pytest.raises(ValueError, match="x_public must be one array"):
        attack.fit_signal((x[:10], x[:10]), np.zeros(10))
    poisoned = x[:50].astype(np.float32)
    poisoned[7, 3] = np.nan
    with pytest.raises(ValueError, match=r"x_public must be finite \(found NaN or Inf\)"):
        attack.fit(target, poisoned, y[:50])
    with pytest.raises(ValueError, match=r"x_public must be finite"):
        attack.fit_signal(poisoned, np.zeros(50))
    with pytest.raises(ValueError, match="regressor_fn must return a model with one output of shape \\(batch, 1\\)"):
        QuantileMIA(regressor_fn=linear_regressor(2), epochs=1).fit_signal(x[:50], np.zeros(50))

    attack.fit(target, x[:100], y[:100])
    inputs = AttackInputs.from_model(target, x[:5], y[:5])
    with pytest.raises(ValueError, match="records: QuantileMIA predicts each record's threshold from its input x"):
        attack.score(inputs)
    with pytest.raises(ValueError, match="members: QuantileMIA predicts"):
        attack.evaluate(inputs, (target, x[:5], y[:5]))
    with pytest.raises(ValueError, match="x of non_members has 5 records but y of non_members has 4"):
        attack.evaluate((target, x[:5], y[:5]), (target, x[:5], y[:4]))
    with pytest.raises(ValueError, match=r"x has per-record shape \(32,\) but the regressor was fitted on \(64,\)"):
        attack.score_signal(x[:5, :32], np.zeros(5))
    with pytest.raises(ValueError, match="x has 5 records but s has 4"):
        attack.score_signal(x[:5], np.zeros(4))
