"""RMIA scoring (tfmia.attacks.rmia.rmia_scores) against the N x Z definition computed densely in numpy."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfmia.attacks.rmia import rmia_scores


def dense_scores(target_x, refs_x, target_z, refs_z, *, online, a=1.0, gamma=1.0):
    """The definition, plainly: every LR(x, z) of the N x Z matrix, compared with gamma in float64."""

    def ratio(target, refs):
        total = np.zeros(refs.shape[1])
        for row in refs:  # summed in reference order
            total = total + row
        P = total / refs.shape[0]
        if not online:
            P = (1 + a) / 2 * P + (1 - a) / 2
        return (np.asarray(target, np.float64) + 0.0) / P

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rx = ratio(target_x, np.asarray(refs_x, np.float64))
        rz = ratio(target_z, np.asarray(refs_z, np.float64))
        lr = rx[:, None] / rz[None, :]
    return (lr > gamma).sum(axis=1) / rz.size


# Hand case, online: K = 2 references, 2 audited records, 3 population records (all values dyadic, so exact).
TARGET_X = np.array([0.5, 0.25])
REFS_X = np.array([[0.25, 0.5], [0.75, 0.5]])     # P(x) = (0.5, 0.5)  -> ratio_x = (1, 0.5)
TARGET_Z = np.array([0.5, 0.25, 0.125])
REFS_Z = np.array([[0.5, 0.25, 0.5], [0.5, 0.75, 0.5]])  # P(z) = 0.5 -> ratio_z = (1, 0.5, 0.25)
IN_MASK = np.array([[True, False], [False, True]])


def test_hand_computed_online_case_with_ties_at_gamma():
    # gamma = 1: LR(x0, .) = (1, 2, 4) -> 2 of 3 strictly above (the tie LR = 1 does not count);
    #            LR(x1, .) = (0.5, 1, 2) -> 1 of 3.
    np.testing.assert_array_equal(rmia_scores(TARGET_X, REFS_X, TARGET_Z, REFS_Z, in_mask=IN_MASK), [2 / 3, 1 / 3])
    # gamma = 2: (1, 2, 4) -> 1; (0.5, 1, 2) -> 0.
    np.testing.assert_array_equal(rmia_scores(TARGET_X, REFS_X, TARGET_Z, REFS_Z, in_mask=IN_MASK, gamma=2.0),
                                  [1 / 3, 0.0])


def test_hand_computed_offline_case_and_ieee_rules():
    target_x, refs_x = [0.75, 0.25], [[0.5, 0.0]]
    target_z, refs_z = [0.5, 1.0, 0.25], [[1.0, 1.0, 0.0]]
    # a = 0: P = mean / 2 + 1/2 -> P(x) = (0.75, 0.5), ratio_x = (1, 0.5); P(z) = (1, 1, 0.5), ratio_z = (0.5, 1, 0.5).
    # LR(x0, .) = (2, 1, 2) -> 2/3; LR(x1, .) = (1, 0.5, 1) -> 0.
    np.testing.assert_array_equal(rmia_scores(target_x, refs_x, target_z, refs_z, a=0.0), [2 / 3, 0.0])
    # a = 1: P = mean -> ratio_x = (1.5, 0.25 / 0 = inf), ratio_z = (0.5, 1, 0.25 / 0 = inf).
    # LR(x0, .) = (3, 1.5, 0) -> 2/3; LR(x1, .) = (inf, inf, inf / inf = NaN) -> 2/3.
    np.testing.assert_array_equal(rmia_scores(target_x, refs_x, target_z, refs_z, a=1.0), [2 / 3, 2 / 3])


def test_zero_signals_and_negative_zero():
    # A target signal of 0 gives ratio 0 (or 0 / 0 = NaN): it dominates no population record.
    # -0.0 counts as +0.0 (else p / -0.0 would be -inf).
    target_x = np.array([0.0, 0.5, 0.0])
    refs_x = np.array([[0.5, -0.0, 0.0], [0.5, 0.0, -0.0]])
    target_z = np.array([-0.0, 0.5, 0.0])
    refs_z = np.array([[0.5, 0.5, -0.0], [0.5, 0.5, 0.0]])
    got = rmia_scores(target_x, refs_x, target_z, refs_z, in_mask=np.array([[True, False, True], [False, True, False]]))
    np.testing.assert_array_equal(got, dense_scores(np.abs(target_x), np.abs(refs_x), np.abs(target_z),
                                                    np.abs(refs_z), online=True))
    np.testing.assert_array_equal(got, [0.0, 2 / 3, 0.0])  # x1: inf vs (0, 1, NaN) -> z0, z1


def test_float_rounding_at_gamma_follows_the_float_quotient():
    """Where fl(rx / rz) rounds onto or across gamma, the score follows the float quotient (the definition)."""
    rng = np.random.default_rng(7)
    gamma = 0.7
    ratio_z = rng.uniform(0.5, 1.0, 400)
    # Audited ratios within a few ulps of gamma * ratio_z of random population records.
    near = gamma * ratio_z[rng.integers(0, 400, 3000)]
    ratio_x = near + np.spacing(near) * rng.integers(-3, 4, near.size)
    # Offline, a = 1, one reference of signal 1: P = 1 and ratio = p exactly.
    ones_x, ones_z = np.ones((1, ratio_x.size)), np.ones((1, ratio_z.size))
    got = rmia_scores(ratio_x, ones_x, ratio_z, ones_z, gamma=gamma)
    np.testing.assert_array_equal(got, dense_scores(ratio_x, ones_x, ratio_z, ones_z, online=False, gamma=gamma))
    # Neither the exact real comparison rx > gamma * rz nor its float64 product form gives these scores:
    # the case tells the definition apart from both.
    exact = [sum(Fraction(rx) > Fraction(gamma) * Fraction(rz) for rz in ratio_z) for rx in ratio_x[:60]]
    product = (ratio_x[:, None] > gamma * ratio_z[None, :]).sum(axis=1)
    assert not np.array_equal(np.array(exact) / ratio_z.size, got[:60])
    assert not np.array_equal(product / ratio_z.size, got)


probabilities = st.one_of(st.sampled_from([0.0, 0.125, 0.25, 0.5, 0.75, 1.0]),
                          st.floats(0.0, 1.0, allow_subnormal=False))


@st.composite
def rmia_cases(draw):
    online = draw(st.booleans())
    K = draw(st.sampled_from([2, 4, 6])) if online else draw(st.integers(1, 5))
    N, Z = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    matrix = lambda rows, cols: np.array(draw(st.lists(probabilities, min_size=rows * cols, max_size=rows * cols)),
                                         dtype=np.float64).reshape(rows, cols)
    target_x, refs_x, target_z, refs_z = matrix(1, N)[0], matrix(K, N), matrix(1, Z)[0], matrix(K, Z)
    if draw(st.booleans()):  # duplicate population records: tied ratios
        refs_z[:, Z // 2:] = refs_z[:, : Z - Z // 2]
        target_z[Z // 2:] = target_z[: Z - Z // 2]
    if online:
        seed = draw(st.integers(0, 2**32 - 1))
        in_mask = np.random.default_rng(seed).uniform(size=(K, N)).argsort(axis=0) < K // 2
        a = 1.0
    else:
        in_mask = None
        a = draw(st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0.0, 1.0)))
    gamma = draw(st.one_of(st.sampled_from([1.0, 0.5, 2.0]), st.floats(1e-3, 1e3)))
    return target_x, refs_x, target_z, refs_z, in_mask, a, gamma


@settings(max_examples=300, deadline=None)
@given(rmia_cases())
def test_equals_the_dense_definition(case):
    target_x, refs_x, target_z, refs_z, in_mask, a, gamma = case
    got = rmia_scores(target_x, refs_x, target_z, refs_z, in_mask=in_mask, a=a, gamma=gamma)
    want = dense_scores(target_x, refs_x, target_z, refs_z, online=in_mask is not None, a=a, gamma=gamma)
    np.testing.assert_array_equal(got, want)


def test_large_random_case_runs_in_parallel_and_equals_the_dense_definition():
    rng = np.random.default_rng(3)
    K, N, Z = 4, 3000, 2000
    refs_x, refs_z = rng.uniform(size=(K, N)), rng.uniform(size=(K, Z))
    target_x, target_z = rng.uniform(size=N) ** 3, rng.uniform(size=Z)
    target_z[::7] = target_z[0]  # ties
    for a in (0.0, 0.3):
        np.testing.assert_array_equal(rmia_scores(target_x, refs_x, target_z, refs_z, a=a),
                                      dense_scores(target_x, refs_x, target_z, refs_z, online=False, a=a))


def test_float32_signals_are_used_in_float64():
    rng = np.random.default_rng(5)
    refs_x, refs_z = rng.uniform(size=(3, 50)).astype(np.float32), rng.uniform(size=(3, 40)).astype(np.float32)
    target_x, target_z = rng.uniform(size=50).astype(np.float32), rng.uniform(size=40).astype(np.float32)
    np.testing.assert_array_equal(
        rmia_scores(target_x, refs_x, target_z, refs_z, a=0.4),
        rmia_scores(*(v.astype(np.float64) for v in (target_x, refs_x, target_z, refs_z)), a=0.4))


@pytest.mark.parametrize("change, match", [
    (dict(refs_x=REFS_X[:, :1]), r"refs_x has shape \(2, 1\) but target_x has 2 records"),
    (dict(refs_z=REFS_Z[:1]), "refs_z has 1 reference models but refs_x has 2"),
    (dict(refs_z=REFS_Z[:, :2]), r"refs_z has shape \(2, 2\) but target_z has 3"),
    (dict(target_z=TARGET_Z[:0], refs_z=REFS_Z[:, :0]), "target_z must not be empty"),
    (dict(refs_x=np.zeros((0, 2)), refs_z=np.zeros((0, 3))), "refs_x must not be empty"),
    (dict(target_x=[0.5, np.nan]), r"target_x must hold probabilities in \[0, 1\], found nan at \[1\]"),
    (dict(refs_z=[[0.5, 0.25, 0.5], [0.5, 1.5, 0.5]]),
     r"refs_z must hold probabilities in \[0, 1\], found 1.5.* at \[1, 1\]"),
    (dict(target_z=[0.5, -0.1, 0.1]), r"target_z must hold probabilities in \[0, 1\]"),
    (dict(refs_x=[[0.25, np.inf], [0.75, 0.5]]), "refs_x must hold probabilities"),
    (dict(target_x=[[0.5, 0.25]]), "target_x must be 1-D"),
    (dict(target_x=["a", "b"]), "target_x must be a real numeric array"),
    (dict(gamma=0.0), "gamma must be a finite number > 0"),
    (dict(gamma=-1.0), "gamma must be a finite number > 0"),
    (dict(gamma=np.inf), "gamma must be a finite number > 0"),
    (dict(gamma=np.nan), "gamma must be a finite number > 0"),
    (dict(gamma="1"), "gamma must be a real number"),
    (dict(a=1.5, in_mask=None), r"a must be in \[0, 1\]"),
    (dict(a=-0.1, in_mask=None), r"a must be in \[0, 1\]"),
    (dict(a=0.5), "a applies to offline RMIA only"),
    (dict(in_mask=IN_MASK.astype(int)), "in_mask must be a bool array"),
    (dict(in_mask=IN_MASK[:, :1]), r"in_mask must have the shape of refs_x \(2, 2\)"),
    (dict(in_mask=np.array([[True, True], [True, False]])), "record 0 is IN for 2 of the 2 references"),
])
def test_bad_input_names_the_argument(change, match):
    kwargs = dict(target_x=TARGET_X, refs_x=REFS_X, target_z=TARGET_Z, refs_z=REFS_Z, in_mask=IN_MASK)
    kwargs.update(change)
    with pytest.raises(ValueError, match=match):
        rmia_scores(kwargs.pop("target_x"), kwargs.pop("refs_x"), kwargs.pop("target_z"), kwargs.pop("refs_z"),
                    **kwargs)


def test_online_needs_an_even_number_of_references():
    refs_x, refs_z = np.full((3, 2), 0.5), np.full((3, 3), 0.5)
    with pytest.raises(ValueError, match="even number of references"):
        rmia_scores(TARGET_X, refs_x, TARGET_Z, refs_z, in_mask=np.zeros((3, 2), bool))
