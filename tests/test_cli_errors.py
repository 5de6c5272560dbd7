"""The CLI's contract on bad input: exit status 2 and one line naming the file, never a traceback.

Hostile and malformed files for ``tfmia report`` (hand-edited report JSON,
altered side files) and ``tfmia audit`` (arrays of the wrong kind, memory-bomb
headers, truncated models), names with terminal control characters, and the
same checks when the library is called from Python.  A few cases run the real
console script; the rest call ``tfmia.cli.main`` in-process, which is the same
code path after argument parsing.
"""

import hashlib
import io
import json
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tfmia.audit import run_audit
from tfmia.cli import main
from tfmia.evaluation import AttackResult
from tfmia.report import AuditReport, ModelFacts

EXE = shutil.which("tfmia") or str(Path(sys.executable).with_name("tfmia"))


def _run_script(*args):
    return subprocess.run([EXE, *args], capture_output=True, timeout=300)


def _result(name="loss", n=60, seed=0):
    rng = np.random.default_rng(seed)
    is_member = np.arange(2 * n) < n
    labels = rng.integers(0, 3, 2 * n)
    return AttackResult.from_scores(rng.normal(size=2 * n) + is_member, is_member, name=name, labels=labels,
                                    predicted_labels=labels, losses=rng.exponential(size=2 * n), threshold=0.5)


def _saved_report(folder: Path, name="loss", model_name="mlp", notes=("a note",)) -> Path:
    report = AuditReport([_result(name)], ModelFacts(model_name=model_name, train_accuracy=0.9, test_accuracy=0.7),
                         notes=list(notes))
    path = folder / "report.json"
    report.to_json(path)
    return path


def _edit(path: Path, change) -> Path:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    return path


def _one_line_error(code, err: str, *names):
    """Exit 2, one line on stderr, no traceback, every name in it."""
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    for name in names:
        assert str(name) in err, err
    return err


def _report_error(path, capsys, *expected):
    code = main(["report", str(path)])
    err = capsys.readouterr().err
    return _one_line_error(code, err, path, *expected)


# -- tfmia report: hand-edited JSON -----------------------------------------------------------
@pytest.mark.parametrize("change, expected", [
    (lambda d: d.update(results={}), "results must be a list (each item an object), got {}"),
    (lambda d: d.update(results=None), "results must be a list (each item an object), got null"),
    (lambda d: d.update(results=["a", "b"]), 'results[0] must be an object, got "a"'),
    (lambda d: d["results"][0].update(threshold="abc"), 'results[0].threshold must be a number or null, got "abc"'),
    (lambda d: d["results"][0].update(metadata=[1, 2]), "results[0].metadata must be an object (each value a JSON value), got [1, 2]"),
    (lambda d: d["results"][0].update(adaptive=2), "results[0].adaptive must be true or false or null, got 2"),
    (lambda d: d["facts"].update(train_accuracy="high"), 'facts.train_accuracy must be a number or null, got "high"'),
    (lambda d: d["facts"].update(train_accuracy=1.5), "facts.train_accuracy must be in [0, 1]"),
    (lambda d: d["facts"].update(n_train=-3), "facts.n_train must be an integer in [0,"),
    (lambda d: d.update(notes="abc"), 'notes must be a list (each item a string), got "abc"'),
    (lambda d: d["results"][0]["records"].update(members=2**70), "results[0].records.members must be an integer in [0, 9223372036854775807], got 1180591620717411303424"),
    (lambda d: d["arrays"]["entries"]["r0.scores"].update(shape=[2**70]), 'arrays.entries["r0.scores"].shape[0] must be an integer'),
    (lambda d: d["arrays"].update(file="../elsewhere.npz"), "arrays.file must be a file name without folders"),
    (lambda d: d["results"][0].pop("name"), "results[0].name is missing"),
    (lambda d: d["results"][0].update(nmae="x"), "results[0].nmae is not a known field"),
    (lambda d: d.update(version=1), "unsupported AuditReport version 1"),
    (lambda d: d["results"][0]["arrays"].update(scores="r0.nothing"), "results[0].arrays.scores names 'r0.nothing'"),
    (lambda d: d["results"][0]["arrays"].update(scores="r0.labels"), "results[0].arrays.scores: array 'r0.labels' is int64"),
    (lambda d: d["results"].append(d["results"][0]), "a result named 'loss' is already in the report"),
])
def test_hand_edited_report_json_is_refused_naming_file_and_field(tmp_path, capsys, change, expected):
    path = _edit(_saved_report(tmp_path), change)
    with pytest.raises(ValueError) as info:
        AuditReport.from_json(path)
    assert str(info.value).startswith(f"{path}: ") and expected in str(info.value)
    _report_error(path, capsys, expected)


@pytest.mark.parametrize("text, expected", [
    (None, "report is not valid JSON"),  # truncated: the first half of a real report
    ("hello, world", "report is not valid JSON"),
    ('{"format": "tfmia.AuditReport", "version": 2, "title": NaN}', "NaN is not valid in strict JSON"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"results": []}', "not a tfmia AuditReport"),
])
def test_broken_json_is_refused(tmp_path, capsys, text, expected):
    path = _saved_report(tmp_path)
    path.write_text(path.read_text()[: len(path.read_text()) // 2] if text is None else text)
    _report_error(path, capsys, expected)


def test_binary_file_is_refused(tmp_path, capsys):
    path = tmp_path / "report.json"
    path.write_bytes(bytes(range(256)))
    _report_error(path, capsys, "not UTF-8 text")


def test_report_script_on_results_as_object_exits_2(tmp_path):
    path = _edit(_saved_report(tmp_path), lambda d: d.update(results={}))
    out = _run_script("report", str(path))
    err = out.stderr.decode()
    _one_line_error(out.returncode, err, path, "results must be a list")


# -- tfmia report: the side file --------------------------------------------------------------
def _rewrite_side_file(path: Path, **replacements):
    """A forged but self-consistent pair: new arrays in the side file, its size and SHA-256 updated in the JSON."""
    side = path.with_name("report.arrays.npz")
    with np.load(side) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(replacements)
    np.savez(side, **arrays)
    raw = side.read_bytes()

    def update(d):
        d["arrays"].update(bytes=len(raw), sha256=hashlib.sha256(raw).hexdigest())
        d["arrays"]["entries"] = {k: {"dtype": a.dtype.name, "shape": list(a.shape)} for k, a in arrays.items()}

    return _edit(path, update)


def test_missing_side_file_is_refused(tmp_path, capsys):
    path = _saved_report(tmp_path)
    (tmp_path / "report.arrays.npz").unlink()
    _report_error(path, capsys, "report.arrays.npz is missing", "copy both")


def test_altered_side_file_is_refused(tmp_path, capsys):
    path = _saved_report(tmp_path)
    side = tmp_path / "report.arrays.npz"
    raw = bytearray(side.read_bytes())
    raw[len(raw) // 2] ^= 1
    side.write_bytes(bytes(raw))
    _report_error(path, capsys, "does not match the report", "SHA-256 differs")
    side.write_bytes(bytes(raw[:-10]))
    _report_error(path, capsys, "does not match the report", f"it has {len(raw) - 10} bytes, the report recorded {len(raw)}")


def test_membership_byte_2_in_a_forged_side_file_is_refused(tmp_path, capsys):
    path = _saved_report(tmp_path)
    is_member = (np.arange(120) < 60).view(np.uint8).copy()
    is_member[0] = 2  # reads as True, but ~2 is True as well: a record both member and non-member
    path = _rewrite_side_file(path, **{"r0.is_member": is_member.view(np.bool_)})
    _report_error(path, capsys, "r0.is_member", "bool array holding bytes other than 0 and 1")


@pytest.mark.parametrize("array, expected", [
    (np.full(120, -5, dtype=np.int64), "results[0]: labels must be non-negative"),
    (np.full(120, 2**64 - 1, dtype=np.uint64), 'arrays.entries["r0.labels"].dtype must be one of'),
    (np.zeros(7, dtype=np.int64), "results[0].arrays.labels: array 'r0.labels' is int64 [7]"),
])
def test_bad_labels_in_a_forged_side_file_are_refused(tmp_path, capsys, array, expected):
    path = _rewrite_side_file(_saved_report(tmp_path), **{"r0.labels": array})
    _report_error(path, capsys, expected)


def test_json_text_cannot_locate_its_side_file(tmp_path):
    text = _saved_report(tmp_path).read_text()
    with pytest.raises(ValueError, match="load the report from its path"):
        AuditReport.from_json(text)
    with pytest.raises(ValueError, match="holds no per-record arrays"):
        AuditReport.from_json(AuditReport([_result()]).to_json())


# -- names with terminal control characters ---------------------------------------------------
def test_control_characters_in_names_are_escaped_in_text_output(tmp_path):
    evil = "loss\x1b[2J\x1b]0;owned\x07\u202e\nFAKE ROW"
    path = _saved_report(tmp_path, name=evil, model_name="m\x1b[31m", notes=["n\rote"])
    out = _run_script("report", str(path))
    assert out.returncode == 0, out.stderr.decode()
    text = out.stdout.decode()
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text and "\r" not in text
    assert "loss\\x1b[2J\\x1b]0;owned\\x07\\u202e\\x0aFAKE ROW" in text
    assert "m\\x1b[31m" in text and "n\\x0dote" in text
    assert not any(line.startswith("FAKE ROW") for line in text.splitlines())


def test_control_characters_in_file_names_are_escaped_in_errors(tmp_path, capsys):
    path = tmp_path / "r\x1b[2J.json"
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "r\\x1b[2J.json" in err


# -- in Python: what the report and its parts accept ------------------------------------------
def test_notes_as_a_string_is_refused():
    with pytest.raises(TypeError, match="notes must be a list of strings, got str"):
        AuditReport([_result()], notes="calibrated on shadow models")
    with pytest.raises(TypeError, match="notes must hold strings"):
        AuditReport([_result()], notes=["ok", 3])


@pytest.mark.parametrize("kwargs, match", [
    ({"train_accuracy": "0.9"}, "train_accuracy must be a number"),
    ({"test_accuracy": 7.0}, r"test_accuracy must be in \[0, 1\]"),
    ({"n_train": 2.5}, "n_train must be a non-negative integer"),
    ({"epoch": True}, "epoch must be a non-negative integer"),
    ({"model_name": 3}, "model_name must be a string"),
    ({"extra": "dataset"}, "extra must be a mapping"),
])
def test_model_facts_refuse_wrong_types(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        ModelFacts(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"threshold": "abc"}, "threshold must be a number or None"),
    ({"adaptive": 2}, "adaptive must be True, False or None"),
    ({"metadata": "abc"}, "metadata must be a mapping"),
])
def test_attack_result_refuses_wrong_types(kwargs, match):
    with pytest.raises(TypeError, match=match):
        AttackResult.from_scores([0.1, 0.9], [0, 1], **kwargs)


def test_inline_membership_value_2_is_refused():
    record = _result().to_dict()
    record["is_member"]["data"][0] = 2
    with pytest.raises(ValueError, match="bool array data must be true/false"):
        AttackResult.from_dict(record)
    record = _result().to_dict()
    record["labels"]["data"][0] = 2**70
    with pytest.raises(ValueError, match="out of range"):
        AttackResult.from_dict(record)


# -- tfmia audit: hostile inputs --------------------------------------------------------------
@pytest.fixture(scope="module")
def target(tmp_path_factory):
    """An untrained 8-feature, 3-class model and valid member / non-member files."""
    import keras

    folder = tmp_path_factory.mktemp("audit_errors")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.save(folder / "model.keras")
    rng = np.random.default_rng(0)
    for name in ("members", "non_members"):
        np.savez(folder / f"{name}.npz", x=rng.normal(size=(30, 8)).astype(np.float32), y=rng.integers(0, 3, 30))
    return folder


def _audit_error(target, capsys, tmp_path, *, members=None, model=None, out=None, expected=()):
    members = members or target / "members.npz"
    code = main(["audit", "--model", str(model or target / "model.keras"), "--members", str(members),
                 "--non-members", str(target / "non_members.npz"), "--out", str(out or tmp_path / "out")])
    err = capsys.readouterr().err
    flag_and_file = f"--model {model}" if model else ("--out" if out else f"--members {members}")
    return _one_line_error(code, err, flag_and_file, *expected)


def _members(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


X = np.zeros((30, 8), np.float32)
Y = np.zeros(30, np.int64)


@pytest.mark.parametrize("arrays, expected", [
    ({"x": np.float32(1.0), "y": np.int64(0)}, "x must hold one record per row, got a 0-d array"),
    ({"x": np.full((30, 8), "a"), "y": Y}, "x must hold real numbers, got dtype <U1"),
    ({"x": X.astype(np.complex64), "y": Y}, "x must hold real numbers, got dtype complex64"),
    ({"x": np.where(np.arange(30)[:, None] == 4, np.nan, X), "y": Y}, "x contains NaN or Inf (first in record 4)"),
    ({"x": X, "y": np.full(30, 3)}, "y must be class indices [0, 3) (the model has 3 classes), found 3"),
    ({"x": X, "y": np.full(30, -1)}, "found -1"),
    ({"x": X, "y": np.eye(3)[Y]}, "y must be 1-D class indices, got shape (30, 3)"),
    ({"x": X, "y": Y + 0.5}, "y must hold whole-number class indices"),
    ({"x": np.zeros((30, 5), np.float32), "y": Y}, "x has records of shape (5,), the model takes (8,)"),
    ({"x": X[:0], "y": Y[:0]}, "no records"),
    ({"x": X}, "missing array(s) ['y']; found ['x']"),
    ({"x": np.array([object()] * 30, dtype=object), "y": Y}, "holds Python objects, which need pickle (refused)"),
])
def test_bad_member_arrays_are_refused_naming_the_file(target, tmp_path, capsys, arrays, expected):
    _audit_error(target, capsys, tmp_path, members=_members(tmp_path, **arrays), expected=[expected])


def _npy_bytes(shape, dtype="<f8", data=b"") -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": shape})
    return header.getvalue() + data


def test_header_declaring_petabytes_is_refused_before_loading(target, tmp_path):
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", _npy_bytes((10**13,), data=b"\0" * 8))
        zf.writestr("y.npy", _npy_bytes((1,), "<i8", b"\0" * 8))
    assert bomb.stat().st_size < 400
    out = _run_script("audit", "--model", str(target / "model.keras"), "--members", str(bomb),
                      "--non-members", str(target / "non_members.npz"), "--out", str(tmp_path / "out"))
    _one_line_error(out.returncode, out.stderr.decode().splitlines()[-1] + "\n", f"--members {bomb}",
                    "header declares shape (10000000000000,) of float64 (80000000000000 bytes) but the member holds 8 bytes")


def _forge_sizes(path: Path, member: str, size: int, *, stored: bool):
    """Overwrite a member's sizes in the zip's central directory (what readers trust)."""
    raw = bytearray(path.read_bytes())
    entry = raw.rfind(member.encode()) - 46  # the central directory entry's fixed part precedes the name
    assert raw[entry:entry + 4] == b"PK\x01\x02"
    if stored:
        struct.pack_into("<I", raw, entry + 20, size)  # compressed size
    struct.pack_into("<I", raw, entry + 24, size)  # uncompressed size
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_forged_zip_sizes_are_refused(target, tmp_path, capsys, compression):
    declared = 4_000_000_000
    forged = tmp_path / "forged.npz"
    member = _npy_bytes((declared,), "|u1", b"\0" * 16)
    with zipfile.ZipFile(forged, "w", compression) as zf:
        zf.writestr("y.npy", _npy_bytes((30,), "<i8", b"\0" * 240))
        zf.writestr("x.npy", member)
    _forge_sizes(forged, "x.npy", len(member) - 16 + declared, stored=compression == zipfile.ZIP_STORED)
    _audit_error(target, capsys, tmp_path, members=forged, expected=["array 'x'", "forged sizes"])


def test_out_naming_an_existing_file_is_refused(target, tmp_path, capsys):
    existing = tmp_path / "report"
    existing.write_text("not a folder")
    _audit_error(target, capsys, tmp_path, out=existing, expected=[f"--out {existing}: exists and is not a folder"])
    assert existing.read_text() == "not a folder"


def test_truncated_keras_file_is_not_a_valid_keras_file(target, tmp_path, capsys):
    truncated = tmp_path / "model.keras"
    raw = (target / "model.keras").read_bytes()
    truncated.write_bytes(raw[: len(raw) // 2])
    err = _audit_error(target, capsys, tmp_path, model=truncated, expected=["not a valid .keras file"])
    assert "not found" not in err


def test_html_into_a_folder_is_refused(tmp_path, capsys):
    path = _saved_report(tmp_path)
    code = main(["report", str(path), "--html", str(tmp_path)])
    _one_line_error(code, capsys.readouterr().err, f"--html {tmp_path}: cannot write")


@pytest.mark.parametrize("extra, expected", [
    (["--attack", "rmia"], "--attack rmia needs --shadow-data (an .npz with x and y): the attacker's own records, "
                           "for RMIA's reference models and population records"),
    (["--attack", "loss,qmia", "--attack", "rmia"], "--attack qmia,rmia needs --shadow-data"),
    (["--attack", "rmia", "--references", "1", "--shadow-data", "s.npz"], "--references 1 needs --rmia-a"),
    (["--attack", "rmia,magic"], "--attacks: unknown ['magic']"),
])
def test_rmia_and_qmia_options_are_checked_before_any_file_is_read(capsys, tmp_path, extra, expected):
    code = main(["audit", "--model", "absent.keras", "--members", "a", "--non-members", "b",
                 "--out", str(tmp_path / "out"), *extra])
    _one_line_error(code, capsys.readouterr().err, expected)
    assert not (tmp_path / "out").exists()


def test_rmia_refuses_a_model_saved_without_its_compile_settings(target, tmp_path, capsys):
    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])
    model.save(tmp_path / "uncompiled.keras")
    code = main(["audit", "--model", str(tmp_path / "uncompiled.keras"), "--members", str(target / "members.npz"),
                 "--non-members", str(target / "non_members.npz"), "--shadow-data", str(target / "members.npz"),
                 "--attack", "rmia", "--out", str(tmp_path / "out")])
    _one_line_error(code, capsys.readouterr().err, "uncompiled.keras", "must be saved compiled")


@pytest.mark.parametrize("flag, value, expected", [
    ("--rmia-a", "1.5", "argument --rmia-a: must be 'auto' or a number in [0, 1], got 1.5"),
    ("--rmia-a", "often", "invalid 'auto' or number value: 'often'"),
    ("--references", "0", "argument --references: must be an integer >= 1, got 0"),
    ("--alpha", "1", "argument --alpha: must be a number in (0, 1), got 1"),
    ("--population-fraction", "0", "argument --population-fraction: must be a number in (0, 1), got 0"),
    ("--seed", "-1", "argument --seed: must be an integer >= 0, got -1"),
    ("--shadow-epochs", "0", "argument --shadow-epochs: must be an integer >= 1, got 0"),
    ("--known-fraction", "1.5", "argument --known-fraction: must be a number in (0, 1), got 1.5"),
    ("--known-fraction", "nan", "must be a number in (0, 1), got nan"),
    ("--known-fraction", "x", "invalid fraction value: 'x'"),
])
def test_numeric_options_are_checked_before_any_file_is_read(capsys, flag, value, expected):
    with pytest.raises(SystemExit) as info:
        main(["audit", "--model", "absent.keras", "--members", "a", "--non-members", "b", flag, value])
    assert info.value.code == 2 and expected in capsys.readouterr().err


# -- run_audit from Python: the same checks, naming the argument --------------------------------
@pytest.mark.parametrize("x, y, expected", [
    (np.where(np.arange(30)[:, None] == 2, np.inf, X), Y, "members_xy: x contains NaN or Inf (first in record 2)"),
    (X.astype(np.complex128), Y, "members_xy: x must hold real numbers"),
    (X, np.full(30, 7), "members_xy: y must be class indices [0, 3)"),
    (X[:20], Y, "members_xy: x has 20 records but y has 30"),
])
def test_run_audit_checks_records_before_predicting(target, x, y, expected):
    import keras

    model = keras.saving.load_model(target / "model.keras")
    with pytest.raises(ValueError) as info:
        run_audit(model, (x, y), (X, Y), attacks=["loss"])
    assert expected in str(info.value)


@pytest.mark.parametrize("kwargs, expected", [
    ({"attacks": ["qmia"]}, "shadow_data: qmia needs the attacker's own records"),
    ({"attacks": ["rmia"], "shadow_data": (X, Y), "references": 1}, "rmia_a: with 1 reference model"),
    ({"attacks": ["rmia"], "shadow_data": (X, Y), "rmia_a": -0.5}, "rmia_a must be 'auto' or a number in [0, 1]"),
    ({"attacks": ["rmia"], "shadow_data": (X[:2], Y[:2])}, "shadow_data: 2 records are too few"),
    ({"alpha": 0.0}, "alpha must be in (0, 1)"),
    ({"references": 0}, "references must be >= 1"),
    ({"seed": -1}, "seed must be >= 0"),
    ({"shadow_epochs": 0}, "shadow_epochs must be >= 1"),
    ({"known_fraction": 1.0}, "known_fraction must be in (0, 1)"),
    ({"model_name": 5}, "model_name must be a string"),
])
def test_run_audit_checks_its_options(target, kwargs, expected):
    import keras

    model = keras.saving.load_model(target / "model.keras")
    with pytest.raises((ValueError, TypeError)) as info:
        run_audit(model, (X, Y), (X, Y), **{"attacks": ["loss"], **kwargs})
    assert expected in str(info.value)
