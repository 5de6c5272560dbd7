"""Per-sample gradient statistics against a record-at-a-time GradientTape + numpy/scipy reference."""

import numpy as np
import pytest
from scipy import stats

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from tfmia.features.gradients import COLUMNS, GradientStatsExtractor, gradient_statistics  # noqa: E402


def small_cnn(activation=None):
    """Conv + Dense classifier with a weight regulariser and an activity regulariser."""
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            keras.layers.Conv2D(3, 3, activation="relu", kernel_regularizer=keras.regularizers.l2(1e-2)),
            keras.layers.Flatten(),
            keras.layers.Dense(5, activation="tanh", activity_regularizer=keras.regularizers.l1(1e-2)),
            keras.layers.Dense(3, activation=activation),
        ]
    )


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((7, 6, 6, 1), dtype=np.float32), rng.integers(0, 3, 7)


def reference(model, x, y, *, wrt, from_logits, regularization=True):
    """Each record's loss gradient by GradientTape on that record alone, concatenated, then numpy/scipy."""
    rows = []
    for i in range(len(x)):
        xi = tf.constant(x[i : i + 1])
        with tf.GradientTape() as tape:
            tape.watch(xi)
            out = model(xi, training=False)
            if from_logits:
                loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y[i : i + 1], logits=out)[0]
            else:
                loss = -tf.math.log(out[0, int(y[i])])
            if regularization:
                loss += tf.add_n(model.losses)
        sources = xi if wrt == "input" else model.trainable_variables
        grads = tape.gradient(loss, sources)
        g = np.concatenate([np.ravel(grads)] if wrt == "input" else [a.numpy().ravel() for a in grads]).astype(np.float64)
        a = np.abs(g)
        rows.append([a.sum(), np.sqrt(g @ g), a.min(), a.max(), g.mean(), stats.skew(g), stats.kurtosis(g)])
    return np.array(rows)


def assert_stats_close(ours, ref):
    """The seven statistics of two float32 evaluations of the same per-sample gradients.

    Two TensorFlow paths (batched vs record at a time, one graph vs one per variable)
    give gradients a few float32 ulps apart, delta ~ 1e-6 relative.  Sums, norms, min
    and max move by about delta relative; the mean, skewness and kurtosis are
    differences of such sums, so they move by delta times the magnitudes that cancel,
    bounded here by the column's largest value: rtol 1e-4 (100 delta) plus atol
    1e-5 x the column's scale (10 delta) for values that cancel to near 0.
    """
    assert ours.shape == ref.shape
    for j, name in enumerate(COLUMNS):
        scale = np.max(np.abs(ref[:, j]))
        np.testing.assert_allclose(ours[:, j], ref[:, j], rtol=1e-4, atol=1e-5 * scale + 1e-12, err_msg=name)


@pytest.mark.parametrize("activation, wrt", [(None, "weights"), ("softmax", "weights"), (None, "input"), ("softmax", "input")])
def test_statistics_match_record_at_a_time_reference(data, activation, wrt):
    x, y = data
    model = small_cnn(activation)
    result = gradient_statistics(model, x, y, wrt=wrt, batch_size=3)  # 3 batches, the last one padded
    assert len(model.losses) == 2  # the check covers regularisation: weight + activity
    assert_stats_close(result.values, reference(model, x, y, wrt=wrt, from_logits=activation is None))
    assert result.columns == tuple(f"{wrt}_{c}" for c in COLUMNS)
    np.testing.assert_array_equal(result.labels, y)
    expected_size = x[0].size if wrt == "input" else sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert result.size == expected_size


def test_without_regularization(data):
    x, y = data
    model = small_cnn()
    result = gradient_statistics(model, x, y, regularization=False, batch_size=7)
    assert_stats_close(result.values, reference(model, x, y, wrt="weights", from_logits=True, regularization=False))


def test_variable_groups_and_datasets_give_the_same_statistics(data):
    x, y = data
    model = small_cnn()
    whole = gradient_statistics(model, x, y, batch_size=4).values
    # a budget below every variable: one forward/backward pass per variable
    grouped = GradientStatsExtractor(model, batch_size=4, max_gradient_bytes=8)
    assert len(grouped._functions) == len(model.trainable_variables)
    # Separate passes per variable are other TensorFlow graphs: their float32 gradients may differ in
    # the last bits, so they are held to the float32 tolerance of the record-at-a-time reference.
    split = gradient_statistics(model, x, y, batch_size=4, max_gradient_bytes=8).values
    assert_stats_close(split, whole)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(5)  # re-split to batches of 4
    assert_stats_close(gradient_statistics(model, dataset, batch_size=4).values, whole)


def test_time_is_accounted(data):
    x, y = data
    result = gradient_statistics(small_cnn(), x, y, batch_size=7)
    assert result.gradient_seconds > 0 and result.statistics_seconds > 0


def test_bad_input(data):
    x, y = data
    model = small_cnn()
    with pytest.raises(ValueError, match="wrt"):
        gradient_statistics(model, x, y, wrt="bias")
    with pytest.raises(ValueError, match="x has records of shape"):
        gradient_statistics(model, np.zeros((2, 7, 7, 1), np.float32), y[:2])
    with pytest.raises(ValueError, match="x has records of shape"):
        gradient_statistics(model, np.zeros((2, 6, 6, 3), np.float32), y[:2])
    with pytest.raises(ValueError, match="y must be < 3"):
        gradient_statistics(model, x, np.full(len(x), 3))
    with pytest.raises(ValueError, match="y .*required"):
        gradient_statistics(model, x)
    with pytest.raises(ValueError, match="x has 7 records but y has 2"):
        gradient_statistics(model, x, y[:2])
    with pytest.raises(ValueError, match="batch_size"):
        gradient_statistics(model, x, y, batch_size=0)
    with pytest.raises(ValueError, match="device"):
        gradient_statistics(model, x, y, device="tpu")
