"""The reference-model farm: a packed replica is the model Keras trains alone, and the farm is used safely.

Faithfulness: replica k of a pack, trained on its members, against
``fit_model(build_model(model_fn, seed=s_k), x[members_k], y[members_k], fit,
seed=s_k)``.  Both run the same float32 operations per replica with the same
batches, Dropout masks and update formulas; only summation orders differ (a
batched matmul or a masked sum where Keras calls other kernels).  So each
gradient entry differs by a few float32 ulps of the magnitudes summed: for
sums of at most n = 100 terms (batch <= 16, fan-in <= 72 here) the relative
error is at most n * 2**-24 ~ 6e-6.  A step of size at most ``eta`` (Adam:
``lr``; SGD: ``lr * |g| / (1 - momentum)``, |g| <= 10 for these losses and
inputs) then differs by at most 6e-6 * eta (Adam's m / sqrt(v) at most
doubles a relative error), and T steps by T times that, plus what the
differing weights feed back into later gradients -- second order over so few
steps.  The tests allow ``1e-4 * T * eta``, a margin of about 10; a
wrong batch, mask, slot or step count moves a weight by about eta per step.
Parameters whose true gradient is zero but whose float gradient is rounding
noise (a bias right before BatchNormalization) are avoided: Adam normalises
that noise into steps of size lr, which no summation order can reproduce.
"""

import functools
import json
import logging

import numpy as np
import pytest
from _models import digits, digits_mlp

from tfmia.attacks import LiRA
from tfmia.defenses import DPSGD, defended
from tfmia.farm import (NotPackable, PackedModel, check_packable, choose_pack_size, estimate_pack_bytes,
                        packing_obstacle)
from tfmia.features.predictions import predict
from tfmia.shadow_training import SequentialExecutor, shadow_splits, train_shadow_models
from tfmia.training import FitConfig, build_model, fit_model, load_weights

SEEDS = (11, 12, 13)


def _optimizer(name: str):
    import keras

    return {"adam": keras.optimizers.Adam(1e-2), "sgd": keras.optimizers.SGD(0.05, momentum=0.5),
            "nesterov": keras.optimizers.SGD(0.05, momentum=0.5, nesterov=True),
            "rmsprop": keras.optimizers.RMSprop(1e-2, momentum=0.3, centered=True),
            "adagrad": keras.optimizers.Adagrad(0.1),
            "adamw": keras.optimizers.AdamW(1e-2, amsgrad=True, clipnorm=0.5)}[name]


def dense_net(optimizer="adam", dropout=0.0, batch_norm=False, l2=0.0):
    import keras

    regularizer = keras.regularizers.L2(l2) if l2 else None
    layers = [keras.Input((6,)), keras.layers.Dense(12, activation="relu", kernel_regularizer=regularizer)]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(3, activation="softmax", kernel_regularizer=regularizer))
    model = keras.Sequential(layers)
    model.compile(_optimizer(optimizer), "sparse_categorical_crossentropy")
    return model


def conv_net(optimizer="adam", dropout=0.0, batch_norm=False, l2=0.0):
    import keras

    regularizer = keras.regularizers.L2(l2) if l2 else None
    layers = [keras.Input((8, 8, 2)), keras.layers.Conv2D(4, 3, activation="relu", kernel_regularizer=regularizer),
              keras.layers.MaxPooling2D(),
              keras.layers.Conv2D(5, 2, padding="same", use_bias=not batch_norm, kernel_regularizer=regularizer)]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    layers += [keras.layers.ReLU(), keras.layers.Flatten()]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(3))
    model = keras.Sequential(layers)
    model.compile(_optimizer(optimizer), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _records(shape, n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)).astype(np.float32), rng.integers(0, 3, n)


def _members(n):
    """Member sets of different sizes (LiRA's are): 23, 30 and 19 records -> 3, 4 and 3 steps per epoch of 8."""
    return [np.arange(0, 23), np.arange(n - 30, n), np.random.default_rng(1).permutation(n)[:19]]


def _step_size(model) -> float:
    """The largest step one update of ``model``'s optimiser takes (module docstring).

    Adam(W), Adagrad: about lr; RMSprop: lr / sqrt(1 - rho) on its first
    step, over (1 - momentum); SGD: lr |g| / (1 - momentum) with |g| <= 10.
    """
    optimizer = model.optimizer
    kind, lr = type(optimizer).__name__, float(optimizer.learning_rate.numpy())
    if kind == "SGD":
        return lr * 10 / (1 - optimizer.momentum)
    if kind == "RMSprop":
        return lr / np.sqrt(1 - optimizer.rho) / (1 - optimizer.momentum)
    return lr


def _assert_replicas_match_keras(model_fn, x, y, members, fit):
    pack = PackedModel.from_model_fn(model_fn, SEEDS)
    pack.fit_members(x, y, members, fit)
    outputs = pack.predict_members(x, [np.arange(len(x))] * len(SEEDS))
    for k, seed in enumerate(SEEDS):
        alone = build_model(model_fn, seed=seed)
        fit_model(alone, x[members[k]], y[members[k]], fit, seed=seed)
        steps = int(alone.optimizer.iterations.numpy())
        assert pack.steps[k] == steps == fit.epochs * -(-len(members[k]) // fit.batch_size)
        exported = build_model(model_fn, seed=seed)
        pack.export_replica(k, exported)
        tolerance = 1e-4 * steps * _step_size(alone)
        for mine, theirs in zip(exported.weights, alone.weights):
            np.testing.assert_allclose(np.asarray(mine), np.asarray(theirs), rtol=1e-5, atol=tolerance,
                                       err_msg=f"replica {k}: {theirs.path}")
        for mine, theirs in zip(exported.optimizer.variables, alone.optimizer.variables):
            np.testing.assert_allclose(np.asarray(mine), np.asarray(theirs), rtol=1e-5, atol=tolerance,
                                       err_msg=f"replica {k}: {theirs.path}")
        np.testing.assert_allclose(outputs[k], predict(alone, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "nesterov", "rmsprop", "adagrad", "adamw"])
def test_dense_replicas_match_keras_for_each_optimizer(optimizer):
    x, y = _records((6,))
    _assert_replicas_match_keras(functools.partial(dense_net, optimizer), x, y, _members(len(x)),
                                 FitConfig(epochs=2, batch_size=8))


@pytest.mark.parametrize("settings", [{"dropout": 0.3}, {"batch_norm": True}, {"l2": 0.01},
                                      {"dropout": 0.2, "batch_norm": True, "l2": 0.01, "optimizer": "sgd"}])
def test_dense_replicas_match_keras_with_dropout_batch_norm_and_l2(settings):
    x, y = _records((6,))
    _assert_replicas_match_keras(functools.partial(dense_net, **settings), x, y, _members(len(x)),
                                 FitConfig(epochs=2, batch_size=8))


@pytest.mark.parametrize("settings", [{}, {"optimizer": "sgd"}, {"dropout": 0.3, "batch_norm": True, "l2": 0.01}])
def test_conv_replicas_match_keras(settings):
    x, y = _records((8, 8, 2))
    _assert_replicas_match_keras(functools.partial(conv_net, **settings), x, y, _members(len(x)),
                                 FitConfig(epochs=2, batch_size=8))


def test_unshuffled_fits_match_keras():
    x, y = _records((6,))
    _assert_replicas_match_keras(dense_net, x, y, _members(len(x)), FitConfig(epochs=2, batch_size=8, shuffle=False))


def test_dropout_masks_are_keras_draws_bit_for_bit_also_in_a_padded_batch():
    """A pack's Dropout at replica step t draws what the replica's own Dropout layer draws at its t-th call."""
    import keras
    import tensorflow as tf

    from tfmia.farm.layers import _StepContext
    from tfmia.farm.tensors import _Batches

    def dropout_only():
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dropout(0.4)])
        model.compile("sgd", "mse")
        return model

    pack = PackedModel.from_model_fn(dropout_only, SEEDS)
    ones = np.ones((3, 7, 5), np.float32)
    steps = np.array([0, 4, 9])
    context = _StepContext(rows=tf.ones((3, 7)), steps=tf.constant(steps), updates=[])
    packed = pack.packed_layers[0].forward(_Batches(stacked=tf.constant(ones)), context).stacked().numpy()
    for k, seed in enumerate(SEEDS):
        layer = build_model(dropout_only, seed=seed).layers[0]
        for _ in range(steps[k]):
            layer(ones[k], training=True)  # advances its seed generator as k's earlier steps did
        short = layer(ones[k][:4], training=True).numpy()  # a short batch of 4: the first rows of the padded 7
        np.testing.assert_array_equal(packed[k][:4], short)


def test_replicas_that_finish_early_stay_as_they_were():
    """Replica 2 has 1 step per epoch, replica 0 four: after its steps, replica 2's update is masked."""
    x, y = _records((6,))
    fit = FitConfig(epochs=3, batch_size=8)
    members = [np.arange(32), np.arange(16), np.arange(5)]
    pack = PackedModel.from_model_fn(dense_net, SEEDS)
    pack.fit_members(x, y, members, fit)
    assert list(pack.steps) == [12, 6, 3]
    alone = build_model(dense_net, seed=SEEDS[2])
    fit_model(alone, x[:5], y[:5], fit, seed=SEEDS[2])
    exported = build_model(dense_net, seed=SEEDS[2])
    pack.export_replica(2, exported)
    for mine, theirs in zip(exported.weights, alone.weights):
        np.testing.assert_allclose(np.asarray(mine), np.asarray(theirs), rtol=1e-5, atol=1e-4 * 3 * _step_size(alone))


# -- what cannot be packed ---------------------------------------------------------------------------------------

def _custom_loss(y_true, y_pred):
    import keras

    return keras.losses.sparse_categorical_crossentropy(y_true, y_pred)


def _functional_chain():
    import keras

    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(4, activation="relu")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def _variant(kind):
    import keras

    if kind == "global_clipnorm":
        model = dense_net()
        model.compile(keras.optimizers.Adam(1e-2, global_clipnorm=1.0), "sparse_categorical_crossentropy")
    elif kind == "custom_loss":
        model = dense_net()
        model.compile("adam", _custom_loss)
    elif kind == "schedule":
        model = dense_net()
        model.compile(keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(1e-2, 10, 0.9)),
                      "sparse_categorical_crossentropy")
    elif kind == "two_inputs":
        a, b = keras.Input((3,)), keras.Input((3,))
        model = keras.Model([a, b], keras.layers.Dense(3, activation="softmax")(keras.layers.Concatenate()([a, b])))
        model.compile("adam", "sparse_categorical_crossentropy")
    elif kind == "unsupported_layer":
        model = keras.Sequential([keras.Input((6,)), keras.layers.GaussianNoise(0.1), keras.layers.Dense(3)])
        model.compile("adam", "mse")
    elif kind == "frozen":
        model = dense_net()
        model.layers[0].trainable = False
        model.compile("adam", "sparse_categorical_crossentropy")
    elif kind == "constraint":
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, kernel_constraint="max_norm")])
        model.compile("adam", "mse")
    elif kind == "residual":
        inputs = keras.Input((6,))
        hidden = keras.layers.Dense(6)(inputs)
        model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Add()([inputs, hidden])))
        model.compile("adam", "mse")
    elif kind == "defended":
        model = build_model(defended(dense_net, DPSGD(1.0, 0.5)))
    return model


@pytest.mark.parametrize("kind, reason", [
    ("global_clipnorm", "global_clipnorm"), ("custom_loss", "sample-wise losses"), ("schedule", "schedule"),
    ("two_inputs", "2 inputs"), ("unsupported_layer", "GaussianNoise is not supported"), ("frozen", "frozen"),
    ("constraint", "constrains"), ("residual", "not a chain"), ("defended", "DPSGDModel .*its own train_step"),
])
def test_what_couples_replicas_or_is_unknown_is_refused(kind, reason):
    model = _variant(kind)
    assert packing_obstacle(model) is not None
    with pytest.raises(NotPackable, match=reason):
        check_packable(model)
    assert packing_obstacle(dense_net()) is None
    assert packing_obstacle(_functional_chain()) is None
    assert "fit_kwargs" in packing_obstacle(dense_net(), FitConfig(epochs=1, fit_kwargs={"class_weight": {0: 2.0}}))


def test_auto_falls_back_with_a_log_line_and_true_refuses(caplog):
    x, y = digits()
    recipe = defended(functools.partial(digits_mlp, 16), DPSGD(1.0, 0.5))
    kwargs = dict(n_shadows=2, fit=FitConfig(epochs=1, batch_size=32), train_size=40, seed=1, progress=False)
    with caplog.at_level(logging.WARNING, logger="tfmia.farm"):
        shadows = train_shadow_models(recipe, x[:200], y[:200], **kwargs)
    assert shadows.trained == [0, 1]
    assert "one after another" in caplog.text and "DPSGDModel" in caplog.text
    with pytest.raises(NotPackable, match="packed=True, but this model cannot be packed: .*DPSGDModel"):
        train_shadow_models(recipe, x[:200], y[:200], packed=True, **kwargs)
    with pytest.raises(ValueError, match="packed must be True, False or 'auto'"):
        train_shadow_models(digits_mlp, x[:200], y[:200], packed="yes", **kwargs)


def seed_dependent_mlp():
    """A model_fn that is not a recipe: its width follows numpy's global generator (seeded per build)."""
    import keras

    width = int(np.random.default_rng(np.random.randint(2**31)).integers(4, 40))
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(width, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def test_replicas_that_differ_in_architecture_are_refused():
    x, y = digits()
    with pytest.raises(ValueError, match="replicas that differ in architecture: replica 1 differs from replica 0"):
        train_shadow_models(seed_dependent_mlp, x[:200], y[:200], n_shadows=2, fit=FitConfig(epochs=1),
                            train_size=40, progress=False)


def test_memory_that_will_not_fit_is_refused_before_building():
    model = build_model(dense_net, seed=0)
    fit = FitConfig(epochs=1, batch_size=8)
    one = estimate_pack_bytes(model, 1, 8)
    assert choose_pack_size(model, fit, n_models=10, memory_budget=10 * one) == 10
    assert choose_pack_size(model, fit, n_models=10, memory_budget=4 * one + 100, data_bytes=100) == 4
    with pytest.raises(ValueError, match="pack_size=5: a pack of 5 models needs about .* more than the memory budget"):
        choose_pack_size(model, fit, n_models=10, pack_size=5, memory_budget=4 * one)
    with pytest.raises(ValueError, match="packed=True, but a pack of one model needs about"):
        choose_pack_size(model, fit, n_models=10, packed=True, memory_budget=one // 2)
    assert choose_pack_size(model, fit, n_models=10, packed="auto", memory_budget=one // 2) is None
    x, y = digits()
    with pytest.raises(ValueError, match="memory budget"):
        train_shadow_models(digits_mlp, x[:200], y[:200], n_shadows=2, fit=fit, train_size=40, packed=True,
                            memory_budget=1000, progress=False)


def test_memory_estimate_counts_weights_slots_and_activations():
    """dense_net: 6-12-3 with Adam (2 slots): P = T = 6*12 + 12 + 12*3 + 3 = 123 weights, A = 12 + 3 outputs."""
    model = build_model(dense_net, seed=0)
    per_replica = 123 * 2 + 123 * (2 + 2) + 8 * 15 * 3
    assert estimate_pack_bytes(model, 1, 8) == 4 * per_replica
    assert estimate_pack_bytes(model, 7, 8) == 7 * 4 * per_replica


@pytest.mark.parametrize("n_replicas, batch_size, match", [(-3, 8, "n_replicas"), (0, 8, "n_replicas"),
                                                           (2, 0, "batch_size"), (2.5, 8, "n_replicas")])
def test_memory_estimate_refuses_bad_counts(n_replicas, batch_size, match):
    with pytest.raises(ValueError, match=match):
        estimate_pack_bytes(build_model(dense_net, seed=0), n_replicas, batch_size)


def test_memory_estimate_refuses_a_model_it_cannot_pack():
    import keras

    model = build_model(dense_net, seed=0)
    model.compile(keras.optimizers.Nadam(), "sparse_categorical_crossentropy")
    with pytest.raises(NotPackable, match="cannot pack this model: .*Nadam"):
        estimate_pack_bytes(model, 2, 8)


def test_lira_needs_an_even_number_of_reference_models_of_at_least_two():
    fit = FitConfig(epochs=1)
    with pytest.raises(ValueError, match="n_models must be >= 2"):
        LiRA(digits_mlp, fit=fit, n_models=1, online=True)
    with pytest.raises(ValueError, match="n_models must be even"):
        LiRA(digits_mlp, fit=fit, n_models=5, online=True)
    with pytest.raises(ValueError, match="even n_shadows >= 2 .* got 3"):
        shadow_splits(100, n_shadows=3, train_size=None, scheme="lira", seed=0)


# -- train_shadow_models, packed ------------------------------------------------------------------------------------

class RecordingExecutor(SequentialExecutor):
    """The in-process executor, remembering what it ran."""

    def __init__(self):
        self.jobs = []

    def submit(self, fn, /, *args, **kwargs):
        self.jobs.append(fn.__name__)
        return super().submit(fn, *args, **kwargs)


def test_packed_shadow_models_match_sequential_ones_and_their_files_load(tmp_path):
    x, y = digits()
    small = functools.partial(digits_mlp, 16)
    fit = FitConfig(epochs=2, batch_size=32)
    kwargs = dict(n_shadows=4, fit=fit, scheme="lira", seed=5, progress=False, logits=True)
    executor = RecordingExecutor()
    packed = train_shadow_models(small, x[:300], y[:300], run_dir=tmp_path / "packed", executor=executor,
                                 pack_size=2, **kwargs)
    assert executor.jobs == ["_pack_job", "_pack_job"]
    sequential = train_shadow_models(small, x[:300], y[:300], packed=False, **kwargs)
    np.testing.assert_array_equal(packed.membership(), sequential.membership())
    for mine, theirs in zip(packed.models, sequential.models):
        assert mine.is_logits and theirs.is_logits
        np.testing.assert_allclose(mine.outputs, theirs.outputs, rtol=1e-4, atol=1e-4)
        model = load_weights(build_model(small), mine.weights_path)  # with its optimiser state, as trajectories do
        np.testing.assert_allclose(predict(model, x[mine.query_indices], logits=True), mine.outputs,
                                   rtol=1e-5, atol=1e-5)
        assert model.optimizer.iterations.numpy() == fit.epochs * -(-mine.in_indices.size // fit.batch_size)


def test_packs_resume_whole_and_runs_do_not_mix_packed_and_sequential(tmp_path):
    x, y = digits()
    kwargs = dict(n_shadows=4, fit=FitConfig(epochs=1, batch_size=32), train_size=40, seed=2, progress=False,
                  run_dir=tmp_path, pack_size=2)
    first = train_shadow_models(digits_mlp, x[:400], y[:400], **kwargs)
    assert first.trained == [0, 1, 2, 3]
    (tmp_path / "shadow_0003.npz").unlink()  # the second pack was interrupted after storing model 2
    stamp = (tmp_path / "shadow_0000.npz").stat().st_mtime_ns
    again = train_shadow_models(digits_mlp, x[:400], y[:400], **kwargs)
    assert again.resumed == [0, 1] and again.trained == [2, 3]
    assert (tmp_path / "shadow_0000.npz").stat().st_mtime_ns == stamp
    for mine, theirs in zip(again.models, first.models):
        np.testing.assert_array_equal(mine.outputs, theirs.outputs)  # the same pack, the same bits
    with pytest.raises(ValueError, match=r"differs in: packing"):
        train_shadow_models(digits_mlp, x[:400], y[:400], **{**kwargs, "pack_size": 4})
    with pytest.raises(ValueError, match=r"differs in: packing"):
        train_shadow_models(digits_mlp, x[:400], y[:400], packed=False, **kwargs)


def test_a_pack_size_chosen_for_memory_is_taken_from_the_run_directory_on_resume(tmp_path):
    """Without an explicit pack_size the size follows the memory budget, which changes with the machine's
    load; a rerun must resume with the stored size rather than be refused for a size it did not choose."""
    x, y = digits()
    fit = FitConfig(epochs=1, batch_size=32)
    one = estimate_pack_bytes(build_model(digits_mlp), 1, fit.batch_size)
    kwargs = dict(n_shadows=4, fit=fit, train_size=40, seed=2, progress=False, run_dir=tmp_path)
    data_bytes = 2 * x[:400].size * 4 + y[:400].nbytes  # what train_shadow_models counts besides the pack
    first = train_shadow_models(digits_mlp, x[:400], y[:400], memory_budget=2 * one + data_bytes, **kwargs)
    assert json.loads((tmp_path / "run.json").read_text())["config"]["packing"] == {"pack_size": 2}
    again = train_shadow_models(digits_mlp, x[:400], y[:400], memory_budget=64 * one + 10**6, **kwargs)
    assert again.resumed == [0, 1, 2, 3] and again.trained == []
    for mine, theirs in zip(again.models, first.models):
        np.testing.assert_array_equal(mine.outputs, theirs.outputs)


def test_a_run_trained_one_after_another_resumes_so_under_packed_auto(tmp_path):
    x, y = digits()
    kwargs = dict(n_shadows=2, fit=FitConfig(epochs=1, batch_size=32), train_size=40, seed=2, progress=False,
                  run_dir=tmp_path)
    train_shadow_models(digits_mlp, x[:400], y[:400], packed=False, **kwargs)
    again = train_shadow_models(digits_mlp, x[:400], y[:400], **kwargs)  # packed="auto"
    assert again.resumed == [0, 1] and again.trained == []
    with pytest.raises(ValueError, match=r"differs in: packing"):
        train_shadow_models(digits_mlp, x[:400], y[:400], packed=True, **kwargs)


def test_a_second_fit_continues_each_replica_from_its_own_step():
    """After a fit the replicas have taken different numbers of steps; Adam's bias correction and the Dropout
    draws of a second fit continue from each replica's own count, as a second ``fit_model`` does."""
    x, y = _records((6,))
    fit = FitConfig(epochs=1, batch_size=8)
    members = _members(len(x))
    model_fn = functools.partial(dense_net, dropout=0.3)
    pack = PackedModel.from_model_fn(model_fn, SEEDS)
    for _ in range(2):
        pack.fit_members(x, y, members, fit)
    for k, seed in enumerate(SEEDS):
        alone = build_model(model_fn, seed=seed)
        for _ in range(2):
            fit_model(alone, x[members[k]], y[members[k]], fit, seed=seed)
        exported = build_model(model_fn, seed=seed)
        pack.export_replica(k, exported)
        steps = int(alone.optimizer.iterations.numpy())
        assert pack.steps[k] == steps
        for mine, theirs in zip(exported.weights, alone.weights):
            np.testing.assert_allclose(np.asarray(mine), np.asarray(theirs), rtol=1e-5,
                                       atol=1e-4 * steps * _step_size(alone))


def sequence_net(optimizer="adam"):
    """Conv1D, a Dense applied to every time step (rank-3 input), average pooling over time."""
    import keras

    model = keras.Sequential([keras.Input((7, 3)), keras.layers.Conv1D(4, 2, activation="tanh"),
                              keras.layers.Dense(5, activation="relu"), keras.layers.GlobalAveragePooling1D(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(_optimizer(optimizer), keras.losses.SparseCategoricalCrossentropy())
    return model


def test_sequence_replicas_match_keras():
    x, y = _records((7, 3))
    _assert_replicas_match_keras(sequence_net, x, y, _members(len(x)), FitConfig(epochs=2, batch_size=8))


def test_functional_chain_replicas_match_keras():
    x, y = _records((6,))
    _assert_replicas_match_keras(_functional_chain, x, y, _members(len(x)), FitConfig(epochs=2, batch_size=8))
