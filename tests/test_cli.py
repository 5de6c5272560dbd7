"""The tfmia command line: audit, report, demo; malformed and unsafe files."""

import json
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from _models import digits, small_mlp
from scipy import stats

from tfmia.attacks.rmia import A_GRID
from tfmia.cli import main
from tfmia.report import AuditReport
from tfmia.training import build_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A trained .keras model and member / non-member / shadow .npz files."""
    folder = tmp_path_factory.mktemp("cli")
    x, y = digits()
    model = build_model(small_mlp, seed=0)
    model.fit(x[:200], y[:200], epochs=15, batch_size=16, verbose=0)
    model.save(folder / "model.keras")
    np.savez(folder / "members.npz", x=x[:200], y=y[:200])
    np.savez(folder / "non_members.npz", x=x[200:400], y=y[200:400])
    np.savez(folder / "shadow.npz", x=x[400:800], y=y[400:800])
    return folder


def _audit(folder, out, *extra):
    return main(["audit", "--model", str(folder / "model.keras"), "--members", str(folder / "members.npz"),
                 "--non-members", str(folder / "non_members.npz"), "--out", str(out), *extra])


def test_audit_with_known_subset_writes_json_and_html(saved, tmp_path, capsys):
    assert _audit(saved, tmp_path / "out", "--attacks", "loss,modified_entropy,risk_score") == 0
    report = AuditReport.from_json(tmp_path / "out" / "report.json")
    assert set(report.results) == {"loss (class-dependent threshold)", "loss (global threshold)",
                                   "modified_entropy (class-dependent threshold)", "modified_entropy (global threshold)",
                                   "privacy risk score (modified_entropy)"}
    assert "known 80%" in report.notes[0]
    assert report.facts.n_train == 200 and report.facts.model_name == "model.keras"
    assert (tmp_path / "out" / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert "FAR" in capsys.readouterr().out


def test_audit_with_shadow_data(saved, tmp_path):
    assert _audit(saved, tmp_path / "out", "--shadow-data", str(saved / "shadow.npz"), "--shadow-epochs", "3",
                  "--attacks", "confidence") == 0
    report = AuditReport.from_json(tmp_path / "out" / "report.json")
    assert len(next(iter(report.results.values()))) == 400  # every target record is evaluated
    assert "shadow model" in report.notes[0]


def test_audit_with_rmia_and_qmia(saved, tmp_path, capsys):
    """400 attacker records: RMIA holds out 80 as population, 2 references train on halves of the other 320;
    QMIA learns from all 400 as public non-members, 80 of them held out for its calibration."""
    assert _audit(saved, tmp_path / "out", "--shadow-data", str(saved / "shadow.npz"), "--shadow-epochs", "3",
                  "--attack", "rmia", "--references", "2", "--attack", "qmia", "--alpha", "0.1") == 0
    report = AuditReport.from_json(tmp_path / "out" / "report.json")
    assert list(report.results) == ["RMIA (offline)", "QMIA (pinball, alpha=0.1)"]
    rmia, qmia = report.results.values()
    assert len(rmia) == len(qmia) == 400  # every target member and non-member
    assert rmia.auc > 0.55 and qmia.auc > 0.55  # the target (train accuracy 1) leaks
    meta = rmia.metadata
    assert (meta["method"], meta["n_models"], meta["online"], meta["a_setting"]) == ("RMIA", 2, False, "auto")
    assert len(meta["a_grid_auc"]) == len(A_GRID) and meta["a"] == A_GRID[np.argmax(meta["a_grid_auc"])]
    assert meta["population_records"] == 80 and meta["fit"]["epochs"] == 3
    calibration = qmia.metadata["calibration"]
    assert qmia.metadata["alpha"] == 0.1 and calibration["alpha"] == 0.1
    assert calibration["held_out"] == 80 and sum(qmia.metadata["public_records"].values()) == 400
    false_positives = calibration["false_positives"]
    assert calibration["observed_fpr"] == false_positives / 80
    low, high = stats.binomtest(false_positives, 80).proportion_ci(0.95, method="exact")
    assert (calibration["ci_low"], calibration["ci_high"]) == pytest.approx((low, high), abs=1e-9)
    assert qmia.metadata["architecture"] == "target architecture"
    assert any("80 other attacker records (20%, seeded) are its population" in note for note in report.notes)
    out = capsys.readouterr().out
    assert "settings of RMIA (offline): 2 reference models, offline" in out
    assert "calibration of QMIA (pinball, alpha=0.1): alpha = 0.1; observed FPR" in out
    assert "Calibration (QMIA)" in (tmp_path / "out" / "report.html").read_text()


def test_logits_flag_audits_scores_before_the_softmax(saved, tmp_path):
    """A confident model: its float32 probabilities tie at 1.0, its logits do not."""
    model = keras.models.load_model(saved / "model.keras")
    head = model.layers[-1]
    head.set_weights([w * 2.5 for w in head.get_weights()])  # margins past ~17 but short of float32 underflow
    model.save(tmp_path / "model.keras")
    for name in ("members.npz", "non_members.npz", "shadow.npz"):
        shutil.copy(saved / name, tmp_path / name)
    ties = {}
    for flag in ((), ("--logits",)):
        out = tmp_path / ("logits" if flag else "probs")
        assert _audit(tmp_path, out, "--attacks", "loss", "--shadow-data", str(tmp_path / "shadow.npz"),
                      "--shadow-epochs", "2", *flag) == 0
        scores = AuditReport.from_json(out / "report.json")["loss (global threshold)"].scores
        ties[bool(flag)] = len(scores) - len(np.unique(scores))
    assert ties[False] > 20  # many losses are exactly 0 from probabilities
    assert ties[True] == 0


def test_report_rerenders(saved, tmp_path, capsys):
    _audit(saved, tmp_path / "out", "--attacks", "loss")
    capsys.readouterr()
    assert main(["report", str(tmp_path / "out" / "report.json"), "--html", str(tmp_path / "again.html")]) == 0
    assert (tmp_path / "again.html").exists()
    assert main(["report", str(tmp_path / "out" / "report.json")]) == 0
    assert "loss (global threshold)" in capsys.readouterr().out
    (tmp_path / "broken.json").write_text("{not json")
    assert main(["report", str(tmp_path / "broken.json")]) == 2
    assert "broken.json" in capsys.readouterr().err


def test_malformed_npz_files_are_named(saved, tmp_path, capsys):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file")
    no_y = tmp_path / "no_y.npz"
    np.savez(no_y, x=np.zeros((3, 64)))
    objects = tmp_path / "objects.npz"
    np.savez(objects, x=np.array([object(), object()], dtype=object), y=np.zeros(2))
    mismatch = tmp_path / "mismatch.npz"
    np.savez(mismatch, x=np.zeros((3, 64)), y=np.zeros(2))
    for path, expected in ((garbage, "not a valid .npz"), (no_y, "missing array(s) ['y']"),
                           (objects, "cannot read safely"), (mismatch, "x has 3 records but y has 2"),
                           (tmp_path / "absent.npz", "file not found")):
        code = main(["audit", "--model", str(saved / "model.keras"), "--members", str(path),
                     "--non-members", str(saved / "non_members.npz"), "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert code == 2 and f"--members {path}" in err and expected in err, err


def test_lambda_layer_is_refused_under_safe_mode(tmp_path, capsys):
    inputs = keras.Input((64,))
    hidden = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.save(tmp_path / "lambda.keras")
    np.savez(tmp_path / "m.npz", x=np.zeros((4, 64)), y=np.zeros(4, int))
    code = main(["audit", "--model", str(tmp_path / "lambda.keras"), "--members", str(tmp_path / "m.npz"),
                 "--non-members", str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "refused under safe_mode" in err and "lambda.keras" in err


def test_bad_attack_name_and_missing_model(saved, tmp_path, capsys):
    assert _audit(saved, tmp_path / "o", "--attacks", "loss,magic") == 2
    assert "magic" in capsys.readouterr().err
    code = main(["audit", "--model", str(tmp_path / "none.keras"), "--members", "a", "--non-members", "b"])
    assert code == 2 and "file not found" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["demo"], ["audit"], ["report"]])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as info:
        main(command + ["--help"])
    assert info.value.code == 0
    assert "usage: tfmia" in capsys.readouterr().out


def test_console_script_is_installed():
    exe = shutil.which("tfmia") or str(__import__("pathlib").Path(sys.executable).with_name("tfmia"))
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "demo" in out.stdout and "audit" in out.stdout


def test_demo_end_to_end(tmp_path):
    exe = shutil.which("tfmia") or str(__import__("pathlib").Path(sys.executable).with_name("tfmia"))
    out = subprocess.run([exe, "demo", "--quiet", "--epochs", "3", "--split-size", "60", "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "TPR@0.1%FPR" in out.stdout and "FAR" in out.stdout
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    names = [r["name"] for r in data["results"]]
    assert "correctness" in names and "modified_entropy (class-dependent threshold)" in names
    assert "privacy risk score (modified_entropy)" in names and len(names) == 10
    assert (tmp_path / "r" / "report.html").exists()
