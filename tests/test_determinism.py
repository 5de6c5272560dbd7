"""Same seed, same model: on any executor, whatever other code does to the global random generators.

Keras draws the default seeds of initialisers and Dropout layers, and shuffles
``fit``'s batches, from process-wide state; ``tfmia.training`` takes them from
private seeded streams instead (issue 14, item 7).  The first tests meddle
with the global generators at fixed points (no timing involved); the last
trains shadow models in-process, in a spawn process pool and on a Dask
LocalCluster whose worker runs two jobs at once, while a thread in every
process keeps drawing from and reseeding Python's ``random``, numpy's global
generator, ``tf.random`` and ``keras.random``.
"""

import concurrent.futures as cf
import contextlib
import itertools
import multiprocessing
import random
import threading
import time

import numpy as np
import pytest
from _models import digits

from tfmia._shuffled_batches import ShuffledBatches
from tfmia.shadow_training import train_shadow_models
from tfmia.training import FitConfig, build_model, fit_model

RECIPE = FitConfig(epochs=2, batch_size=16)


def dropout_mlp(meddle=None):
    """Dense-Dropout-Dense with Keras' default (unseeded) initialisers; ``meddle()`` runs before each layer is made.

    Module-level, so process pools and Dask workers unpickle it by reference to this module.
    """
    import keras

    makers = (lambda: keras.layers.Dense(32, activation="relu"), lambda: keras.layers.Dropout(0.3),
              lambda: keras.layers.Dense(10, activation="softmax"))
    layers = [keras.Input((64,))]
    for make_layer in makers:
        if meddle is not None:
            meddle()
        layers.append(make_layer())
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    return model


def reseed_all(seed: int) -> None:
    """What another job does when it starts: seed every global generator."""
    import keras

    keras.utils.set_random_seed(seed)


def draw_from_all(*, keras_random: bool = True) -> None:
    """Draw from every global generator: Python's, numpy's, TensorFlow's (and Keras' unseeded fallback)."""
    import keras
    import tensorflow as tf

    random.random()
    np.random.random()
    tf.random.uniform(())
    if keras_random:
        keras.random.normal(())


def meddling_dropout_mlp():
    """dropout_mlp, reseeding (differently each time) and drawing from the global generators before every layer.

    No unseeded ``keras.random`` draw here: in ``model_fn``'s own thread that
    is part of the model's recipe and draws from the build's private stream.
    """
    counter = itertools.count(1000)

    def meddle():
        reseed_all(next(counter))
        draw_from_all(keras_random=False)

    return dropout_mlp(meddle)


def _weights(model) -> list[np.ndarray]:
    """Every variable, the Dropout's seed-generator state and the optimiser's slots included."""
    return [np.asarray(v) for v in model.variables] + [np.asarray(v) for v in model.optimizer.variables]


def _assert_same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def _records(n=160):
    x, y = digits()
    return x[:n], y[:n]


def test_build_ignores_the_global_generators():
    plain = build_model(dropout_mlp, seed=11)
    meddled = build_model(meddling_dropout_mlp, seed=11)
    _assert_same(_weights(plain), _weights(meddled))
    seed_states = [np.asarray(layer.seed_generator.state) for layer in (plain.layers[1], meddled.layers[1])]
    np.testing.assert_array_equal(*seed_states)
    other = build_model(dropout_mlp, seed=12)
    assert not np.array_equal(_weights(plain)[0], _weights(other)[0])


def test_seeded_builds_and_audits_leave_the_global_generators_as_they_were():
    """Python's and numpy's global generators continue after a seeded build, and after a QMIA fit (a build and
    a seeded fit), exactly as if nothing had run: a user's data generator drawing from them is not replayed."""
    from tfmia.attacks import QuantileMIA

    x, y = _records()

    def next_draws():
        return random.random(), float(np.random.random())

    for work in (lambda: build_model(dropout_mlp, seed=3),
                 lambda: QuantileMIA(epochs=2, seed=4).fit(build_model(dropout_mlp, seed=5), x, y)):
        random.seed(123)
        np.random.seed(123)
        expected = next_draws()
        random.seed(123)
        np.random.seed(123)
        work()
        assert next_draws() == expected


def test_fit_ignores_the_global_generators():
    x, y = _records()
    trained = []
    for global_seed in (1, 2):
        model = build_model(dropout_mlp, seed=5)
        reseed_all(global_seed)  # what fit would otherwise shuffle from
        draw_from_all()
        fit_model(model, x, y, RECIPE, seed=5)
        trained.append(_weights(model))
    _assert_same(*trained)


def test_fit_epoch_by_epoch_equals_one_fit():
    """Epoch e's batches depend on (seed, e) only, so a fit resumed at initial_epoch=e continues the same run."""
    x, y = _records()
    recipe = FitConfig(epochs=3, batch_size=16)
    whole = build_model(dropout_mlp, seed=2)
    fit_model(whole, x, y, recipe, seed=9)
    stepwise = build_model(dropout_mlp, seed=2)
    for epoch in range(recipe.epochs):
        fit_model(stepwise, x, y, FitConfig(epochs=epoch + 1, batch_size=16, fit_kwargs={"initial_epoch": epoch}),
                  seed=9)
    _assert_same(_weights(whole), _weights(stepwise))
    reshuffled = build_model(dropout_mlp, seed=2)
    fit_model(reshuffled, x, y, recipe, seed=10)
    assert not np.array_equal(_weights(whole)[0], _weights(reshuffled)[0])


def test_seeded_fit_keeps_validation_split_and_sample_weight():
    x, y = _records(100)
    model = build_model(dropout_mlp, seed=3)
    untrained = [np.asarray(v) for v in model.trainable_variables]
    fit_model(model, x, y, FitConfig(epochs=1, batch_size=16, fit_kwargs={"sample_weight": np.zeros(100)}), seed=3)
    # Zero weights, zero gradients: Adam leaves the kernels and biases alone.
    _assert_same(untrained, [np.asarray(v) for v in model.trainable_variables])
    history = fit_model(model, x, y, FitConfig(epochs=1, batch_size=16, fit_kwargs={"validation_split": 0.3}), seed=3)
    # Keras' rule: the last 30 records (before shuffling) validate, the first 70 train.
    expected = model.evaluate(x[70:], y[70:], batch_size=100, verbose=0)
    np.testing.assert_allclose(history.history["val_loss"][-1], expected, rtol=1e-5)


def test_shuffled_batches_visit_every_record_once_per_epoch():
    x = np.arange(20.0).reshape(10, 2)
    y = np.arange(10)
    batches = ShuffledBatches((x, y), batch_size=4, seed=0, first_epoch=1, epochs=4)
    assert batches.steps_per_epoch == 3 and len(batches) == 9
    orders = []
    for epoch in range(3):
        steps = [batches[3 * epoch + step] for step in range(3)]
        assert [len(labels) for _, labels in steps] == [4, 4, 2]
        for features, labels in steps:
            np.testing.assert_array_equal(features, x[labels])  # x and y rows stay paired
        orders.append(np.concatenate([labels for _, labels in steps]))
        np.testing.assert_array_equal(np.sort(orders[-1]), y)
    assert len({tuple(order) for order in orders}) == 3  # a new order every epoch


def test_seeded_fit_refuses_what_it_cannot_shuffle_and_bad_seeds():
    x, y = _records(32)
    model = build_model(dropout_mlp, seed=0)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        fit_model(model, x, y, FitConfig(epochs=1, fit_kwargs={"steps_per_epoch": 1}), seed=0)
    with pytest.raises(ValueError, match="arrays"):
        fit_model(model, 3.0, y, FitConfig(epochs=1), seed=0)
    with pytest.raises(ValueError, match="same number of records"):
        fit_model(model, x, y[:31], FitConfig(epochs=1), seed=0)
    for bad in (-1, 2**32, 1.5):
        with pytest.raises(ValueError, match="seed"):
            build_model(dropout_mlp, seed=bad)


# --- executors, with another thread drawing random numbers in every process -------------------------------------

_NOISE_STOP = threading.Event()


def _draw_random_numbers(stop: threading.Event) -> None:
    for i in itertools.count():
        if stop.is_set():
            return
        if i % 20 == 0:
            reseed_all(i)
        draw_from_all()
        time.sleep(0.005)


def start_noise() -> None:
    """Start a daemon thread drawing from every global generator (a pool initializer / ``Client.run`` target)."""
    threading.Thread(target=_draw_random_numbers, args=(_NOISE_STOP,), daemon=True).start()


@contextlib.contextmanager
def noise_in_this_process():
    stop = threading.Event()
    thread = threading.Thread(target=_draw_random_numbers, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        client.run(start_noise)
        yield client


def _train(run_dir, executor=None):
    x, y = _records(400)
    shadows = train_shadow_models(dropout_mlp, x, y, n_shadows=3, fit=RECIPE, train_size=80, seed=21,
                                  run_dir=run_dir, executor=executor, progress=False)
    weights = []
    for shadow in shadows.models:
        model = build_model(dropout_mlp)
        model.load_weights(shadow.weights_path)
        weights.append([np.asarray(v) for v in model.weights])
    return [s.outputs for s in shadows.models], weights


def test_shadow_models_are_bit_identical_on_every_executor(tmp_path, dask_client):
    with noise_in_this_process():
        in_process = _train(tmp_path / "in_process")
    spawn = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=spawn, initializer=start_noise) as pool:
        pooled = _train(tmp_path / "pool", pool)
    on_dask = _train(tmp_path / "dask", dask_client.get_executor())
    for other in (pooled, on_dask):
        for outputs, other_outputs in zip(in_process[0], other[0]):
            np.testing.assert_array_equal(outputs, other_outputs)
        for weights, other_weights in zip(in_process[1], other[1]):
            _assert_same(weights, other_weights)
