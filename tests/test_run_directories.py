"""Run-directory integrity: what identifies a run, atomic claims, killed writers' leftovers, file modes."""

import functools
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from _models import digits, digits_logits_mlp, digits_mlp
from _racers import claim_in_turn

from tfmia._serialization import atomic_write_text, save_npz
from tfmia.defenses import DPSGD, MixupMMD, defended
from tfmia.runs import RunDirectory, describe_fit, describe_model_fn
from tfmia.shadow_training import train_shadow_models
from tfmia.training import FitConfig, build_model, save_weights_atomically

TESTS = Path(__file__).resolve().parent
ONE_EPOCH = FitConfig(epochs=1, batch_size=16)
CHILD_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join(
    [str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")])}


def _shadows(model_fn, run_dir, **kwargs):
    x, y = digits()
    return train_shadow_models(model_fn, x[:120], y[:120], n_shadows=1, fit=ONE_EPOCH, train_size=40, seed=1,
                               run_dir=run_dir, progress=False, **kwargs)


def _hidden_files(folder: Path) -> list[str]:
    """Temporaries are hidden files; a finished run directory holds none."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# -- what identifies a run --------------------------------------------------------------------------------------

def test_defended_model_fns_with_other_bases_or_defences_are_refused(tmp_path):
    mlp_32, mlp_64 = functools.partial(digits_mlp, 32), functools.partial(digits_mlp, 64)
    first = _shadows(defended(mlp_32, DPSGD(1.0, 0.5)), tmp_path)
    assert first.trained == [0]
    with pytest.raises(ValueError, match=r"different configuration \(differs in: model\.architecture, "
                                         r"model\.defense\.config\.l2_norm_clip, model\.defense\.config\."
                                         r"noise_multiplier, model\.weights\)"):
        _shadows(defended(mlp_64, DPSGD(9.0, 20.0)), tmp_path)
    with pytest.raises(ValueError, match=r"differs in: model\.defense\.config\.noise_multiplier\)"):
        _shadows(defended(mlp_32, DPSGD(1.0, 0.6)), tmp_path)
    x, y = digits()
    validation = (x[200:260], y[200:260])
    with pytest.raises(ValueError, match=r"differs in: model\.architecture, model\.defense\.config\.alpha, "):
        _shadows(defended(mlp_32, MixupMMD(validation)), tmp_path)  # another defence class: another train_step
    with pytest.raises(ValueError, match=r"differs in: model\.architecture, model\.defense\)"):
        _shadows(mlp_32, tmp_path)  # the same graph, undefended (packed="auto" follows the stored one-by-one run)
    again = _shadows(defended(mlp_32, DPSGD(1.0, 0.5)), tmp_path)
    assert again.trained == [] and again.resumed == [0]
    np.testing.assert_array_equal(again.models[0].outputs, first.models[0].outputs)


def _mlp_factory(hidden: int, activation_scale: float):
    """A model_fn made by a factory: every one it makes is named ``_mlp_factory.<locals>.model_fn``."""

    def scaled_relu(v):
        import keras

        return keras.activations.relu(v) * activation_scale

    def model_fn():
        import keras

        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(hidden, activation=scaled_relu),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy")
        return model

    return model_fn


def test_closures_and_lambdas_that_share_a_name_are_told_apart():
    describe = functools.partial(describe_model_fn, seed=0)
    assert describe(_mlp_factory(8, 1.0)) == describe(_mlp_factory(8, 1.0))
    # Same weights shapes, same Keras config up to the name of the activation: only the captured value differs.
    narrow, scaled = describe(_mlp_factory(8, 1.0)), describe(_mlp_factory(8, 2.0))
    assert narrow["architecture"] != scaled["architecture"] and narrow["weights"] == scaled["weights"]
    assert describe(_mlp_factory(8, 1.0))["weights"] != describe(_mlp_factory(9, 1.0))["weights"]
    fns = [lambda: digits_mlp(32), lambda: digits_mlp(64), lambda: digits_logits_mlp(32)]
    descriptions = [describe(fn) for fn in fns]
    assert descriptions[0]["architecture"] != descriptions[1]["architecture"]
    assert descriptions[0]["compile"] != descriptions[2]["compile"]  # softmax + crossentropy vs logits loss


def test_the_description_ignores_keras_names():
    """(That it is the same in a fresh process: the concurrent-writers test below, whose writers must agree.)"""
    before = describe_model_fn(defended(digits_mlp, DPSGD(1.0, 0.5)), seed=3)
    for _ in range(2):  # moves Keras's automatic name counters on (dense_7, adam_3, ...)
        build_model(digits_mlp)
        build_model(defended(digits_logits_mlp, DPSGD(2.0, 1.0)))
    assert describe_model_fn(defended(digits_mlp, DPSGD(1.0, 0.5)), seed=3) == before


class _Subclassed:
    """A subclassed Keras model whose constructor takes an object: Keras cannot serialise its configuration."""

    @staticmethod
    def model_fn():
        import keras

        class Opaque(keras.Model):
            outputs_are_logits = False  # a subclassed model declares its outputs (its layers do not say)

            def __init__(self, table, **kwargs):
                super().__init__(**kwargs)
                self.table = table
                self.dense = keras.layers.Dense(10, activation="softmax")

            def call(self, x):
                return self.dense(x)

        model = Opaque(object())
        model(np.zeros((1, 64), np.float32))  # builds it
        model.compile("adam", "sparse_categorical_crossentropy")
        return model


def test_a_model_that_cannot_be_described_is_refused_with_its_name(tmp_path):
    with pytest.raises(ValueError, match=r"model 'opaque': a run directory cannot tell what the model is: its "
                                         r"configuration does not serialise .*get_config.*run_dir=None"):
        _shadows(_Subclassed.model_fn, tmp_path)
    assert not (tmp_path / "run.json").exists()
    _shadows(_Subclassed.model_fn, None)  # without a run directory it trains


def test_fit_recipes_are_described_by_value():
    x, y = digits()
    base = np.asarray(x[:300], np.float32)
    changed = base.copy()
    changed[150, 30] += 1.0  # hidden in the middle of the array: repr (and FitConfig.to_dict) elides it
    fit_a = FitConfig(epochs=1, fit_kwargs={"validation_data": (base, y[:300])})
    fit_b = FitConfig(epochs=1, fit_kwargs={"validation_data": (changed, y[:300])})
    assert fit_a.to_dict() == fit_b.to_dict()
    assert describe_fit(fit_a) != describe_fit(fit_b)
    same = FitConfig(epochs=1, fit_kwargs={"validation_data": (base.copy(), y[:300])})
    assert describe_fit(fit_a) == describe_fit(same)
    with pytest.raises(ValueError, match=r"fit\.fit_kwargs\['class_weight'\]: a run directory cannot tell"):
        describe_fit(FitConfig(epochs=1, fit_kwargs={"class_weight": object()}))


def test_a_distillation_into_another_student_is_refused(tmp_path):
    import tfmia

    x, _ = digits()
    teacher = build_model(digits_mlp, seed=0)
    settings = {"epochs": 1, "batch_size": 16, "run_dir": tmp_path, "progress": False}
    tfmia.distill(teacher, _mlp_factory(8, 1.0), x[:48], **settings)
    with pytest.raises(ValueError, match=r"differs in: model\.architecture\)"):
        tfmia.distill(teacher, _mlp_factory(8, 2.0), x[:48], **settings)
    assert tfmia.distill(teacher, _mlp_factory(8, 1.0), x[:48], **settings).resumed_epochs == 1


def test_feature_passes_of_other_architectures_with_the_same_weights_are_refused(tmp_path):
    from tfmia.features.records import FeatureRecords

    x, y = digits()
    relu = build_model(digits_mlp, seed=0)
    tanh = build_model(lambda: _with_activation(digits_mlp(), "tanh"))
    tanh.set_weights(relu.get_weights())
    settings = {"features": "confidence", "run_dir": tmp_path, "batch_size": 16}
    FeatureRecords.from_model(relu, x[:32], y[:32], **settings)
    with pytest.raises(ValueError, match=r"differs in: model\.architecture\)"):
        FeatureRecords.from_model(tanh, x[:32], y[:32], **settings)


def _with_activation(model, activation: str):
    import keras

    layers = [keras.Input((64,)), keras.layers.Dense(model.layers[0].units, activation=activation),
              keras.layers.Dense(10, activation="softmax")]
    new = keras.Sequential(layers)
    new.compile(model.optimizer, "sparse_categorical_crossentropy")
    return new


# -- atomic claims and concurrent writers -------------------------------------------------------------------------

def test_two_processes_claiming_one_directory_exactly_one_wins(tmp_path):
    trials = 50
    folders = [str(tmp_path / f"trial_{t:02d}") for t in range(trials)]
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    racers = [ctx.Process(target=claim_in_turn, args=(w, folders, barrier, results)) for w in (0, 1)]
    for racer in racers:
        racer.start()
    outcomes: dict[str, dict[int, str | None]] = {}
    for _ in range(2 * trials):
        folder, writer, error = results.get(timeout=120)
        outcomes.setdefault(folder, {})[writer] = error
    for racer in racers:
        racer.join(timeout=60)
        assert racer.exitcode == 0
    for folder in folders:
        winners = [w for w, error in outcomes[folder].items() if error is None]
        assert len(winners) == 1, (folder, outcomes[folder])
        loser_error = outcomes[folder][1 - winners[0]]
        assert "different configuration (differs in: writer)" in loser_error
        manifest = json.loads((Path(folder) / "run.json").read_text())
        assert manifest == {"kind": "race", "config": {"writer": winners[0]}}
        assert _hidden_files(Path(folder)) == []


def _train_after(barrier, run_dir) -> None:
    """A writer of the shared configuration: starts together with the other one."""
    x, y = digits()
    barrier.wait(timeout=300)
    train_shadow_models(digits_mlp, x[:200], y[:200], n_shadows=2, fit=ONE_EPOCH, train_size=50, seed=2,
                        run_dir=run_dir, progress=False)


def test_two_writers_of_the_same_configuration_leave_a_consistent_directory(tmp_path):
    """This process and a fresh one train the same run into one directory at the same time.

    The fresh process describes the model with Keras's name counters at
    zero, this one after many builds: both must be accepted.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    other = ctx.Process(target=_train_after, args=(barrier, str(tmp_path)))
    other.start()
    _train_after(barrier, tmp_path)
    other.join(timeout=300)
    assert other.exitcode == 0
    x, y = digits()
    shadows = train_shadow_models(digits_mlp, x[:200], y[:200], n_shadows=2, fit=ONE_EPOCH, train_size=50, seed=2,
                                  run_dir=tmp_path, progress=False)
    assert shadows.trained == [] and shadows.resumed == [0, 1]
    for shadow in shadows.models:  # each model's stored outputs come from the weights stored beside them
        model = build_model(digits_mlp)
        model.load_weights(shadow.weights_path)
        np.testing.assert_allclose(model.predict(x[:200][shadow.query_indices], verbose=0), shadow.outputs,
                                   rtol=1e-5, atol=1e-6)
    assert _hidden_files(tmp_path) == []


# -- writers killed before their rename ---------------------------------------------------------------------------

_DIE_BEFORE_REPLACING = """
import os, signal
_replace = os.replace
def _replace_or_die(src, dst):
    if os.environ["DIE_BEFORE_REPLACING"] in os.path.basename(os.fspath(dst)):
        os.kill(os.getpid(), signal.SIGKILL)
    return _replace(src, dst)
os.replace = _replace_or_die
"""


def _run_until_killed(body: str, target_name: str, *args) -> None:
    """Run ``body`` in a child that SIGKILLs itself just before renaming a file whose name holds ``target_name``."""
    script = _DIE_BEFORE_REPLACING + textwrap.dedent(body)
    child = subprocess.run([sys.executable, "-c", script, *map(str, args)], timeout=300,
                           env={**CHILD_ENV, "DIE_BEFORE_REPLACING": target_name})
    assert child.returncode == -signal.SIGKILL


def test_a_rerun_after_a_kill_before_a_rename_resumes_and_removes_the_leftover(tmp_path):
    _run_until_killed("""
        import sys
        from _models import digits, digits_mlp
        from tfmia.shadow_training import train_shadow_models
        from tfmia.training import FitConfig
        x, y = digits()
        train_shadow_models(digits_mlp, x[:200], y[:200], n_shadows=2, fit=FitConfig(epochs=1, batch_size=16),
                            train_size=50, seed=4, run_dir=sys.argv[1], progress=False, packed=False)
    """, "shadow_0001", tmp_path)
    leftovers = _hidden_files(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].startswith(".shadow_0001"), leftovers
    assert (tmp_path / "shadow_0000.npz").exists() and not (tmp_path / "shadow_0001.npz").exists()
    x, y = digits()
    shadows = train_shadow_models(digits_mlp, x[:200], y[:200], n_shadows=2, fit=ONE_EPOCH, train_size=50, seed=4,
                                  run_dir=tmp_path, progress=False, packed=False)  # packs resume whole: test_farm
    assert shadows.resumed == [0] and shadows.trained == [1]
    assert _hidden_files(tmp_path) == []


_HOLD_A_TEMPORARY = """
import sys
from tfmia._serialization import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "w") as fh:
        fh.write("written by a live writer")
    print("holding", flush=True)
    sys.stdin.readline()
"""


def test_opening_a_directory_keeps_the_temporaries_of_live_writers(tmp_path):
    _run_until_killed("""
        import sys
        from tfmia._serialization import atomic_write_text
        atomic_write_text(sys.argv[1], "never renamed")
    """, "dead.txt", tmp_path / "dead.txt")
    dead = _hidden_files(tmp_path)
    assert len(dead) == 1
    live = subprocess.Popen([sys.executable, "-c", _HOLD_A_TEMPORARY, str(tmp_path / "live.txt")], env=CHILD_ENV,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "holding"
        holding = sorted(set(_hidden_files(tmp_path)) - set(dead))
        assert len(holding) == 1
        RunDirectory(tmp_path, "cleaning", {})
        assert _hidden_files(tmp_path) == holding  # the dead writer's leftover is gone, the live one's kept
    finally:
        live.communicate("\n", timeout=60)
    assert live.returncode == 0
    assert (tmp_path / "live.txt").read_text() == "written by a live writer"
    assert _hidden_files(tmp_path) == []


# -- file modes ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_mode_a_plain_open_gives(tmp_path, umask):
    previous = os.umask(umask)
    try:
        with open(tmp_path / "plain.txt", "w"):
            pass
        atomic_write_text(tmp_path / "report.json", "{}")
        save_npz(tmp_path / "arrays.npz", a=np.arange(3))
        save_weights_atomically(build_model(digits_logits_mlp), tmp_path / "model.weights.h5")
        RunDirectory(tmp_path / "run", "modes", {})
    finally:
        os.umask(previous)
    expected = 0o666 & ~umask
    assert (tmp_path / "plain.txt").stat().st_mode & 0o777 == expected
    for path in [tmp_path / name for name in ("report.json", "arrays.npz", "model.weights.h5")] + [
            tmp_path / "run" / "run.json"]:
        assert path.stat().st_mode & 0o777 == expected, (path.name, oct(path.stat().st_mode))
