"""The ``tfmia`` command line.

``tfmia demo``    train a small model that overfits and audit it end to end (offline).
``tfmia audit``   audit a saved Keras model on member / non-member files.
``tfmia report``  re-render a saved report as HTML or a text summary.

Untrusted files are handled safely: models load with ``safe_mode=True`` (no
Lambda layers or arbitrary code), arrays with ``allow_pickle=False`` after
their headers are checked against the file, reports are JSON checked against
their schema.  Bad input is one line on stderr naming the file and what is
wrong, with exit code 2; names are printed with control characters escaped.
Exit code 1 (a traceback) means an unexpected failure: a bug to report.
"""

from __future__ import annotations

import argparse
import os
import sys
import zipfile
from pathlib import Path

from ._text import printable

__all__ = ["main", "build_parser", "CliError"]


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


# -- loading untrusted files --------------------------------------------------------------
def load_model_safely(path: str):
    """Load a ``.keras`` model with ``safe_mode=True`` or raise CliError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise CliError(f"--model {path}: file not found")
    if p.suffix != ".keras":
        raise CliError(f"--model {path}: expected a .keras file (Keras 3 format)")
    if not zipfile.is_zipfile(p):
        raise CliError(f"--model {path}: not a valid .keras file (not a zip archive: truncated, or not "
                       "written by model.save)")
    import keras

    try:
        return keras.saving.load_model(p, safe_mode=True, compile=True)
    except ValueError as exc:
        text = str(exc)
        if "safe_mode" in text or "Lambda" in text:
            raise CliError(
                f"--model {path}: refused under safe_mode: the file contains code (such as a Lambda layer) "
                "that would run on load; rebuild the model without it or load it yourself if you trust the file"
            ) from None
        raise CliError(f"--model {path}: cannot load: {text.splitlines()[0] if text else exc.__class__.__name__}") from None
    except (OSError, zipfile.BadZipFile, KeyError, TypeError) as exc:
        raise CliError(f"--model {path}: not a valid .keras file ({exc.__class__.__name__}: {exc})") from None


def load_records(path: str, flag: str, model=None):
    """``(x, y)`` from an ``.npz`` with arrays ``x`` and ``y``, checked for auditing ``model``.

    The arrays' headers are checked before any data is read (no pickle, no
    size the file cannot hold: :func:`tfmia._serialization.read_npz`), then
    the records as :func:`tfmia.audit.check_records` does; messages name the
    flag and the file.
    """
    from ._serialization import read_npz
    from .audit import check_records

    try:
        arrays = read_npz(path, ["x", "y"])
    except ValueError as exc:
        raise CliError(f"{flag} {exc}") from None
    try:
        return check_records((arrays["x"], arrays["y"]), f"{flag} {path}", model)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def output_folder(path: str, flag: str = "--out") -> Path:
    """``path`` as a folder to write into, created now so that a bad one fails before any work."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise CliError(f"{flag} {path}: exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"{flag} {path}: cannot create the folder: {exc.strerror or exc}") from None
    return folder


# -- commands ------------------------------------------------------------------------------
def _cmd_demo(args) -> int:
    from .demo import DemoSettings, run_demo

    overrides = {k: v for k, v in (("epochs", args.epochs), ("split_size", args.split_size), ("seed", args.seed))
                 if v is not None}
    run_demo(DemoSettings.for_dataset(args.dataset, **overrides), output_folder(args.out),
             verbose=0 if args.quiet else 1)
    return 0


def _audit_attacks(args) -> list[str]:
    """The ``--attacks``/``--attack`` names (each option a comma-separated list), checked against the other options."""
    from .audit import AUDIT_ATTACKS, SHADOW_DATA_ATTACKS, check_attacks

    given = args.attacks or [",".join(AUDIT_ATTACKS)]
    try:
        attacks = check_attacks(a.strip() for text in given for a in text.split(",") if a.strip())
    except ValueError as exc:
        raise CliError(str(exc)) from None
    needing_data = [a for a in attacks if a in SHADOW_DATA_ATTACKS]
    if needing_data and not args.shadow_data:
        uses = {"rmia": "RMIA's reference models and population records", "qmia": "QMIA's public non-members"}
        raise CliError(f"--attack {','.join(needing_data)} needs --shadow-data (an .npz with x and y): the "
                       f"attacker's own records, for {' and '.join(uses[a] for a in needing_data)}")
    if "rmia" in attacks and args.references == 1 and args.rmia_a == "auto":
        raise CliError("--references 1 needs --rmia-a: a cannot be chosen automatically from one reference model")
    return attacks


def _cmd_audit(args) -> int:
    from .audit import run_audit
    from .report import side_file_path

    attacks = _audit_attacks(args)
    out = output_folder(args.out)
    model = load_model_safely(args.model)
    members = load_records(args.members, "--members", model)
    non_members = load_records(args.non_members, "--non-members", model)
    shadow = load_records(args.shadow_data, "--shadow-data", model) if args.shadow_data else None
    try:
        report = run_audit(model, members, non_members, attacks=attacks, shadow_data=shadow,
                           shadow_epochs=args.shadow_epochs, known_fraction=args.known_fraction, seed=args.seed,
                           model_name=Path(args.model).name, logits=args.logits, references=args.references,
                           rmia_a=args.rmia_a, alpha=args.alpha, population_fraction=args.population_fraction)
    except ValueError as exc:
        raise CliError(f"auditing {args.model}: {exc}") from None
    report.to_json(out / "report.json")
    report.to_html(out / "report.html")
    print(report.summary())
    written = [out / "report.json", side_file_path(out / "report.json"), out / "report.html"]
    print()
    print(printable(f"wrote {', '.join(map(str, written))}"))
    return 0


def _cmd_report(args) -> int:
    from .report import AuditReport

    try:
        report = AuditReport.from_json(Path(args.input))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.html:
        try:
            path = report.to_html(args.html)
        except OSError as exc:
            raise CliError(f"--html {args.html}: cannot write: {exc.strerror or exc}") from None
        print(printable(f"wrote {path}"))
    if args.summary or not args.html:
        print(report.summary())
    return 0


# -- argument types: refused at parse time, before any file is read -----------------------
def _integer_from(minimum: int):
    def integer(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text}")
        return value

    return integer


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {text}")
    return value


_fraction.__name__ = "fraction"  # argparse names the type in "invalid fraction value: 'x'"


def _rmia_a(text: str) -> float | str:
    if text == "auto":
        return text
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a number in [0, 1], got {text}")
    return value


_rmia_a.__name__ = "'auto' or number"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfmia", description="Membership-inference auditing for Keras classifiers.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="train a small model that overfits and audit it end to end (offline)",
                          description="Train a small Keras target that overfits, a shadow model, run the metric "
                                      "attacks and the privacy risk score, and write a report.")
    demo.add_argument("--dataset", choices=("digits", "fashion-mnist"), default="digits",
                      help="digits (bundled with scikit-learn, default) or fashion-mnist (local IDX files)")
    demo.add_argument("--out", default="tfmia-report", help="folder for report.json and report.html (default: %(default)s)")
    demo.add_argument("--epochs", type=_integer_from(1), help="training epochs of the target and shadow models")
    demo.add_argument("--split-size", type=_integer_from(1), help="records in each of target train/test and shadow train/test")
    demo.add_argument("--seed", type=_integer_from(0), help="seed for splits and training")
    demo.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    demo.set_defaults(func=_cmd_demo)

    audit = sub.add_parser("audit", help="audit a saved Keras model on member / non-member records",
                           description="Run the metric attacks and the privacy risk score (by default), RMIA and "
                                       "QMIA against a saved model. Without --shadow-data the metric attacks "
                                       "calibrate on a known part of the members and non-members (Rezaei & Liu's "
                                       "setting) and are evaluated on the rest; with it they calibrate on a shadow "
                                       "model. RMIA and QMIA need --shadow-data and are evaluated on every member "
                                       "and non-member: RMIA (offline) holds out --population-fraction of it as "
                                       "population records and trains --references reference models like the target "
                                       "(its architecture and compile settings, --shadow-epochs epochs) on random "
                                       "halves of the rest; QMIA trains its regressor on all of it as public "
                                       "non-members, a fifth held out to measure the observed FPR next to --alpha.",
                           epilog="examples: tfmia audit --model m.keras --members in.npz --non-members out.npz "
                                  "--shadow-data attacker.npz --attack rmia --references 4 --attack qmia")
    audit.add_argument("--model", required=True, help="the target model, a .keras file (loaded with safe_mode)")
    audit.add_argument("--members", required=True, help=".npz with arrays x and y: records the model trained on")
    audit.add_argument("--non-members", required=True, help=".npz with arrays x and y: records it never saw")
    audit.add_argument("--shadow-data", help=".npz with x and y: the attacker's own data, records the target never "
                                             "saw (a shadow model, RMIA's references and population, QMIA's public "
                                             "non-members)")
    audit.add_argument("--shadow-epochs", type=_integer_from(1), default=30,
                       help="epochs for the shadow model and RMIA's reference models (default: %(default)s)")
    audit.add_argument("--attacks", "--attack", action="append", metavar="NAMES",
                       help="attacks to run, comma-separated; the option may repeat (--attack rmia --attack qmia). "
                            "From correctness, loss, confidence, entropy, modified_entropy, risk_score (the default: "
                            "all six), rmia and qmia (these two need --shadow-data)")
    audit.add_argument("--references", type=_integer_from(1), default=2,
                       help="RMIA: number of reference models K (default: %(default)s)")
    audit.add_argument("--rmia-a", type=_rmia_a, default="auto", metavar="A",
                       help="RMIA: offline correction a in [0, 1], or auto: chosen from the reference models alone "
                            "(needs --references >= 2) (default: %(default)s)")
    audit.add_argument("--population-fraction", type=_fraction, default=0.2,
                       help="RMIA: share of --shadow-data held out (seeded random, --seed) as population records "
                            "no reference trains on (default: %(default)s)")
    audit.add_argument("--alpha", type=_fraction, default=0.05,
                       help="QMIA: targeted false-positive rate of its decisions (default: %(default)s)")
    audit.add_argument("--known-fraction", type=_fraction, default=0.8,
                       help="without --shadow-data: fraction of each class's records the attacker knows (default: %(default)s)")
    audit.add_argument("--seed", type=_integer_from(0), default=0,
                       help="seed for splits and for training shadow, reference and regressor models")
    audit.add_argument("--logits", action="store_true",
                       help="audit the scores before the model's final softmax (float32 probabilities of "
                            "confident records round to 1.0 and tie)")
    audit.add_argument("--out", default="tfmia-report", help="output folder (default: %(default)s)")
    audit.set_defaults(func=_cmd_audit)

    report = sub.add_parser("report", help="re-render a saved report",
                            description="Read a report.json written by tfmia and write its HTML page or print its summary.")
    report.add_argument("input", help="a report.json written by tfmia")
    report.add_argument("--html", help="write the HTML page here")
    report.add_argument("--summary", action="store_true", help="print the text summary (default when --html is absent)")
    report.set_defaults(func=_cmd_report)
    return parser


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CliError, OSError) as exc:  # bad input, or a file that cannot be read or written
        print(f"tfmia {args.command}: error: {printable(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
