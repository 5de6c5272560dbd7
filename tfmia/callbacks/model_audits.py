"""RMIA and quantile-regression MIA inside :class:`~tfmia.callbacks.PrivacyAuditCallback`.

Both need more than the model's outputs on the audited records, so they are
:class:`~tfmia.callbacks.audit.ModelAudit` objects: ``prepare(view)`` once
before the first epoch, ``evaluate(view)`` at each audited epoch.

* :func:`rmia_audit` (:class:`RMIAAudit`): offline RMIA.  K reference models
  are trained ONCE, in ``on_train_begin`` of the first fit (or beforehand,
  :meth:`RMIAAudit.fit_references`), on attacker data disjoint from the
  audited records, and queried on the audited and population records.  At
  each audited epoch only the target runs (on the population records; its
  outputs on the audited records are the callback's) and
  :func:`~tfmia.attacks.rmia.rmia_scores` compares them with the fixed
  references' signals.  A later fit on the same audited records reuses the
  references.
* :func:`qmia_audit` (:class:`QMIAAudit`): at each audited epoch the
  regressor is trained anew on the current target's hinge scores of the public
  non-members (the target changes, so does the threshold it must learn): a
  small MLP for a few epochs by default, the target's own architecture with
  ``architecture="target"``.
"""

from __future__ import annotations


import numpy as np

from ..attacks.qmia import QuantileMIA, hinge_scores
from ..attacks.rmia import RMIA
from ..evaluation import AttackResult
from ..runs import fingerprint_arrays
from ..training import FitConfig
from .audit import AuditView, ModelAudit, audit_records

__all__ = ["RMIAAudit", "QMIAAudit", "rmia_audit", "qmia_audit"]


class RMIAAudit(ModelAudit):
    """RMIA with reference models trained once, the target's signal recomputed at every audit.

    Args:
        attack: an unfitted :class:`~tfmia.attacks.RMIA` (its recipe, K, a, gamma, T, run_dir, executor).
        population: ``(x, y)`` records that neither the target nor any reference trains on.
        reference_data: ``(x, y)`` attacker data to train the references on (offline RMIA;
            disjoint from the audited and population records); None for online RMIA, whose
            references train on halves of the audited records.
        name: the attack's name in the report and its log key.
    """

    def __init__(self, attack: RMIA, population, *, reference_data=None, name: str = "rmia"):
        if not isinstance(attack, RMIA):
            raise ValueError(f"attack must be a tfmia.attacks.RMIA, got {type(attack).__name__}")
        if attack.online and reference_data is not None:
            raise ValueError("reference_data is for offline RMIA; online references train on the audited records")
        if not attack.online and reference_data is None:
            raise ValueError("reference_data: offline RMIA needs attacker data (x, y) to train references on")
        self.attack = attack
        self.population = audit_records(population, "population")
        self.reference_data = None if reference_data is None else audit_records(reference_data, "reference_data")
        self.name = name
        self._fitted_for: tuple | None = None  # (the audited records' fingerprint, logits) fitted for

    def fit_references(self, members, non_members) -> "RMIAAudit":
        """Train the references for these audited records (the callback's), unless done already for them."""
        members, non_members = audit_records(members, "members"), audit_records(non_members, "non_members")
        fingerprint = (fingerprint_arrays(*members, *non_members), self.attack.logits)
        if fingerprint != self._fitted_for:
            self.attack.fit(np.concatenate([members[0], non_members[0]]), np.concatenate([members[1], non_members[1]]),
                            population=self.population, reference_data=self.reference_data)
            self._fitted_for = fingerprint
        return self

    def prepare(self, view: AuditView) -> None:
        view.check_records(self.population, "population")
        if self.reference_data is not None:
            view.check_records(self.reference_data, "reference_data")
        self.attack.logits = view.logits  # the references' outputs are read as the callback reads the target's
        self.fit_references(view.members_xy, view.non_members_xy)

    def evaluate(self, view: AuditView) -> AttackResult:
        n_in, n_out = len(view.members), len(view.non_members)
        return self.attack.evaluate(view.members, view.non_members, population=view.outputs(*self.population),
                                    member_indices=np.arange(n_in), non_member_indices=np.arange(n_in, n_in + n_out),
                                    name=self.name)


class QMIAAudit(ModelAudit):
    """Quantile-regression MIA whose regressor is retrained on the current target at every audit.

    Args:
        attack: a :class:`~tfmia.attacks.QuantileMIA` (alpha, head, training settings, seed).
        public: ``(x, y)`` public non-members: records the target never trains on.
        architecture: ``"mlp"`` (default: the small MLP, quick to retrain every epoch) or
            ``"target"`` (the target's architecture with a regression head); the attack's
            ``regressor_fn``, when set, replaces both.
        name: the attack's name in the report and its log key.
    """

    def __init__(self, attack: QuantileMIA, public, *, architecture: str = "mlp", name: str = "qmia"):
        if not isinstance(attack, QuantileMIA):
            raise ValueError(f"attack must be a tfmia.attacks.QuantileMIA, got {type(attack).__name__}")
        if architecture not in ("mlp", "target"):
            raise ValueError(f"architecture must be 'mlp' or 'target', got {architecture!r}")
        self.attack = attack
        self.public = audit_records(public, "public")
        if self.public[0].dtype.kind not in "biuf":
            raise ValueError(f"public x must hold real numbers for the regressor, got dtype {self.public[0].dtype}")
        self.architecture = architecture
        self.name = name

    def prepare(self, view: AuditView) -> None:
        view.check_records(self.public, "public")
        if view.members_xy[0].dtype.kind not in "biuf":
            raise ValueError("QMIA's regressor reads the records' inputs: members x must hold real numbers, "
                             f"got dtype {view.members_xy[0].dtype}")

    def evaluate(self, view: AuditView) -> AttackResult:
        x_public, y_public = self.public
        self.attack.logits = view.logits  # the outputs are read as the callback reads them; say so in the metadata
        self.attack.fit_signal(x_public, hinge_scores(view.outputs(x_public, y_public)),
                               target=view.model if self.architecture == "target" else None)
        return self.attack.evaluate_observed(view.members_xy[0], view.members, view.non_members_xy[0],
                                             view.non_members, name=self.name)


def rmia_audit(model_fn, *, reference_data, population, fit: FitConfig, n_references: int = 2,
               a: float | str = "auto", gamma: float = 1.0, temperature: float = 1.0, seed: int = 0, run_dir=None,
               executor=None, progress: bool = False, name: str = "rmia") -> RMIAAudit:
    """Offline RMIA for :class:`~tfmia.callbacks.PrivacyAuditCallback` (see the module docstring).

    ``model_fn`` and ``fit`` are the target's recipe; each of the
    ``n_references`` references trains on a random half of
    ``reference_data`` (give about twice the target's training-set size).
    ``a="auto"`` chooses a from the references alone (needs
    ``n_references >= 2``).  ``run_dir`` keeps the references on disk, so a
    new process resumes instead of retraining.
    """
    attack = RMIA(model_fn, fit=fit, n_models=n_references, online=False, temperature=temperature, gamma=gamma,
                  a=a, executor=executor, run_dir=run_dir, seed=seed, progress=progress)
    return RMIAAudit(attack, population, reference_data=reference_data, name=name)


def qmia_audit(public, *, alpha: float = 0.05, head: str = "pinball", architecture: str = "mlp", epochs: int = 20,
               patience: int = 5, batch_size: int = 64, seed: int = 0, name: str = "qmia", **options) -> QMIAAudit:
    """Quantile-regression MIA for :class:`~tfmia.callbacks.PrivacyAuditCallback` (see the module docstring).

    ``public`` are non-members the target never trains on; the regressor
    retrains on them at every audited epoch (``epochs`` at most, early
    stopping after ``patience``).  ``options`` go to
    :class:`~tfmia.attacks.QuantileMIA` (``regressor_fn``, ``learning_rate``,
    ``calibration_fraction``, ...).  The target's outputs are read as the
    callback reads them (its ``logits`` option).
    """
    attack = QuantileMIA(alpha, head=head, epochs=epochs, patience=patience, batch_size=batch_size, seed=seed,
                         **options)
    return QMIAAudit(attack, public, architecture=architecture, name=name)
