"""The early-stopping baseline: the epoch matcher, per-epoch snapshots, checkpoints, the side-by-side table."""

import numpy as np
import pytest
from _models import digits, small_mlp

from tfmia.data import AttackInputs
from tfmia.defenses import EarlyStoppingBaseline, closest_epoch, side_by_side
from tfmia.evaluation import AttackResult
from tfmia.report import AuditReport, ModelFacts
from tfmia.training import FitConfig, build_model, fit_model


def test_closest_epoch():
    accuracies = {1: 0.50, 2: 0.70, 3: 0.80, 4: 0.90, 5: 0.85}
    assert closest_epoch(accuracies, 0.81) == 3
    assert closest_epoch(accuracies, 0.0) == 1
    assert closest_epoch(accuracies, 1.0) == 4
    assert closest_epoch(accuracies, 0.875) == 4  # |0.90 - 0.875| = |0.85 - 0.875|: the earlier epoch wins
    assert closest_epoch({3: 0.6, 1: 0.6}, 0.6) == 1
    with pytest.raises(ValueError, match="target"):
        closest_epoch(accuracies, 1.5)
    with pytest.raises(ValueError, match="accuracies"):
        closest_epoch({}, 0.5)


def test_snapshots_match_training_for_fewer_epochs(tmp_path):
    x, y = digits()
    fit = FitConfig(epochs=4, batch_size=64)
    baseline = EarlyStoppingBaseline.train(small_mlp, x[:300], y[:300], x[1000:], y[1000:], fit, seed=3)
    assert sorted(baseline.accuracies) == [1, 2, 3, 4]
    for epoch, accuracy in baseline.accuracies.items():
        model = baseline.model(epoch)
        assert accuracy == pytest.approx(np.mean(model.predict(x[1000:], verbose=0).argmax(1) == y[1000:]))
    # the snapshot after epoch 2 is the recipe stopped after 2 epochs
    assert baseline.fit_config(2) == FitConfig(epochs=2, batch_size=64)
    short = build_model(small_mlp, seed=3)
    fit_model(short, x[:300], y[:300], baseline.fit_config(2), seed=3)
    for a, b in zip(short.get_weights(), baseline.model(2).get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

    target = baseline.accuracies[2] + 0.001
    match = baseline.match(target)
    assert match.epoch == closest_epoch(baseline.accuracies, target)
    assert match.test_accuracy == baseline.accuracies[match.epoch]
    assert match.difference == pytest.approx(match.test_accuracy - target)
    assert baseline.accuracy(short) == pytest.approx(baseline.accuracies[2])

    # the same snapshots as Keras weight files
    paths = {}
    for epoch in (1, 3):
        paths[epoch] = tmp_path / f"epoch_{epoch}.weights.h5"
        baseline.model(epoch).save_weights(paths[epoch])
    restored = EarlyStoppingBaseline.from_checkpoints(small_mlp, paths, x[1000:], y[1000:])
    assert restored.accuracies == {1: baseline.accuracies[1], 3: baseline.accuracies[3]}
    with pytest.raises(ValueError, match="recipe"):
        restored.fit_config(1)
    with pytest.raises(ValueError, match="epoch 2"):
        restored.model(2)
    with pytest.raises(ValueError, match="epoch"):
        baseline.fit_config(5)


@pytest.mark.filterwarnings("ignore::tfmia.metrics.LowFPRWarning")
def test_side_by_side_table():
    rng = np.random.default_rng(0)

    def report(shift, adaptive, **extra):
        scores = np.r_[rng.normal(shift, 1, 200), rng.normal(0, 1, 200)]
        result = AttackResult.from_scores(scores, np.r_[np.ones(200), np.zeros(200)], name="loss", threshold=0.0,
                                          adaptive=adaptive)
        facts = ModelFacts(train_accuracy=0.95, test_accuracy=0.80, extra=extra)
        return AuditReport([result], facts), result

    defended, r1 = report(0.2, True, epsilon=3.5)
    stopped, r2 = report(1.0, None)
    text = side_by_side({"DP-SGD": defended, "early stop (epoch 3)": stopped})
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["model", "test", "acc", "gap", "epsilon"]
    assert "yes" in lines[2] and " 3.5 " in lines[2] and "0.8000" in lines[2] and f"{r1.auc:.4f}" in lines[2]
    assert lines[3].startswith("early stop (epoch 3)") and f"{r2.auc:.4f}" in lines[3]
    markdown = side_by_side({"DP-SGD": defended, "early stop": stopped}, markdown=True)
    assert markdown.splitlines()[0].startswith("| model | test acc | gap | epsilon | attack | adaptive |")
    assert len(markdown.splitlines()) == 4
    with pytest.raises(ValueError, match="reports"):
        side_by_side({})


@pytest.mark.filterwarnings("ignore::tfmia.metrics.LowFPRWarning")
def test_matching_a_defended_model_reports_both():
    """The documented flow: match a (here: weaker) model's accuracy, audit both, tabulate."""
    from tfmia.attacks import MetricAttack

    x, y = digits()
    baseline = EarlyStoppingBaseline.train(small_mlp, x[:300], y[:300], x[1000:], y[1000:], FitConfig(epochs=3))
    weaker = build_model(small_mlp, seed=9)
    fit_model(weaker, x[:300], y[:300], FitConfig(epochs=1))
    target = baseline.accuracy(weaker)
    match = baseline.match(target)
    assert abs(match.test_accuracy - target) == min(abs(a - target) for a in baseline.accuracies.values())
    reports = {}
    for label, model in (("defended", weaker), (f"early stop (epoch {match.epoch})", baseline.model(match.epoch))):
        members = AttackInputs.from_model(model, x[:300], y[:300])
        non_members = AttackInputs.from_model(model, x[1000:1300], y[1000:1300])
        attack = MetricAttack("loss", class_dependent=False)
        reports[label] = AuditReport([attack.evaluate(members, non_members)],
                                     ModelFacts.from_inputs(members, non_members))
    lines = side_by_side(reports).splitlines()
    assert len(lines) == 4  # header, rule, one row per model
    for line, (label, report) in zip(lines[2:], reports.items()):
        (result,) = report.results.values()
        assert line.startswith(label) and f"{report.facts.test_accuracy:.4f}" in line and f"{result.auc:.4f}" in line
