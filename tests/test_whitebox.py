"""FeatureAttack: Rezaei & Liu's protocol, attack models, missing values, and features from real models."""

import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from _models import float32_softmax_rtol  # noqa: E402
from _separation import assert_separates  # noqa: E402

from tfmia import signals  # noqa: E402
from tfmia.attacks import FeatureAttack  # noqa: E402
from tfmia.attacks.whitebox import per_column_results, resample  # noqa: E402
from tfmia.datasets import load_digits  # noqa: E402
from tfmia.features.records import FEATURES, FeatureRecords  # noqa: E402


def synthetic(n_per_class=40, classes=3, shift=2.0, seed=0):
    """Members have a larger first feature; the second is noise; predictions 90 % correct."""
    rng = np.random.default_rng(seed)

    def side(offset):
        labels = np.repeat(np.arange(classes), n_per_class)
        features = np.c_[rng.normal(offset, 1.0, labels.size), rng.normal(0, 1.0, labels.size)]
        predicted = np.where(rng.random(labels.size) < 0.9, labels, (labels + 1) % classes)
        return FeatureRecords(features, labels, predicted, rng.random(labels.size), ("signal", "noise"))

    return side(shift), side(0.0)


def test_protocol_known_split_and_slices():
    members, non_members = synthetic()
    result = FeatureAttack("gradient_weights", "logreg").fit_evaluate(members, non_members)
    # 80 % of each class's 40 members and 40 non-members are known: 8 + 8 per class evaluated
    assert result.n_members == 24 and result.n_non_members == 24
    assert result.metadata["known_members"] == 96 and result.metadata["known_non_members"] == 96
    np.testing.assert_array_equal(np.bincount(result.labels), [16, 16, 16])
    assert result.auc > 0.85 and result.balanced_accuracy > 0.75
    assert result.decision_source == "threshold" and result.threshold == 0.5
    np.testing.assert_array_equal(result.decisions, result.scores >= 0.5)
    assert result.far == pytest.approx(np.mean(result.decisions[~result.is_member]))  # FP / non-members
    assert result.metrics()["far"] == result.far
    slices, _ = result.slices()
    assert {"correctly classified", "misclassified", "class=0"} <= set(slices)
    summary = result.per_class_summary()
    assert summary["far"]["classes"] == 3
    per_class_far = [r.far for r in result.per_class().values()]
    assert summary["far"]["mean"] == pytest.approx(np.mean(per_class_far))
    assert summary["far"]["std"] == pytest.approx(np.std(per_class_far))
    assert summary["far"]["pooled"] == result.far


@pytest.mark.parametrize("classifier", ["rf", "gbdt"])
def test_searched_tree_models_per_class_and_reproducible(classifier):
    members, non_members = synthetic(n_per_class=20, classes=2)
    options = {"n_iter": 2}
    attack = FeatureAttack("boundary", classifier, seed=3, classifier_options=options)
    first = attack.fit_evaluate(members, non_members)
    assert sorted(attack._models) == [0, 1] and attack._global is None
    assert attack._models[0].classifier.estimator.n_iter == 2  # a randomised search
    again = FeatureAttack("boundary", classifier, seed=3, classifier_options=options).fit_evaluate(members, non_members)
    np.testing.assert_array_equal(first.scores, again.scores)
    assert first.auc > 0.7


def test_global_model():
    members, non_members = synthetic()
    pooled = FeatureAttack("boundary", "logreg", per_class=False).fit(members, non_members)
    per_class = FeatureAttack("boundary", "logreg").fit(members, non_members)
    assert pooled._models == {}
    # One model for every class: a record's score does not depend on its label (per class, it does).
    relabelled = FeatureRecords(members.features, (members.labels + 1) % 3, members.predicted_labels,
                                members.losses, members.columns)
    np.testing.assert_array_equal(pooled.score(relabelled), pooled.score(members))
    assert not np.allclose(per_class.score(relabelled), per_class.score(members))
    assert_separates(pooled.fit_evaluate(members, non_members))


def test_logistic_regression_on_one_column_is_a_threshold_on_it():
    members, non_members = synthetic()
    attack = FeatureAttack("gradient_input", "logreg", per_class=False, columns=["signal"]).fit(members, non_members)
    both = FeatureRecords.concatenate([members, non_members])
    order = np.argsort(both.features[:, 0])
    assert np.all(np.diff(attack.score(both)[order]) >= 0)  # monotone in the one feature


def test_neural_network_attack():
    members, non_members = synthetic(n_per_class=30, classes=2, shift=3.0)
    attack = FeatureAttack("intermediate", "nn", classifier_options={"epochs": 20})
    result = attack.fit_evaluate(members, non_members)
    assert result.auc > 0.85
    net = attack._models[0].classifier.model
    assert [layer.units for layer in net.layers] == [128, 64, 1]
    assert net.layers[-1].activation.__name__ == "sigmoid"
    again = FeatureAttack("intermediate", "nn", classifier_options={"epochs": 20}).fit_evaluate(members, non_members)
    np.testing.assert_allclose(again.scores, result.scores, rtol=1e-5)


def test_sampling_balances_each_training_set():
    x = np.arange(10.0)[:, None]
    is_member = np.arange(10) < 3
    xu, mu = resample(x, is_member, "under", seed=0)
    assert mu.sum() == 3 and (~mu).sum() == 3 and set(xu[mu, 0]) == {0, 1, 2}
    xo, mo = resample(x, is_member, "over", seed=0)
    assert mo.sum() == 7 and (~mo).sum() == 7 and set(xo[~mo, 0]) == set(range(3, 10))
    members, non_members = synthetic()
    result = FeatureAttack("confidence", "logreg", sampling="under").fit_evaluate(members, non_members.subset(np.arange(90)))
    assert result.metadata["sampling"] == "under"


def test_missing_values_take_the_largest_known_value():
    members, non_members = synthetic(classes=1)
    features = members.features.copy()
    features[:5, 0] = np.nan  # failed boundary searches among the members
    members = FeatureRecords(features, members.labels, members.predicted_labels, members.losses, members.columns)
    attack = FeatureAttack("boundary", "logreg").fit(members, non_members)
    np.testing.assert_array_equal(attack._fill, np.nanmax(np.r_[members.features, non_members.features], axis=0))
    result = attack.evaluate(members, non_members)
    assert len(result) == len(members) + len(non_members)  # nothing dropped
    assert result.metadata["missing_feature_values"] == 5
    filled = members.subset(np.arange(5))
    expected = filled.features.copy()
    expected[:, 0] = attack._fill[0]
    expected = FeatureRecords(expected, filled.labels, filled.predicted_labels, None, members.columns)
    np.testing.assert_allclose(attack.score(filled), attack.score(expected))
    empty = FeatureRecords(np.full((4, 1), np.nan), np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="no finite value"):
        FeatureAttack("boundary", "logreg").fit(empty, empty)


def test_classes_without_both_sides_fall_back_to_a_global_model():
    members, non_members = synthetic()
    non_members = non_members.subset(non_members.labels != 2)
    with pytest.warns(UserWarning, match=r"classes \[2\]"):
        attack = FeatureAttack("boundary", "logreg").fit(members, non_members)
    assert attack.fallback_classes == [2] and attack._global is not None
    assert attack.score(members).shape == (len(members),)
    only_two = FeatureAttack("boundary", "logreg")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        only_two.fit(members.subset(members.labels < 2), non_members)
    with pytest.raises(ValueError, match=r"classes \[2\] were not in the attack's training data"):
        only_two.score(members)


def test_per_column_results():
    members, non_members = synthetic()
    results = per_column_results(members, non_members, "gradient_weights")
    assert list(results) == ["signal", "noise", "all"]
    assert results["signal"].auc > 0.8 > 0.65 > results["noise"].auc
    assert "[signal]" in results["signal"].name


def test_bad_arguments():
    members, non_members = synthetic()
    for kwargs, message in [
        ({"features": "loss"}, "features"),
        ({"classifier": "svm"}, "classifier"),
        ({"sampling": "smote"}, "sampling"),
        ({"known_fraction": 1.0}, "known_fraction"),
    ]:
        with pytest.raises(ValueError, match=message):
            FeatureAttack(**kwargs)
    with pytest.raises(ValueError, match="fitted"):
        FeatureAttack().score(members)
    with pytest.raises(ValueError, match="column 'x'"):
        FeatureAttack(columns="x").fit(members, non_members)
    with pytest.raises(ValueError, match="FeatureRecords or a"):
        FeatureAttack().fit(members.features, non_members)
    with pytest.raises(ValueError, match="classifier_options .*depth"):
        FeatureAttack(classifier="rf", classifier_options={"depth": 3})
    with pytest.raises(ValueError, match="Inf"):
        FeatureRecords(np.array([[np.inf]]), [0], [0])
    with pytest.raises(ValueError, match="labels has 1 entries, expected 2"):
        FeatureRecords(np.zeros((2, 1)), [0], [0, 0])


# -- features from a real Keras model -----------------------------------------------------------


@pytest.fixture(scope="module")
def digits_target():
    """A small MLP on 8x8 digits memorising 150 members with random labels."""
    data = load_digits()
    y = np.random.default_rng(0).integers(0, 10, len(data.y))
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(data.x[:150], y[:150], epochs=40, batch_size=32, verbose=0)
    return model, (data.x[:150], y[:150]), (data.x[150:300], y[150:300])


@pytest.mark.parametrize("features", FEATURES)
def test_feature_records_from_a_model(digits_target, features):
    model, (x, y), _ = digits_target
    options = {"clip": (0.0, 1.0), "max_steps": 20} if features == "boundary" else {}
    records = FeatureRecords.from_model(model, x[:20], y[:20], features=features, batch_size=8, **options)
    width = {"confidence": 10, "intermediate": 32, "gradient_weights": 7, "gradient_input": 7, "boundary": 1}[features]
    assert records.features.shape == (20, width) and len(records.columns) == width
    outputs = model.predict(x[:20], verbose=0)
    np.testing.assert_array_equal(records.predicted_labels, outputs.argmax(1))
    np.testing.assert_allclose(records.losses, signals.compute(outputs, y[:20], False)["loss"], rtol=1e-5)
    if features == "confidence":  # batches of 8 here, Keras predict's 32 there: float32 paths may differ
        np.testing.assert_allclose(records.features, outputs, rtol=float32_softmax_rtol(model, x[:20]))


def test_confidence_features_of_a_logits_model_are_probabilities(digits_target):
    model, (x, y), _ = digits_target
    # the same network without the final softmax: it outputs logits
    logits_model = keras.Sequential([keras.Input((64,)), model.layers[0], keras.layers.Dense(10)])
    logits_model.layers[-1].set_weights(model.layers[-1].get_weights())
    records = FeatureRecords.from_model(logits_model, x[:12], y[:12], features="confidence")
    rtol = float32_softmax_rtol(model, x[:12])  # tfmia's softmax of TF logits vs Keras's softmax layer
    np.testing.assert_allclose(records.features, model.predict(x[:12], verbose=0), rtol=rtol)


def test_feature_pass_resumes_from_its_run_directory(digits_target, tmp_path):
    model, (x, y), _ = digits_target
    settings = {"features": "gradient_input", "batch_size": 8, "run_dir": tmp_path, "checkpoint_every": 2}
    first = FeatureRecords.from_model(model, x[:50], y[:50], **settings)
    chunks = sorted(p.name for p in tmp_path.glob("chunk_*.npz"))
    assert chunks == [f"chunk_{i:06d}.npz" for i in range(4)]  # 7 batches, 2 per chunk
    # mark a saved chunk and drop the last one: a rerun loads the first and recomputes the last
    saved = dict(np.load(tmp_path / chunks[0]))
    np.savez(tmp_path / chunks[0], **{**saved, "features": saved["features"] + 1.0})
    (tmp_path / chunks[-1]).unlink()
    again = FeatureRecords.from_model(model, x[:50], y[:50], **settings)
    np.testing.assert_allclose(again.features[:16], first.features[:16] + 1.0)
    np.testing.assert_allclose(again.features[16:], first.features[16:], rtol=1e-6)
    np.testing.assert_array_equal(again.labels, y[:50])
    with pytest.raises(ValueError, match="different configuration"):
        FeatureRecords.from_model(model, x[:40], y[:40], **settings)
    reversed_data = tf.data.Dataset.from_tensor_slices((x[:50][::-1], y[:50][::-1])).batch(8)
    FeatureRecords.from_model(model, tf.data.Dataset.from_tensor_slices((x[:50], y[:50])).batch(8),
                              **{**settings, "run_dir": tmp_path / "stream"})
    with pytest.raises(ValueError, match="records differ from the saved run"):
        FeatureRecords.from_model(model, reversed_data, **{**settings, "run_dir": tmp_path / "stream"})


def test_fit_evaluate_on_model_records(digits_target):
    model, members, non_members = digits_target
    attack = FeatureAttack("gradient_input", "logreg", known_fraction=0.5, feature_options={"batch_size": 50})
    result = attack.fit_evaluate((model, *members), (model, *non_members))
    # half of each class held out: each of the 10 classes rounds its half by at most 1/2
    assert abs(result.n_members - 75) <= 5 and abs(result.n_non_members - 75) <= 5
    assert result.metadata["feature_options"] == {"batch_size": 50}
    assert_separates(result)  # the target memorises its members
