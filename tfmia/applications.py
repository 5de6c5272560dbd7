"""Pretrained ImageNet targets (InceptionV3, Xception) and their membership data.

Rezaei & Liu (2021, section 6) attack ImageNet classifiers: the members are
the training images of a subset of classes (100 in the paper), the
non-members the validation images of the same classes.  This module builds
the targets from ``keras.applications`` and streams those images.

Targets (:func:`imagenet_model`): ``weights="imagenet"`` downloads Keras's
published weights (for users with a network), a path loads a local weights
file (Keras's ``.h5`` downloads, or ``.weights.h5`` from ``save_weights``),
None leaves them random.  Both architectures take 299 x 299 RGB images scaled
by their own ``preprocess_input`` to [-1, 1] (``x / 127.5 - 1``); with random
or local weights smaller inputs work down to each architecture's minimum
(InceptionV3 75, Xception 71).

Data (:class:`ImageNetMembership`): ``root/train/<wnid>/*`` are members and
``root/val/<wnid>/*`` non-members (the validation images sorted into one
folder per class, the usual ``ImageFolder`` layout).  Images are decoded as
RGB (grey and RGBA files are converted), centre-cropped to a square, resized
to ``input_size`` and preprocessed, in a ``tf.data`` pipeline that yields
``(images, labels)`` batches in a fixed order.  Labels are the models' output
indices: Keras's ImageNet class index (wnid -> index, ``imagenet_class_index.json``)
is downloaded like ``decode_predictions`` does, read from a local copy, or,
only when asked with ``class_index="sorted"``, replaced by the position of the
wnid among the sorted ``train/`` folders (equal to Keras's order only when all
1000 classes are present).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ._validate import check_positive_int

__all__ = [
    "ARCHITECTURES",
    "IMAGENET_SIZE",
    "INPUT_RANGE",
    "imagenet_model",
    "preprocess_input",
    "load_class_index",
    "ImageNetMembership",
]

IMAGENET_SIZE = 299
INPUT_RANGE = (-1.0, 1.0)
"""Range of preprocessed images (the ``clip`` for boundary distances)."""

CLASS_INDEX_URL = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"  # the hash keras.applications checks
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


@dataclasses.dataclass(frozen=True)
class _Architecture:
    constructor: str  # attribute of keras.applications
    module: str  # keras.applications submodule holding preprocess_input
    min_size: int


ARCHITECTURES = {
    "inception_v3": _Architecture("InceptionV3", "inception_v3", 75),
    "xception": _Architecture("Xception", "xception", 71),
}


def _architecture(name: str) -> _Architecture:
    if name not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {tuple(ARCHITECTURES)}, got {name!r}")
    return ARCHITECTURES[name]


def _check_size(input_size, arch: _Architecture, name: str) -> int:
    size = check_positive_int(input_size, "input_size")
    if size < arch.min_size:
        raise ValueError(f"input_size must be at least {arch.min_size} for {name}, got {size}")
    return size


def imagenet_model(
    architecture: str = "inception_v3", *, weights=None, input_size: int = IMAGENET_SIZE, classes: int = 1000
):
    """A keras.applications classifier (softmax over ``classes``) for ``input_size`` x ``input_size`` x 3 images.

    ``weights``: ``"imagenet"`` (downloaded by Keras; needs ``input_size=299``
    and ``classes=1000``), a path to a local weights file, or None (random).
    """
    import keras

    arch = _architecture(architecture)
    size = _check_size(input_size, arch, architecture)
    check_positive_int(classes, "classes", minimum=2)
    if weights == "imagenet" and (size != IMAGENET_SIZE or classes != 1000):
        raise ValueError(
            f"weights='imagenet' needs input_size={IMAGENET_SIZE} and classes=1000, got {size} and {classes}"
        )
    path = None
    if weights is not None and weights != "imagenet":
        path = Path(weights)
        if not path.is_file():
            raise ValueError(f"weights must be 'imagenet', None or an existing weights file, got {str(weights)!r}")
    build = getattr(keras.applications, arch.constructor)
    model = build(weights=None if path is not None else weights, input_shape=(size, size, 3), classes=classes)
    if path is not None:
        try:
            model.load_weights(str(path))
        except (ValueError, OSError) as exc:
            raise ValueError(
                f"weights file {str(path)!r} does not fit {architecture} at {size}x{size} with {classes} classes: {exc}"
            ) from None
    return model


def preprocess_input(images, architecture: str = "inception_v3"):
    """The architecture's own ``keras.applications`` ``preprocess_input`` (to [-1, 1]) after a shape check.

    ``images`` is (N, H, W, 3) RGB in [0, 255] with H, W at least the architecture's minimum size.
    """
    import importlib

    arch = _architecture(architecture)
    shape = tuple(images.shape) if hasattr(images, "shape") else np.shape(images)
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"images must be (N, height, width, 3) RGB, got shape {shape}")
    if min(shape[1], shape[2]) < arch.min_size:
        raise ValueError(
            f"images must be at least {arch.min_size}x{arch.min_size} for {architecture}, got {shape[1]}x{shape[2]}"
        )
    module = importlib.import_module(f"keras.applications.{arch.module}")
    return module.preprocess_input(np.array(images, dtype=np.float32) if isinstance(images, np.ndarray) else images)


def load_class_index(class_index=None) -> dict[str, int]:
    """Keras's ImageNet mapping wnid -> output index.

    ``class_index`` is None (download ``imagenet_class_index.json`` into the
    Keras cache, checked against Keras's hash) or a path to a local copy of
    that file (``{"0": ["n01440764", "tench"], ...}``).
    """
    import keras

    if class_index is None:
        path = keras.utils.get_file(
            "imagenet_class_index.json", CLASS_INDEX_URL, cache_subdir="models", file_hash=CLASS_INDEX_MD5
        )
    else:
        path = Path(class_index)
        if not path.is_file():
            raise ValueError(f"class_index must be None, 'sorted' or an existing JSON file, got {str(class_index)!r}")
    try:
        raw = json.loads(Path(path).read_text())
        mapping = {str(entry[0]): int(index) for index, entry in raw.items()}
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ValueError(f"class_index {str(path)!r} is not a Keras ImageNet class index ({exc})") from None
    if len(set(mapping.values())) != len(mapping):
        raise ValueError(f"class_index {str(path)!r} maps two wnids to one index")
    return mapping


def _class_folders(split: Path) -> dict[str, Path]:
    if not split.is_dir():
        raise ValueError(f"{split} does not exist: the data root needs train/<wnid>/ and val/<wnid>/ folders")
    return {p.name: p for p in sorted(split.iterdir()) if p.is_dir()}


def _images(folder: Path) -> list[str]:
    return [str(p) for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]


class ImageNetMembership:
    """Members (``train/``) and non-members (``val/``) of a subset of ImageNet classes, streamed.

    Args:
        root: folder holding ``train/<wnid>/`` and ``val/<wnid>/`` image folders.
        architecture: the target's architecture (its ``preprocess_input`` is applied).
        classes: how many classes to draw (seeded) among those present in both splits, or a list of wnids.
        class_index: None (Keras's mapping, downloaded), a local ``imagenet_class_index.json``, or
            ``"sorted"`` (index = position among the sorted ``train/`` folders; only when asked).
        input_size: image side after crop and resize.
        per_class_limit: use at most this many images per class and split (a seeded draw), or None for all.
        batch_size: images per batch.
        seed: seeds the class draw and the per-class image draw.
    """

    def __init__(
        self,
        root,
        *,
        architecture: str = "inception_v3",
        classes=100,
        class_index=None,
        input_size: int = IMAGENET_SIZE,
        per_class_limit: int | None = None,
        batch_size: int = 32,
        seed: int = 0,
    ):
        self.root = Path(root)
        self.architecture = architecture
        self.input_size = _check_size(input_size, _architecture(architecture), architecture)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if per_class_limit is not None:
            check_positive_int(per_class_limit, "per_class_limit")
        self.per_class_limit = per_class_limit
        self.seed = int(seed)
        train, val = _class_folders(self.root / "train"), _class_folders(self.root / "val")
        both = sorted(set(train) & set(val))
        self.wnids = self._choose_classes(classes, both)
        if isinstance(class_index, str) and class_index == "sorted":
            mapping = {wnid: i for i, wnid in enumerate(sorted(train))}
        else:
            mapping = load_class_index(class_index)
        missing = [w for w in self.wnids if w not in mapping]
        if missing:
            raise ValueError(f"classes {missing[:5]} are not in the class index")
        self.class_labels = {w: mapping[w] for w in self.wnids}
        self._files = {"train": self._list(train), "val": self._list(val)}

    def _choose_classes(self, classes, available: list[str]) -> tuple[str, ...]:
        if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
            count = check_positive_int(classes, "classes")
            if count > len(available):
                raise ValueError(f"classes={count} but only {len(available)} classes have both train/ and val/ folders")
            rng = np.random.default_rng(self.seed)
            return tuple(sorted(rng.choice(available, size=count, replace=False).tolist()))
        chosen = [str(w) for w in classes]
        absent = [w for w in chosen if w not in available]
        if absent:
            raise ValueError(f"classes {absent[:5]} lack a train/ or val/ folder under {self.root}")
        if not chosen or len(set(chosen)) != len(chosen):
            raise ValueError("classes must list distinct wnids")
        return tuple(chosen)

    def _list(self, folders: dict[str, Path]) -> tuple[list[str], np.ndarray]:
        rng = np.random.default_rng([self.seed, 1])
        paths, labels = [], []
        for wnid in self.wnids:
            files = _images(folders[wnid])
            if not files:
                raise ValueError(f"{folders[wnid]} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            if self.per_class_limit is not None and len(files) > self.per_class_limit:
                files = sorted(rng.choice(files, size=self.per_class_limit, replace=False).tolist())
            paths += files
            labels += [self.class_labels[wnid]] * len(files)
        return paths, np.asarray(labels, dtype=np.int64)

    @property
    def num_members(self) -> int:
        return len(self._files["train"][0])

    @property
    def num_non_members(self) -> int:
        return len(self._files["val"][0])

    def labels(self, split: str) -> np.ndarray:
        """True labels of ``"train"`` (members) or ``"val"`` (non-members), in dataset order."""
        if split not in self._files:
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        return self._files[split][1]

    def _load(self, path, label):
        import tensorflow as tf

        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        side = tf.minimum(height, width)
        image = tf.image.crop_to_bounding_box(image, (height - side) // 2, (width - side) // 2, side, side)
        image = tf.image.resize(image, [self.input_size, self.input_size])
        return preprocess_input(image[None], self.architecture)[0], label

    def dataset(self, split: str):
        """``tf.data.Dataset`` of preprocessed ``(images, labels)`` batches of ``split``, fixed order."""
        import tensorflow as tf

        self.labels(split)  # validates split
        paths, labels = self._files[split]
        data = tf.data.Dataset.from_tensor_slices((paths, labels))
        data = data.map(self._load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return data.batch(self.batch_size).prefetch(tf.data.AUTOTUNE)

    def members(self):
        """Training images of the chosen classes (members)."""
        return self.dataset("train")

    def non_members(self):
        """Validation images of the chosen classes (non-members)."""
        return self.dataset("val")
