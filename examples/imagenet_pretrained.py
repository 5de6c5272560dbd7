"""Rezaei & Liu's attacks on a pretrained ImageNet classifier (InceptionV3 or Xception).

    python examples/imagenet_pretrained.py --root /data/imagenet --weights imagenet \
        --class-index imagenet_class_index.json --classes 100 --per-class 50 \
        --features confidence gradient_input boundary --out imagenet-report

--root holds train/<wnid>/ (the model's training images: members) and
val/<wnid>/ (validation images sorted into class folders: non-members).
--weights is "imagenet" (Keras downloads the published weights), a local
weights file, or "none" (random; for trying the pipeline).  Features are
computed batch by batch and checkpointed under --run-dir, so an interrupted
run resumes.  Each attack follows Rezaei & Liu's protocol (80 % of each
class's members and non-members known, evaluated on the rest) and reports FAR,
correctly classified and misclassified records separately.
"""

import argparse
from pathlib import Path

from tfmia.applications import INPUT_RANGE, ImageNetMembership, imagenet_model
from tfmia.attacks import FeatureAttack
from tfmia.features.records import FEATURES, FeatureRecords
from tfmia.report import AuditReport, ModelFacts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True)
    parser.add_argument("--architecture", default="inception_v3", choices=("inception_v3", "xception"))
    parser.add_argument("--weights", default="imagenet", help='"imagenet", a weights file, or "none"')
    parser.add_argument("--input-size", type=int, default=299)
    parser.add_argument("--num-classes", type=int, default=1000, help="output classes of the model")
    parser.add_argument("--class-index", default=None,
                        help='imagenet_class_index.json (default: Keras downloads it), or "sorted"')
    parser.add_argument("--classes", type=int, default=100, help="ImageNet classes to audit (a seeded draw)")
    parser.add_argument("--per-class", type=int, default=50, help="images per class and split")
    parser.add_argument("--features", nargs="+", default=["confidence", "gradient_input", "boundary"], choices=FEATURES)
    parser.add_argument("--classifier", default="logreg", choices=("nn", "rf", "gbdt", "logreg"))
    parser.add_argument("--run-dir", default="runs/imagenet")
    parser.add_argument("--out", default="imagenet-report")
    args = parser.parse_args(argv)

    weights = None if args.weights == "none" else args.weights
    model = imagenet_model(args.architecture, weights=weights, input_size=args.input_size, classes=args.num_classes)
    data = ImageNetMembership(args.root, architecture=args.architecture, classes=args.classes,
                              class_index=args.class_index, input_size=args.input_size,
                              per_class_limit=args.per_class)
    print(f"{data.num_members} members and {data.num_non_members} non-members from {len(data.wnids)} classes")

    results = []
    for feature in args.features:
        options = {"clip": INPUT_RANGE} if feature == "boundary" else {}
        run = Path(args.run_dir) / feature
        members = FeatureRecords.from_model(model, data.members(), features=feature, run_dir=run / "members", **options)
        non_members = FeatureRecords.from_model(model, data.non_members(), features=feature,
                                                run_dir=run / "non_members", **options)
        attack = FeatureAttack(feature, classifier=args.classifier)
        results.append(attack.fit_evaluate(members, non_members, name=f"{feature} ({args.classifier})"))

    facts = ModelFacts(model_name=f"{args.architecture} ({args.weights})", n_train=data.num_members,
                       n_test=data.num_non_members)
    report = AuditReport(results, facts, title=f"Membership inference on {args.architecture}")
    report.to_json(Path(args.out) / "report.json")
    report.to_html(Path(args.out) / "report.html")
    print(report.summary())


if __name__ == "__main__":
    main()
