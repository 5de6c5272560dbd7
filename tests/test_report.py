"""AuditReport: exact JSON round trip, text summary, plots, HTML escaping and rendering in Chromium."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib import image as mpimg

from tfmia import plotting
from tfmia.evaluation import AttackResult
from tfmia.report import AuditReport, ModelFacts


def _result(name, shift, seed=0, n=500):
    rng = np.random.default_rng(seed)
    is_member = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    labels = rng.integers(0, 3, size=2 * n)
    predicted = np.where(rng.uniform(size=2 * n) < 0.8, labels, (labels + 1) % 3)
    scores = rng.normal(size=2 * n) + shift * is_member
    return AttackResult.from_scores(scores, is_member, name=name, labels=labels, predicted_labels=predicted,
                                    losses=rng.exponential(size=2 * n), threshold=0.5)


def _report(epoch=3, train_acc=0.99, name="cnn"):
    facts = ModelFacts(model_name=name, train_accuracy=train_acc, test_accuracy=0.8, n_train=500, n_test=500,
                       epoch=epoch, extra={"dataset": "synthetic"})
    return AuditReport([_result("loss", 1.0), _result("entropy", 0.5, seed=1)], facts, notes=["a note"])


def test_json_round_trip_is_exact(tmp_path):
    report = _report()
    path = tmp_path / "r.json"
    text = report.to_json(path)
    assert json.loads(text)["format"] == "tfmia.AuditReport"
    assert "NaN" not in text  # strict JSON
    back = AuditReport.from_json(path)
    copy = tmp_path / "copy" / "r.json"  # same name elsewhere: the side file's name is part of the JSON
    assert back.to_json(copy) == text
    assert (tmp_path / "copy" / "r.arrays.npz").read_bytes() == (tmp_path / "r.arrays.npz").read_bytes()
    assert back.facts == report.facts and back.facts.gap == pytest.approx(0.19)
    for name, result in report.results.items():
        other = back[name]
        assert np.array_equal(result.scores, other.scores) and result.scores.dtype == other.scores.dtype
        assert result.auc == other.auc and result.threshold == other.threshold


def test_from_json_rejects_non_reports(tmp_path):
    with pytest.raises(ValueError, match="not a tfmia AuditReport"):
        AuditReport.from_json('{"results": []}')
    with pytest.raises(ValueError, match="not valid JSON"):
        AuditReport.from_json("{oops")
    with pytest.raises(ValueError, match="not found"):
        AuditReport.from_json(tmp_path / "missing.json")


def test_duplicate_names_are_refused():
    report = _report()
    with pytest.raises(ValueError, match="already"):
        report.add(_result("loss", 0.1))


def test_summary_leads_with_far_and_low_fpr():
    report = _report()
    text = report.summary()
    header = text.splitlines()[2]
    assert header.index("TPR@0.1%FPR") < header.index("FAR") < header.index("AUC")
    loss = report["loss"]
    assert f"{loss.far:.4f}" in text and f"{loss.auc:.4f}" in text
    assert "ZeroR" in text and "naive" in text


def test_summary_says_which_low_fpr_cannot_be_measured():
    small = _result("loss", 1.0, n=150)  # 150 non-members: one false positive is 0.67 % FPR
    report = AuditReport([small], ModelFacts(n_train=150, n_test=150))
    lines = report.summary().splitlines()
    row = next(line for line in lines if line.startswith("loss"))
    tpr_01, tpr_1 = row.split()[1:3]
    assert tpr_01 == "n/a"
    expected_tpr_1 = small.roc.tpr[small.roc.fpr <= 0.01].max()  # no interpolation
    assert float(tpr_1) == pytest.approx(expected_tpr_1, abs=5e-5)
    assert any("0.1% FPR cannot be measured with 150 non-members" in line and "at least 1000" in line
               for line in lines)
    resolved = AuditReport([_result("loss", 1.0, n=1000)]).summary()  # 1000 non-members resolve 0.1 %
    assert "n/a" not in resolved and "cannot be measured" not in resolved


def test_roc_plot_draws_every_attack_on_log_axes():
    report = _report()
    fig = plotting.plot_roc(list(report.results.values()))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    lines = ax.get_lines()
    assert len(lines) == 3  # two attacks and the chance line
    assert np.array_equal(lines[0].get_xdata(), report["loss"].roc.fpr)
    assert ax.get_xlim()[0] == pytest.approx(1 / 500 / 2)


def test_privacy_vs_epoch_and_accuracy_plots_use_report_values():
    reports = [_report(epoch=e, train_acc=0.7 + 0.05 * e) for e in (3, 1, 2)]
    fig = plotting.plot_privacy_vs_epoch(reports, "auc")
    line = fig.axes[0].get_lines()[0]
    assert list(line.get_xdata()) == [1, 2, 3]
    assert list(line.get_ydata()) == [reports[i]["loss"].auc for i in (1, 2, 0)]
    fig = plotting.plot_privacy_vs_accuracy(reports, "advantage")
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == pytest.approx([0.75, 0.8, 0.85])
    with pytest.raises(ValueError, match="epoch"):
        plotting.plot_privacy_vs_epoch([AuditReport([_result("x", 1)])])


def test_html_escapes_every_user_string(tmp_path):
    evil = '<script>alert("x")</script>'
    report = AuditReport([_result(evil, 1.0)], ModelFacts(model_name=evil, extra={evil: evil}), title=evil, notes=[evil])
    html = report.to_html(tmp_path / "r.html").read_text()
    assert "<script>" not in html
    assert html.count("&lt;script&gt;") >= 5
    assert 'id="roc"' in html and "data:image/png;base64," in html


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed (Debian package 'chromium')")
def test_html_renders_roc_image_in_headless_chromium(tmp_path):
    report = AuditReport([_result("only attack", 1.5)], ModelFacts(model_name="m"))
    page = report.to_html(tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    base = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(base + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'id="roc"' in dom.stdout and "only attack" in dom.stdout
    run = subprocess.run(base + [f"--screenshot={shot}", "--window-size=1280,3000", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    pixels = (mpimg.imread(shot)[..., :3] * 255).round().astype(int)
    # The ROC curve is drawn in matplotlib's first colour (#1f77b4); nothing else on the page uses it unblended.
    roc_blue = np.all(np.abs(pixels - np.array([31, 119, 180])) <= 12, axis=-1)
    assert roc_blue.sum() > 150, "the ROC image did not render"
