"""PrivacyAuditCallback never breaks model.fit: bad set-ups fail before the first epoch, audits that
cannot be computed during training warn and log NaN, and nothing a fit wrote is overwritten by the next."""

import functools
import math
import warnings

import keras
import numpy as np
import pytest
from _models import digits, digits_mlp
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from tfmia import plotting
from tfmia.callbacks import PrivacyAuditCallback
from tfmia.report import AuditReport
from tfmia.training import build_model

tiny_mlp = functools.partial(digits_mlp, 8)


class EpochCounter(keras.callbacks.Callback):
    """Counts the epochs that began."""

    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs += 1


@pytest.fixture()
def data():
    x, y = digits()
    return (x[:48].copy(), y[:48].copy()), (x[48:96].copy(), y[48:96].copy())


def _fit_refused(model, members, non_members, match, **kwargs):
    """Build the callback and fit with it on clean data: a ValueError matching ``match`` before any epoch began."""
    x, y = digits()
    counter = EpochCounter()
    with pytest.raises(ValueError, match=match):
        audit = PrivacyAuditCallback(members, non_members, **kwargs)
        model.fit(x[:48], y[:48], epochs=2, batch_size=16, verbose=0, callbacks=[counter, audit])
    assert counter.epochs == 0


def test_nan_in_members_x_is_refused_before_any_epoch(data):
    (x_tr, y_tr), non_members = data
    x_tr[5, 3] = np.nan
    _fit_refused(build_model(tiny_mlp, seed=0), (x_tr, y_tr), non_members, r"members.*NaN")


def test_label_beyond_the_models_classes_is_refused_before_any_epoch(data):
    members, (x_te, y_te) = data
    y_te[7] = 10  # the model has classes 0..9
    _fit_refused(build_model(tiny_mlp, seed=0), members, (x_te, y_te), r"non_members.*label 10.*10 classes")


def test_logits_on_a_sigmoid_head_is_refused_before_any_epoch(data):
    members, non_members = data
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    _fit_refused(model, members, non_members, "logits=True.*softmax.*'sigmoid'", logits=True)


def test_logits_on_an_activation_softmax_head_audit_the_scores_before_it(data):
    """The logged loss AUC is that of the float64 log-softmax of the Dense layer's output, computed here."""
    from scipy.special import log_softmax
    from sklearn.metrics import roc_auc_score

    (x_in, y_in), (x_out, y_out) = data
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, name="scores"),
                              keras.layers.Activation("softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    audit = PrivacyAuditCallback((x_in, y_in), (x_out, y_out), attacks=["loss"], logits=True)
    history = model.fit(x_in, y_in, epochs=1, batch_size=16, verbose=0, callbacks=[audit])
    kernel, bias = (np.asarray(w, np.float64) for w in model.get_layer("scores").get_weights())
    x, y = np.concatenate([x_in, x_out]).astype(np.float64), np.concatenate([y_in, y_out])
    loss = -log_softmax(x @ kernel + bias, axis=1)[np.arange(len(y)), y]
    expected = roc_auc_score(np.repeat([1, 0], [len(y_in), len(y_out)]), -loss)
    # The model computes its scores in float32: two losses closer than float32 rounding may swap, and one
    # member/non-member swap moves the AUC by 1 / (members * non-members).
    assert history.history["mia_loss_auc"][0] == pytest.approx(expected, abs=1.0 / (len(y_in) * len(y_out)))


@pytest.mark.parametrize("argument", ["report_dir", "log_dir"])
@pytest.mark.parametrize("where", ["under a regular file", "a regular file"])
def test_unusable_output_folder_is_refused_before_any_epoch(data, tmp_path, argument, where):
    members, non_members = data
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    folder = blocker / "reports" if where == "under a regular file" else blocker
    _fit_refused(build_model(tiny_mlp, seed=0), members, non_members, argument, **{argument: folder})
    assert blocker.read_text() == "not a folder"


class PoisonAfter(keras.callbacks.Callback):
    """Sets the output layer's weights to NaN at the end of one epoch: the model has diverged."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            head = self.model.layers[-1]
            head.set_weights([np.full_like(w, np.nan) for w in head.get_weights()])


def test_a_diverged_model_warns_logs_nan_and_training_goes_on(data, tmp_path):
    (x_tr, y_tr), non_members = data
    model = build_model(tiny_mlp, seed=0)
    counter = EpochCounter()
    audit = PrivacyAuditCallback((x_tr, y_tr), non_members, report_dir=tmp_path / "reports")
    csv_log = tmp_path / "log.csv"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x_tr, y_tr, epochs=3, batch_size=16, verbose=0,
                            callbacks=[counter, PoisonAfter(epoch=1), audit, keras.callbacks.CSVLogger(csv_log)])
    assert counter.epochs == 3
    h = history.history
    mia_keys = sorted(k for k in h if k.startswith("mia_"))
    assert "mia_auc" in mia_keys and "mia_loss_auc" in mia_keys
    assert all(len(h[k]) == 3 for k in mia_keys)  # the same keys every epoch
    assert math.isfinite(h["mia_auc"][0])
    assert all(math.isnan(h[k][epoch]) for k in mia_keys for epoch in (1, 2))
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any("epoch 2" in m and "NaN" in m for m in messages), messages
    rows = open(csv_log).read().splitlines()
    assert len(rows) == 4 and "nan" in rows[2].lower()
    run = audit.run_dir
    failed = AuditReport.from_json(run / "audit_epoch_0002.json")
    assert not failed.results and failed.facts.epoch == 2 and any("NaN" in note for note in failed.notes)
    assert (run / "privacy_vs_epoch.png").stat().st_size > 1000  # from epoch 1, the only audit that could be computed


def _literal_width(text, renderer):
    """Width of ``text``'s string drawn in its font as plain text (no mathtext, no TeX)."""
    reference = Text(0, 0, text.get_text(), fontproperties=text.get_fontproperties(), usetex=False,
                     parse_math=False)
    reference.set_figure(text.get_figure())
    return reference.get_window_extent(renderer).width


def _assert_drawn_literally(fig, names):
    renderer = FigureCanvasAgg(fig).get_renderer()
    texts = [t for t in fig.findobj(Text) if any(name in t.get_text() for name in names)]
    assert {name for name in names if any(name in t.get_text() for t in texts)} == set(names)
    for text in texts:
        assert text.get_window_extent(renderer).width == pytest.approx(_literal_width(text, renderer), rel=1e-9)


NAMES = ["loss $\\foo$", "conf $x^2$"]  # not mathtext; valid mathtext (drawn as a formula unless literal)


def test_attack_names_with_dollars_are_drawn_literally_and_training_completes(data, tmp_path):
    (x_tr, y_tr), non_members = data
    model = build_model(tiny_mlp, seed=0)
    audit = PrivacyAuditCallback((x_tr, y_tr), non_members, attacks={NAMES[0]: "loss", NAMES[1]: "confidence"},
                                 report_dir=tmp_path / "reports")
    history = model.fit(x_tr, y_tr, epochs=2, batch_size=16, verbose=0, callbacks=[audit])
    assert len(history.history["loss"]) == 2 and "mia_loss___foo_auc" in history.history
    assert (audit.run_dir / "privacy_vs_epoch.png").stat().st_size > 1000
    _assert_drawn_literally(plotting.plot_privacy_vs_epoch(audit.reports), NAMES)
    results = list(audit.reports[-1].results.values())
    assert [r.name for r in results] == NAMES
    _assert_drawn_literally(plotting.plot_roc(results, title=NAMES[0]), NAMES)
    _assert_drawn_literally(plotting.plot_score_histograms(results), NAMES)


def test_a_second_fit_keeps_the_first_fits_reports(data, tmp_path):
    (x_tr, y_tr), non_members = data
    model = build_model(tiny_mlp, seed=0)
    reports = tmp_path / "reports"
    audit = PrivacyAuditCallback((x_tr, y_tr), non_members, report_dir=reports)
    model.fit(x_tr, y_tr, epochs=1, batch_size=16, verbose=0, callbacks=[audit])
    first = {p.name: p.read_bytes() for p in (reports / "fit-000").iterdir()}
    assert set(first) == {"audit_epoch_0001.json", "audit_epoch_0001.arrays.npz", "privacy_vs_epoch.png"}
    model.fit(x_tr, y_tr, epochs=1, batch_size=16, verbose=0, callbacks=[audit])
    again = PrivacyAuditCallback((x_tr, y_tr), non_members, report_dir=reports)
    model.fit(x_tr, y_tr, epochs=1, batch_size=16, verbose=0, callbacks=[again])
    assert sorted(p.name for p in reports.iterdir()) == ["fit-000", "fit-001", "fit-002"]
    assert {p.name: p.read_bytes() for p in (reports / "fit-000").iterdir()} == first
    assert (audit.run_dir, again.run_dir) == (reports / "fit-001", reports / "fit-002")
    # each fit's report holds its own model state: the audit of the model after the third fit
    latest = AuditReport.from_json(reports / "fit-002" / "audit_epoch_0001.json")
    assert latest["loss"].auc == pytest.approx(again.audit(1)["loss"].auc, abs=1e-12)
    assert len(audit.reports) == 1 and len(again.reports) == 1  # the reports of each callback's latest fit
