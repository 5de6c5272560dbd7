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


# -- RMIA's and QMIA's settings, QMIA's calibration, extra facts ----------------------------------
def _calibration(alpha, false_positives, held_out):
    from scipy import stats

    low, high = stats.binomtest(false_positives, held_out).proportion_ci(0.95, method="exact")
    return {"alpha": alpha, "observed_fpr": false_positives / held_out, "false_positives": false_positives,
            "held_out": held_out, "ci_low": low, "ci_high": high, "confidence": 0.95}


def _rmia_qmia_report(evil="plain"):
    rmia = _result("RMIA (offline)", 1.0)
    rmia.metadata = {"method": "RMIA", "n_models": 2, "online": False, "temperature": 1.0, "gamma": 2.0, "a": 0.35,
                     "a_setting": "auto", "a_grid_auc": [0.6, 0.7125, 0.65], "population_records": 400,
                     "seed": evil}
    online = _result("RMIA (online)", 1.0, seed=1)
    online.metadata = {"method": "RMIA", "n_models": 4, "online": True, "temperature": 2.0, "gamma": 1.0, "a": None,
                       "a_setting": "auto", "a_grid_auc": None, "population_records": 400}
    below = _result("QMIA low", 0.5, seed=2)  # 10 of 100 held out above the 1 % quantile: alpha below the interval
    below.metadata = {"method": "QMIA", "alpha": 0.01, "head": "pinball", "architecture": evil,
                      "calibration": _calibration(0.01, 10, 100)}
    inside = _result("QMIA ok", 0.5, seed=3)
    inside.metadata = {"method": "QMIA", "alpha": 0.05, "head": "gaussian", "architecture": "mlp",
                       "calibration": _calibration(0.05, 6, 100)}
    facts = ModelFacts(model_name="m", extra={"one-run epsilon lower bound": {
        "epsilon": 2.5512, "delta": 1e-5, "p_value": 0.05, "canaries": 1000, "guesses": 40, "correct": 40}})
    return AuditReport([rmia, online, below, inside], facts)


def test_rmia_and_qmia_settings_and_calibration_in_summary_html_and_json(tmp_path):
    report = _rmia_qmia_report()
    report.to_json(tmp_path / "r.json")
    back = AuditReport.from_json(tmp_path / "r.json")
    for name, result in report.results.items():
        assert back[name].metadata == result.metadata
    summary = back.summary()
    lines = summary.splitlines()
    assert ("settings of RMIA (offline): 2 reference models, offline (none trained on an audited record), a = 0.35 "
            "(chosen from the reference models alone, mean AUC 0.7125 on the grid 0..1), gamma = 2, T = 1, "
            "400 population records") in lines
    assert ("settings of RMIA (online): 4 reference models, online (each audited record in half of them), gamma = 1, "
            "T = 2, 400 population records") in lines
    low, high = _calibration(0.01, 10, 100)["ci_low"], _calibration(0.01, 10, 100)["ci_high"]
    assert low > 0.01  # 10 / 100 observed: the interval lies above alpha = 1 %
    assert (f"calibration of QMIA low: alpha = 0.01; observed FPR 0.1 (10/100 held-out public non-members), "
            f"95% CI [{low:.4g}, {high:.4g}]: alpha below the interval: more non-members called members than "
            "asked for") in lines
    assert any(line.startswith("calibration of QMIA ok: alpha = 0.05; observed FPR 0.06 (6/100")
               and line.endswith("alpha inside the interval: calibrated as far as these records tell") for line in lines)
    assert ("one-run epsilon lower bound: {epsilon=2.551, delta=1e-05, p_value=0.05, canaries=1000, guesses=40, "
            "correct=40}") in lines
    page = back.to_html(tmp_path / "r.html").read_text()
    assert "<h2>Attack settings</h2>" in page and "a = 0.35 (chosen from the reference models alone" in page
    assert ("<tr><td>QMIA low</td><td>0.01</td><td>0.1</td><td>10 / 100</td>"
            f"<td>[{low:.4g}, {high:.4g}] (95%)</td><td>alpha below the interval") in page
    assert "epsilon=2.551, delta=1e-05" in page


def test_metadata_strings_are_escaped_and_odd_metadata_still_renders(tmp_path):
    evil = '<script>alert("x")</script>\x1b[2J'
    report = _rmia_qmia_report(evil)
    odd = _result("hand-edited", 0.3, seed=4)
    odd.metadata = {"method": "RMIA", "online": "maybe", "a_grid_auc": "x", "n_models": {"deep": [[[[[1]]]]]},
                    "calibration": {"alpha": "x"}, evil: evil}
    report.add(odd)
    page = report.to_html(tmp_path / "r.html").read_text()
    assert "<script>" not in page and page.count("&lt;script&gt;") >= 4  # two values, a key, a value
    summary = report.summary()
    assert "\x1b" not in summary and "\\x1b[2J" in summary
    assert "calibration of hand-edited" not in summary  # no numbers to show
    assert "settings of hand-edited: {deep=[[[[...]]]]} reference models, offline" in summary
