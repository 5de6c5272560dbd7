"""tfmia.signals against independent numpy/scipy references.

The references port the published formulas (Song & Mittal's ``_log_value`` and
``_m_entr_comp``, TF Privacy's entropy, LiRA's logit scaling) to plain numpy,
and the logit path goes through ``scipy.special.log_softmax`` and
``logsumexp``.  Two deliberate refinements keep the comparison at 1e-12:
``-log(1 - p)`` uses ``log1p`` for p <= 1/2 (numpy's ``1 - p`` rounds away the
low bits of small p), and from logits ``1 - p`` of the argmax class is the sum
of the other probabilities, as the formulas ask.  ``reference=True`` is
compared with the reference code's own rounding instead: ``np.log`` of
``1 - p`` rounded in float64.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax, logsumexp

from tfmia import _core, signals
from tfmia._device import cuda_available

L30 = -np.log(1e-30)
FLOAT_KEYS = [k for k in signals.SIGNAL_NAMES if k != "correct"]


# ---- references ------------------------------------------------------------


def neg_log1m(p):
    """-log(max(1 - p, 1e-30)) without cancellation for small p."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(p <= 0.5, -np.log1p(-np.minimum(p, 0.5)), -np.log(np.maximum(1.0 - p, 1e-30)))


def reference_from_probs(p, y):
    p = np.asarray(p, dtype=np.float64)
    rows = np.arange(len(p))
    neg_log = -np.log(np.maximum(p, 1e-30))
    p_y = p[rows, y]
    others = p.copy()
    others[rows, y] = 0.0
    mentr_terms = p * neg_log1m(p)
    mentr_terms[rows, y] = (1.0 - p_y) * neg_log[rows, y]
    return {
        "loss": neg_log[rows, y],
        "confidence": p_y,
        "max": p.max(axis=1),
        "sd": p.std(axis=1),
        "entropy": (p * neg_log).sum(axis=1),
        "modified_entropy": mentr_terms.sum(axis=1),
        "correct": p.argmax(axis=1) == y,
        "logit_confidence": np.log(p_y + 1e-45) - np.log(others.sum(axis=1) + 1e-45),
    }


def log_one_minus(log_p, i):
    """log(1 - p_i) per row as logsumexp of the other log-probabilities."""
    rows = np.arange(len(log_p))
    masked = log_p.copy()
    masked[rows, i] = -np.inf
    return logsumexp(masked, axis=1)


def reference_from_logits(z, y):
    z = np.asarray(z, dtype=np.float64)
    rows = np.arange(len(z))
    log_p = log_softmax(z, axis=1)
    p = np.exp(log_p)
    loss = -log_p[rows, y]
    argmax = z.argmax(axis=1)
    one_minus_py = np.exp(log_one_minus(log_p, y))
    terms = p * np.minimum(neg_log1m(p), L30)
    terms[rows, argmax] = p[rows, argmax] * np.minimum(-log_one_minus(log_p, argmax), L30)
    terms[rows, y] = one_minus_py * np.minimum(loss, L30)
    masked = z.copy()
    masked[rows, y] = -np.inf
    return {
        "loss": loss,
        "confidence": p[rows, y],
        "max": p.max(axis=1),
        "sd": p.std(axis=1),
        "entropy": -(p * log_p).sum(axis=1),
        "modified_entropy": terms.sum(axis=1),
        "correct": argmax == y,
        "logit_confidence": z[rows, y] - logsumexp(masked, axis=1),
    }


def exact_from_logits(z, y, dps=50):
    """The logit formulas evaluated with 50 significant digits (mpmath), for small inputs."""
    import mpmath

    out = {key: [] for key in signals.SIGNAL_NAMES}
    with mpmath.workdps(dps):
        l30 = -mpmath.log(mpmath.mpf("1e-30"))
        for row, label in zip(np.asarray(z, dtype=np.float64), y):
            zs = [mpmath.mpf(float(v)) for v in row]
            lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in zs))
            p = [mpmath.exp(v - lse) for v in zs]
            mean = mpmath.fsum(p) / len(p)
            loss = lse - zs[label]
            mentr = (1 - p[label]) * min(loss, l30) + mpmath.fsum(
                pi * min(-mpmath.log(1 - pi), l30) for i, pi in enumerate(p) if i != label
            )
            others = mpmath.log(mpmath.fsum(mpmath.exp(v) for i, v in enumerate(zs) if i != label))
            out["loss"].append(loss)
            out["confidence"].append(p[label])
            out["max"].append(max(p))
            out["sd"].append(mpmath.sqrt(mpmath.fsum((pi - mean) ** 2 for pi in p) / len(p)))
            out["entropy"].append(mpmath.fsum(pi * (lse - v) for pi, v in zip(p, zs)))
            out["modified_entropy"].append(mentr)
            out["correct"].append(int(np.argmax(row)) == label)
            out["logit_confidence"].append(zs[label] - others)
    return {key: np.array(values, dtype=bool if key == "correct" else float) for key, values in out.items()}


def assert_matches(got, ref, rtol=1e-12, atol=1e-14):
    assert tuple(got) == signals.SIGNAL_NAMES
    np.testing.assert_array_equal(got["correct"], ref["correct"])
    for key in FLOAT_KEYS:
        np.testing.assert_allclose(got[key], ref[key], rtol=rtol, atol=atol, err_msg=key)


def random_probs(rng, n, c, concentration=0.3):
    return rng.dirichlet(np.full(c, concentration), size=n)


# ---- agreement with the references ------------------------------------------


@pytest.mark.parametrize("c", [2, 3, 10, 17, 1000])
def test_probabilities_match_reference(c):
    rng = np.random.default_rng(c)
    p = random_probs(rng, 300, c)
    y = rng.integers(0, c, len(p))
    assert_matches(signals.compute(p, y), reference_from_probs(p, y))


@pytest.mark.parametrize("c", [2, 3, 10, 17, 1000])
@pytest.mark.parametrize("scale", [0.1, 5.0, 60.0])
def test_logits_match_reference(c, scale):
    rng = np.random.default_rng(c)
    z = rng.normal(scale=scale, size=(300, c))
    y = rng.integers(0, c, len(z))
    assert_matches(signals.compute(z, y, from_logits=True), reference_from_logits(z, y), atol=1e-13)


@pytest.mark.parametrize("from_logits", [False, True])
def test_float32_in_float32_out(from_logits):
    rng = np.random.default_rng(1)
    x = rng.normal(scale=4.0, size=(200, 12)) if from_logits else random_probs(rng, 200, 12)
    x = x.astype(np.float32)
    y = rng.integers(0, 12, len(x))
    got = signals.compute(x, y, from_logits=from_logits)
    ref = (reference_from_logits if from_logits else reference_from_probs)(x.astype(np.float64), y)
    for key in FLOAT_KEYS:
        assert got[key].dtype == np.float32, key
    assert got["correct"].dtype == np.bool_
    assert_matches(got, ref, rtol=1e-6, atol=1e-30)


def test_logits_and_probabilities_agree():
    rng = np.random.default_rng(2)
    z = rng.normal(scale=3.0, size=(100, 7))
    y = rng.integers(0, 7, len(z))
    from_logits = signals.compute(z, y, from_logits=True)
    from_probs = signals.compute(np.exp(log_softmax(z, axis=1)), y)
    for key in FLOAT_KEYS:
        np.testing.assert_allclose(from_logits[key], from_probs[key], rtol=1e-9, atol=1e-12, err_msg=key)


def test_integer_and_bool_preds_become_float64():
    p = np.array([[1, 0, 0], [0, 1, 0]])
    y = np.array([0, 2])
    for preds in (p, p.astype(bool)):
        got = signals.compute(preds, y)
        assert got["loss"].dtype == np.float64
        assert_matches(got, reference_from_probs(p, y))


def test_non_contiguous_input_and_float_labels():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(50, 20))[:, ::2]
    y = rng.integers(0, 10, 50).astype(np.float32)
    assert_matches(signals.compute(z, y, from_logits=True), reference_from_logits(z, y.astype(int)), atol=1e-13)


# ---- adversarial rows --------------------------------------------------------


def test_one_hot_rows():
    p = np.eye(4)[[0, 1, 2, 3, 0]]
    y = np.array([0, 1, 3, 3, 2])
    got = signals.compute(p, y)
    assert_matches(got, reference_from_probs(p, y))
    np.testing.assert_allclose(got["loss"], [0, 0, L30, 0, L30], rtol=1e-15)
    np.testing.assert_allclose(got["modified_entropy"], [0, 0, 2 * L30, 0, 2 * L30], rtol=1e-15)
    np.testing.assert_allclose(got["logit_confidence"][0], np.log(1 + 1e-45) - np.log(1e-45))
    np.testing.assert_array_equal(got["correct"], [True, True, False, True, False])


@pytest.mark.parametrize("c", [2, 7, 1000])
def test_all_equal_rows_use_first_argmax(c):
    p = np.full((3, c), 1.0 / c)
    z = np.full((3, c), 2.5)
    y = np.array([0, 1, c - 1])
    for x, logits in ((p, False), (z, True)):
        got = signals.compute(x, y, from_logits=logits)
        np.testing.assert_array_equal(got["correct"], [True, False, False])
        np.testing.assert_allclose(got["entropy"], np.log(c), rtol=1e-13)
        np.testing.assert_allclose(got["sd"], 0.0, atol=1e-16)
        np.testing.assert_allclose(got["loss"], np.log(c), rtol=1e-13)


def test_ties_pick_the_first_argmax():
    p = np.array([[0.1, 0.45, 0.45], [0.45, 0.1, 0.45]])
    got = signals.compute(p, np.array([2, 0]))
    np.testing.assert_array_equal(got["correct"], [False, True])


def test_huge_logits_logit_confidence_is_exact():
    z = np.array([[1000.0, 0.0, -5.0], [-5.0, 1e4, 2.0], [0.0, -800.0, -900.0], [-1e5, 3e5, 0.0]])
    y = np.array([0, 1, 0, 0])
    got = signals.compute(z, y, from_logits=True)
    np.testing.assert_allclose(
        got["logit_confidence"][:3],
        [1000 - np.logaddexp(0, -5), 1e4 - np.logaddexp(-5, 2), 800 - np.logaddexp(0, -100)],
        rtol=1e-15,
    )
    assert_matches(got, exact_from_logits(z, y), atol=0)
    assert np.all(np.isfinite(np.column_stack([got[k] for k in FLOAT_KEYS])))


def test_confident_logits_keep_tiny_signals_accurate():
    # p_y = 1 - 1e-20: loss, 1 - p_y and the modified entropy live far below float eps,
    # where log_softmax rounds the loss to 0.
    z = np.array([[0.0, -46.0517, -50.0], [-46.0517, 0.0, -50.0], [0.0, -40.0, -745.5]])
    y = np.array([0, 0, 0])
    got = signals.compute(z, y, from_logits=True)
    assert got["loss"][0] > 0 and got["modified_entropy"][0] > 0
    assert_matches(got, exact_from_logits(z, y), rtol=1e-14, atol=0)


def test_random_logits_match_high_precision():
    rng = np.random.default_rng(8)
    z = rng.normal(scale=20.0, size=(40, 6))
    y = rng.integers(0, 6, len(z))
    assert_matches(signals.compute(z, y, from_logits=True), exact_from_logits(z, y), rtol=1e-13, atol=1e-300)


def test_logits_spanning_the_double_range():
    z = np.array([[1e300, -1e300, 0.0]])
    got = signals.compute(z, np.array([0]), from_logits=True)
    assert got["loss"][0] == 0 and got["entropy"][0] == 0 and got["modified_entropy"][0] == 0
    assert got["confidence"][0] == 1 and got["logit_confidence"][0] == 1e300


def test_tiny_logits():
    z = np.array([[1e-300, -1e-300, 0.0, 5e-324]])
    got = signals.compute(z, np.array([1]), from_logits=True)
    np.testing.assert_allclose(got["loss"], np.log(4), rtol=1e-15)
    np.testing.assert_allclose(got["sd"], 0, atol=1e-16)


def test_single_row_and_two_classes():
    got = signals.compute([[0.25, 0.75]], [1])
    np.testing.assert_allclose(got["loss"], [-np.log(0.75)])
    np.testing.assert_allclose(got["sd"], [0.25])
    np.testing.assert_allclose(got["logit_confidence"], [np.log(3)])
    np.testing.assert_allclose(got["modified_entropy"], [-0.25 * np.log(0.75) - 0.25 * np.log(0.75)])


def test_sum_tol_none_accepts_truncated_rows():
    p = np.array([[0.7, 0.2, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0]])  # top-k outputs, rows don't sum to 1
    y = np.array([0, 1])
    with pytest.raises(ValueError, match="sum_tol"):
        signals.compute(p, y)
    assert_matches(signals.compute(p, y, sum_tol=None), reference_from_probs(p, y))
    assert_matches(signals.compute(p, y, sum_tol=0.6), reference_from_probs(p, y))


# ---- reference=True: the reference code's log(1 - p) ------------------------------


def modified_entropy_rounding_one_minus_p(p, y):
    """The modified entropy as the papers' reference code evaluates it, in float64:
    (1 - p_y) -log(max(p_y, 1e-30)) + sum_{i != y} p_i -log(max(1 - p_i, 1e-30)),
    every 1 - p rounded to float64 before the log."""
    p = np.asarray(p, dtype=np.float64)
    rows = np.arange(len(p))
    weights = p.copy()
    weights[rows, y] = 1.0 - p[rows, y]
    neg_logs = -np.log(np.maximum(1.0 - p, 1e-30))
    neg_logs[rows, y] = -np.log(np.maximum(p[rows, y], 1e-30))
    return (weights * neg_logs).sum(axis=1)


def confident_rows():
    """Rows with p_y = 1 and tiny other probabilities, labels 0, and the 1 - p_i the reference rounds to 1."""
    tiny = [1e-12, 1e-17, 1e-20, 2.0**-54, 2.0**-53]
    p = np.zeros((len(tiny), 4))
    p[:, 0] = 1.0
    p[:, 1:] = np.array(tiny)[:, None]
    return p, np.zeros(len(p), dtype=np.int64), np.array(tiny) <= 2.0**-54


def test_reference_mode_gives_exactly_zero_where_the_reference_does(isa):
    p, y, rounds_to_one = confident_rows()
    assert np.all(modified_entropy_rounding_one_minus_p(p, y)[rounds_to_one] == 0)  # the premise
    got = signals.compute(p, y, reference=True)["modified_entropy"]
    assert np.all(got[rounds_to_one] == 0)
    np.testing.assert_allclose(got, modified_entropy_rounding_one_minus_p(p, y), rtol=1e-13, atol=0)
    # The default keeps the accurate value, about sum_{i != y} p_i^2 > 0.
    default = signals.compute(p, y)["modified_entropy"]
    np.testing.assert_allclose(default, reference_from_probs(p, y)["modified_entropy"], rtol=1e-13, atol=0)
    np.testing.assert_allclose(default, 3 * p[:, 1] ** 2, rtol=1e-11, atol=0)
    assert np.all(default > 0)


@pytest.mark.parametrize("c", [2, 10, 1000])
def test_reference_mode_matches_the_reference_formula(isa, c):
    rng = np.random.default_rng(c)
    p = random_probs(rng, 203, c, concentration=0.05)  # many near-one-hot rows
    y = rng.integers(0, c, len(p))
    y[:50] = p[:50].argmax(axis=1)
    expected = modified_entropy_rounding_one_minus_p(p, y)
    got = signals.compute(p, y, reference=True)
    default = signals.compute(p, y)
    # Every term is >= 0 and within a few ulps; a sum of c of them in another order
    # is within c ulps of the sum relative to it.
    np.testing.assert_allclose(got["modified_entropy"], expected, rtol=(c + 4) * np.finfo(float).eps, atol=0)
    for key in signals.SIGNAL_NAMES:  # every other signal is the default's
        if key != "modified_entropy":
            np.testing.assert_array_equal(got[key], default[key], err_msg=key)


def test_reference_mode_floors_and_float32():
    # A class other than the label at p = 1 (sum_tol=None, rows that need not sum to 1) meets the 1e-30 floor.
    p = np.array([[0.0, 1.0, 0.0], [0.5, 1.0, 0.0], [0.25, 0.25, 0.5]])
    y = np.array([0, 0, 2])
    got = signals.compute(p, y, sum_tol=None, reference=True)["modified_entropy"]
    np.testing.assert_allclose(got, modified_entropy_rounding_one_minus_p(p, y), rtol=1e-14)
    np.testing.assert_allclose(got[:2], [L30 + L30, 0.5 * np.log(2) + 1.0 * L30], rtol=1e-14)
    # float32 input is widened first: 1 - p is rounded in float64, the result returned in float32.
    p32 = np.array([[0.9, 0.05, 0.05], [1.0, 1e-9, 0.0]], dtype=np.float32)
    got32 = signals.compute(p32, np.array([0, 0]), reference=True)["modified_entropy"]
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, modified_entropy_rounding_one_minus_p(p32, [0, 0]).astype(np.float32), rtol=1e-6)
    assert got32[1] > 0  # 1 - 1e-9 is not 1 in float64


# ---- member scores ------------------------------------------------------------


def test_member_scores_orientation():
    p = np.array([[0.9, 0.1], [0.4, 0.6]])
    got = signals.compute(p, [0, 0])
    assert set(signals.MEMBER_SIGN) == set(signals.SIGNAL_NAMES)
    for name in signals.SIGNAL_NAMES:
        scores = signals.member_scores(got, name)
        assert scores.dtype == np.float64
        assert scores[0] > scores[1], name  # the confidently correct row looks more like a member
    with pytest.raises(ValueError, match="name"):
        signals.member_scores(got, "accuracy")


# ---- bad input ------------------------------------------------------------------


GOOD = np.array([[0.2, 0.8], [0.5, 0.5]])


@pytest.mark.parametrize(
    "preds, labels, kwargs, match",
    [
        (GOOD, [0, -1], {}, "labels"),
        (GOOD, [0, 2], {}, "labels"),
        (GOOD, [0, 1, 1], {}, "labels"),
        (GOOD, [[0, 1]], {}, "labels"),
        (GOOD, [0.5, 1], {}, "labels"),
        (np.ones((2, 1)), [0, 0], {}, "preds must have at least 2 classes"),
        (np.empty((0, 3)), [], {}, "preds"),
        (np.array([0.2, 0.8]), [1], {}, "preds"),
        (np.ones((2, 2, 2)), [0, 1], {}, "preds"),
        (np.array([[0.2, np.nan], [0.5, 0.5]]), [0, 1], {}, "preds.*NaN"),
        (np.array([[0.2, 0.8], [np.inf, 0.5]]), [0, 1], {}, "preds.*row 1"),
        (np.array([[0.2, np.inf]]), [0], {"from_logits": True}, "preds.*Inf"),
        (np.array([[1.2, -0.2]]), [0], {}, "preds.*negative.*from_logits=True"),
        (np.array([[1.2, -0.2]]), [0], {"sum_tol": None}, "preds.*negative"),
        (np.array([[0.2, 0.7]]), [0], {}, "preds row 0 sums to"),
        (np.array([[1 + 2j, 0]]), [0], {}, "preds"),
        (np.array([[None, 1.0]], dtype=object), [0], {}, "preds"),
        (GOOD, [0, 1], {"sum_tol": -1.0}, "sum_tol"),
        (GOOD, [0, 1], {"sum_tol": np.nan}, "sum_tol"),
        (GOOD, [0, 1], {"sum_tol": "0.1"}, "sum_tol"),
        (GOOD, [0, 1], {"from_logits": "yes"}, "from_logits"),
        (GOOD, [0, 1], {"device": "tpu"}, "device"),
        (GOOD, [0, 1], {"from_logits": True, "reference": True}, "reference"),
        (GOOD, [0, 1], {"reference": "yes"}, "reference"),
    ],
)
def test_bad_input_raises_naming_the_argument(preds, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        signals.compute(preds, labels, **kwargs)


@pytest.mark.skipif(cuda_available(), reason="this build can run CUDA")
def test_cuda_unavailable_is_a_value_error():
    with pytest.raises(ValueError, match="device"):
        signals.compute(GOOD, [0, 1], device="cuda")


Y2 = np.array([0, 1], dtype=np.int64)


@pytest.mark.parametrize(
    "preds, labels, match",
    [
        (GOOD.astype(np.int64), Y2, "preds must be a float32 or float64"),
        (np.asfortranarray(np.ones((2, 3)) / 3), Y2, "preds must be C-contiguous"),
        (np.ones(4), Y2, "preds must be 2-D"),
        (np.ones((0, 2)), Y2[:0], "preds must not be empty"),
        (np.ones((2, 1)), Y2, "preds must have at least 2 classes"),
        (GOOD, Y2.astype(np.int32), "labels must be an int64"),
        (GOOD, np.array([0, 1, 1]), "labels has 3 entries"),
        (GOOD, np.array([0, 5]), r"labels\[1\] = 5 is out of range"),
        (GOOD, np.array([-3, 0]), r"labels\[0\] = -3"),
        (GOOD, np.array([[0], [1]]), "labels must be 1-D"),
        (np.array([[0.5, np.nan], [0.5, 0.5]]), Y2, "preds contains NaN"),
    ],
)
def test_core_rejects_bad_arrays_directly(preds, labels, match):
    with pytest.raises(ValueError, match=match):
        _core.signals(preds, labels, False, 1e-3)


def test_core_rejects_bad_sum_tol_directly():
    with pytest.raises(ValueError, match="sum_tol"):
        _core.signals(GOOD, Y2, False, -0.5)


# ---- property test ----------------------------------------------------------------


def expected_error(x, y, from_logits, sum_tol):
    """Why compute() must refuse these arguments, or None when it must succeed."""
    if x.dtype.kind not in "fiub" or x.ndim != 2 or x.size == 0 or x.shape[1] < 2:
        return "preds"
    if y.ndim != 1 or len(y) != len(x) or y.size and (y.min() < 0 or y.max() >= x.shape[1]):
        return "labels"
    values = x.astype(np.float64)
    if not np.all(np.isfinite(values)):
        return "preds"
    if not from_logits:
        if np.any(values < 0):
            return "preds"
        if sum_tol is not None and np.any(np.abs(values.sum(axis=1) - 1) > sum_tol):
            return "preds"
        if sum_tol is None and values.max() > 1 + 1e-3:
            return "probability of .*, above 1"
    return None


@st.composite
def signal_inputs(draw):
    n = draw(st.integers(0, 6))
    c = draw(st.integers(1, 40))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64, np.bool_, np.complex128, object]))
    from_logits = draw(st.booleans())
    sum_tol = draw(st.sampled_from([1e-3, 1e-6, None]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if from_logits:
        x = rng.normal(scale=draw(st.sampled_from([1e-3, 1.0, 30.0, 1e4])), size=(n, c))
    else:
        x = rng.dirichlet(np.full(c, draw(st.sampled_from([0.05, 1.0]))), size=n)
    special = draw(st.sampled_from([None, np.nan, np.inf, -np.inf, -0.1, 0.0, 1.0, 2.0]))
    if special is not None and x.size:
        x[rng.integers(0, n), rng.integers(0, c)] = special
    with np.errstate(invalid="ignore"):  # NaN/Inf cast to integers: arbitrary values are fine here
        x = x.astype(dtype)
    label_high = c + draw(st.sampled_from([0, 0, 0, 1]))
    y = rng.integers(draw(st.sampled_from([0, 0, 0, -1])), max(label_high, 1), n + draw(st.sampled_from([0, 0, 0, 1])))
    return x, y, from_logits, sum_tol


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signal_inputs())
def test_property_reference_or_value_error(args):
    x, y, from_logits, sum_tol = args
    why = expected_error(x, y, from_logits, sum_tol)
    if why is not None:
        with pytest.raises(ValueError, match=why):
            signals.compute(x, y, from_logits=from_logits, sum_tol=sum_tol)
        return
    got = signals.compute(x, y, from_logits=from_logits, sum_tol=sum_tol)
    values = x.astype(np.float64)
    ref = reference_from_logits(values, y) if from_logits else reference_from_probs(values, y)
    # atol: log_softmax rounds log(1 + tiny) to the nearest ulp of 1, so tiny signals
    # of very confident rows carry an absolute error near 1e-16 in the reference.
    if x.dtype == np.float32:
        assert_matches(got, ref, rtol=1e-6, atol=1e-15)
    else:
        assert_matches(got, ref, atol=1e-12)


# ---- every instruction set ------------------------------------------------------------

ISAS = ["avx512", "avx2", "avx_fma", "baseline"]


@pytest.fixture(params=ISAS)
def isa(request):
    """Runs the test on the CPU kernels of one instruction set, skipping those this CPU lacks."""
    previous = _core._row_isa()
    try:
        _core._row_isa(request.param)
    except ValueError:
        pytest.skip(f"this CPU or build has no {request.param} kernels")
    yield request.param
    _core._row_isa(previous)


def test_every_instruction_set_matches_the_references(isa):
    rng = np.random.default_rng(9)
    for c in (2, 9, 64):
        z = rng.normal(scale=4.0, size=(37, c))
        y = rng.integers(0, c, len(z))
        assert_matches(signals.compute(z, y, from_logits=True), reference_from_logits(z, y), atol=1e-13)
        p = random_probs(rng, 37, c)
        assert_matches(signals.compute(p, y), reference_from_probs(p, y))


def test_row_isa_rejects_unknown_names():
    with pytest.raises(ValueError, match="isa must be one of"):
        _core._row_isa("sse9")


# ---- the vectorised exp/log themselves ------------------------------------------------


# The largest error of the core's exp and logs, measured over 10^7 arguments each
# (scripts/vecmath_ulps.py): 0.62 ulp where the compiler contracts to FMA, 0.65
# without (the baseline kernels).  The signals need below 1 ulp; the tighter bound
# catches a regression.
ULP_BOUND = 0.7


def ulps(got, exact):
    """|got - exact| in units of the last place of exact rounded to float64."""
    rounded = exact.astype(np.float64)
    return np.abs((got.astype(np.longdouble) - exact) / np.spacing(np.abs(rounded)).astype(np.longdouble))


def test_vecmath_exp_within_the_bound(isa):
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.uniform(-708, 709, 200_003), rng.uniform(-1, 1, 50_000), [0.0, -0.0, 1e-300]])
    assert ulps(_core._vecmath("exp", x), np.exp(x.astype(np.longdouble))).max() < ULP_BOUND
    edge = _core._vecmath("exp", np.array([0.0, -746.0, -800.0, 710.0, 1e308, -np.inf, np.inf, -745.0, np.nan]))
    assert edge[0] == 1.0 and edge[1] == 0 and edge[2] == 0 and edge[3] == np.inf and edge[4] == np.inf
    assert edge[5] == 0 and edge[6] == np.inf and edge[7] == 5e-324 and np.isnan(edge[8])


def test_vecmath_exp_subnormal_results(isa):
    # Below 2^-1022 the result is rounded once, to within one subnormal unit.
    x = np.linspace(-745, -708.5, 10_007)
    exact = np.exp(x.astype(np.longdouble)).astype(np.float64)
    assert np.abs(_core._vecmath("exp", x) - exact).max() <= 5e-324


def test_vecmath_log_within_the_bound(isa):
    rng = np.random.default_rng(5)
    edges = [1.0, 2.2250738585072014e-308]
    x = np.concatenate([10.0 ** rng.uniform(-307, 308, 200_003), rng.uniform(0.5, 2, 50_000), edges])
    assert ulps(_core._vecmath("log", x), np.log(x.astype(np.longdouble))).max() < ULP_BOUND
    assert _core._vecmath("log", np.array([1.0]))[0] == 0.0


def test_vecmath_log1p_within_the_bound(isa):
    rng = np.random.default_rng(7)
    edges = [0.0, 0.41421356237309503, 1.0]
    x = np.concatenate([10.0 ** rng.uniform(-320, 300, 200_003), rng.uniform(0, 3, 50_000), edges])
    assert ulps(_core._vecmath("log1p", x), np.log1p(x.astype(np.longdouble))).max() < ULP_BOUND


def test_vecmath_log1m_within_the_bound(isa):
    rng = np.random.default_rng(6)
    p = np.concatenate([rng.uniform(0, 1, 200_003), 0.5 * 10.0 ** -rng.uniform(0, 300, 50_000), [0.0, 0.5, 1.0, 3.0]])
    p_long = p.astype(np.longdouble)
    with np.errstate(invalid="ignore", divide="ignore"):
        exact = np.where(p <= 0.5, np.log1p(-np.minimum(p_long, 0.5)), np.log(np.maximum(1 - p_long, 1e-30)))
    assert ulps(_core._vecmath("log1m", p), exact).max() < ULP_BOUND


def test_vecmath_log1m_half_and_the_fused_pair_within_the_bound(isa):
    rng = np.random.default_rng(10)
    half = np.concatenate([rng.uniform(0, 0.5, 100_003), 0.5 * 10.0 ** -rng.uniform(0, 300, 50_000)])
    assert ulps(_core._vecmath("log1m_half", half), np.log1p(-half.astype(np.longdouble))).max() < ULP_BOUND
    p = np.concatenate([rng.uniform(1e-30, 1, 200_003), 10.0 ** -rng.uniform(0, 30, 50_000)])
    p_long = p.astype(np.longdouble)
    assert ulps(_core._vecmath("pair_log", p), np.log(p_long)).max() < ULP_BOUND
    exact = np.where(p <= 0.5, np.log1p(-np.minimum(p_long, 0.5)), np.log(np.maximum(1 - p_long, 1e-30)))
    assert ulps(_core._vecmath("pair_log1m", p), exact).max() < ULP_BOUND


def test_vecmath_rejects_unknown_function():
    with pytest.raises(ValueError, match="name"):
        _core._vecmath("sin", np.ones(3))


# ---- CUDA ----------------------------------------------------------------------------


@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA build of tfmia and a visible GPU")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("c", [2, 10, 33, 1000])
def test_cuda_matches_cpu(dtype, from_logits, c):
    rng = np.random.default_rng(c)
    x = rng.normal(scale=8.0, size=(2000, c)) if from_logits else random_probs(rng, 2000, c)
    if from_logits:
        x[0, :] = -900.0
        x[0, 0] = 100.0  # y the argmax by more than the underflow margin
    x = x.astype(dtype)
    y = rng.integers(0, c, len(x))
    y[0] = 0
    cpu = signals.compute(x, y, from_logits=from_logits, device="cpu")
    gpu = signals.compute(x, y, from_logits=from_logits, device="cuda")
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    assert_matches(gpu, cpu, rtol=rtol, atol=1e-14)


@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA build of tfmia and a visible GPU")
def test_cuda_reports_the_same_bad_row():
    p = random_probs(np.random.default_rng(0), 100, 5)
    p[37, 2] = np.nan
    p[80, 1] = -0.5
    with pytest.raises(ValueError, match="row 37"):
        signals.compute(p, np.zeros(100, dtype=int), device="cuda")
