"""ImageNet targets with random and locally saved weights, and the image-folder membership source.

Nothing here downloads: the models are random-weight at the smallest input
size each architecture allows, the images are generated, and the class index
is a local file.
"""

import json
import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from tfmia.applications import ImageNetMembership, imagenet_model, load_class_index, preprocess_input  # noqa: E402
from tfmia.features.intermediate import intermediate_outputs  # noqa: E402
from tfmia.features.records import FeatureRecords  # noqa: E402

MIN_SIZE = {"inception_v3": 75, "xception": 71}
WNIDS = ["n01440764", "n01443537", "n01484850"]  # Keras indices 0, 1, 2


@pytest.fixture(scope="module")
def inception():
    keras.utils.set_random_seed(0)
    return imagenet_model("inception_v3", input_size=75, classes=4)


@pytest.mark.parametrize("architecture", ["inception_v3", "xception"])
def test_local_weights_round_trip(tmp_path, architecture):
    keras.utils.set_random_seed(0)
    size = MIN_SIZE[architecture]
    model = imagenet_model(architecture, input_size=size, classes=4)
    assert model.input_shape == (None, size, size, 3) and model.output_shape == (None, 4)
    x = preprocess_input(np.random.default_rng(0).integers(0, 256, (2, size, size, 3)).astype(np.float32), architecture)
    path = tmp_path / f"{architecture}.weights.h5"
    model.save_weights(path)
    keras.utils.set_random_seed(1)
    reloaded = imagenet_model(architecture, weights=path, input_size=size, classes=4)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    # the default feature layer is the pooled representation feeding the classifier
    assert intermediate_outputs(model, x).shape == (2, 2048)


def test_model_arguments_are_checked(tmp_path, inception):
    with pytest.raises(ValueError, match="architecture"):
        imagenet_model("resnet50")
    with pytest.raises(ValueError, match="input_size must be at least 71"):
        imagenet_model("xception", input_size=64)
    with pytest.raises(ValueError, match="weights='imagenet' needs input_size=299"):
        imagenet_model("inception_v3", weights="imagenet", input_size=75)
    with pytest.raises(ValueError, match="existing weights file"):
        imagenet_model("inception_v3", weights=tmp_path / "missing.weights.h5", input_size=75)
    path = tmp_path / "inception.weights.h5"
    inception.save_weights(path)
    with pytest.raises(ValueError, match="does not fit xception"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Keras lists each layer it cannot match
        imagenet_model("xception", weights=path, input_size=75, classes=4)


def test_preprocess_input_is_the_architectures_scaling():
    images = np.random.default_rng(1).integers(0, 256, (2, 80, 80, 3)).astype(np.float32)
    for architecture in ("inception_v3", "xception"):
        np.testing.assert_allclose(preprocess_input(images, architecture), images / 127.5 - 1, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, height, width, 3\)"):
        preprocess_input(np.zeros((2, 80, 80, 1)))
    with pytest.raises(ValueError, match="at least 75x75"):
        preprocess_input(np.zeros((2, 60, 60, 3)))


def test_wrong_image_size_or_channels_reach_a_clear_error(inception):
    with pytest.raises(ValueError, match=r"x has records of shape \(75, 75, 1\)"):
        intermediate_outputs(inception, np.zeros((1, 75, 75, 1), np.float32))
    with pytest.raises(ValueError, match=r"x has records of shape \(64, 64, 3\)"):
        FeatureRecords.from_model(inception, np.zeros((1, 64, 64, 3), np.float32), [0], features="confidence")
    with pytest.raises(ValueError, match="'logits' is not a layer"):
        intermediate_outputs(inception, np.zeros((1, 75, 75, 3), np.float32), layer="logits")


def write_image(path, shape, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    encoded = tf.io.encode_png(pixels) if path.suffix == ".png" else tf.io.encode_jpeg(pixels)
    path.parent.mkdir(parents=True, exist_ok=True)
    tf.io.write_file(str(path), encoded)


@pytest.fixture
def image_root(tmp_path):
    """train/ and val/ folders of generated images: odd sizes, grey and RGBA files, a stray text file."""
    root = tmp_path / "imagenet"
    for c, wnid in enumerate(WNIDS):
        for i in range(3):
            write_image(root / "train" / wnid / f"{i}.JPEG", (90 + 7 * i, 80, 3), seed=10 * c + i)
        write_image(root / "val" / wnid / "v0.png", (76, 100, 1), seed=100 + c)  # grey
        write_image(root / "val" / wnid / "v1.png", (120, 120, 4), seed=200 + c)  # RGBA
    (root / "train" / WNIDS[0] / "notes.txt").write_text("not an image")
    (root / "train" / "n99999999").mkdir()  # no val/ folder: never chosen
    index = {str(i): [wnid, f"class {i}"] for i, wnid in enumerate(WNIDS)}
    (tmp_path / "class_index.json").write_text(json.dumps(index))
    return root, tmp_path / "class_index.json"


def test_membership_folders_stream_preprocessed_batches(image_root, inception):
    root, index = image_root
    data = ImageNetMembership(root, classes=WNIDS[1:], class_index=index, input_size=75, batch_size=4)
    assert data.wnids == tuple(WNIDS[1:]) and data.class_labels == {WNIDS[1]: 1, WNIDS[2]: 2}
    assert (data.num_members, data.num_non_members) == (6, 4)
    batches = list(data.members())
    assert [b[0].shape for b in batches] == [(4, 75, 75, 3), (2, 75, 75, 3)]
    images = np.concatenate([b[0] for b in batches])
    assert images.dtype == np.float32 and images.min() >= -1 and images.max() <= 1
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), [1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(data.labels("train"), [1, 1, 1, 2, 2, 2])
    # the first member: centre 80x80 crop of a 90x80 image, resized, scaled by preprocess_input
    raw = tf.io.decode_jpeg(tf.io.read_file(str(root / "train" / WNIDS[1] / "0.JPEG")))
    expected = tf.image.resize(raw[5:85], [75, 75]).numpy() / 127.5 - 1
    np.testing.assert_allclose(images[0], expected, atol=1e-5)
    non_members = np.concatenate([b[0] for b in data.non_members()])
    assert non_members.shape == (4, 75, 75, 3)
    records = FeatureRecords.from_model(inception, data.non_members(), features="intermediate")
    assert records.features.shape == (4, 2048)
    np.testing.assert_array_equal(records.labels, [1, 1, 2, 2])


def test_class_draw_limits_and_index_choices(image_root):
    root, index = image_root
    drawn = ImageNetMembership(root, classes=2, class_index=index, input_size=75, per_class_limit=2, seed=5)
    assert len(drawn.wnids) == 2 and set(drawn.wnids) <= set(WNIDS)
    assert drawn.num_members == 4 and drawn.num_non_members == 4
    same = ImageNetMembership(root, classes=2, class_index=index, input_size=75, per_class_limit=2, seed=5)
    assert same.wnids == drawn.wnids
    for split in ("train", "val"):
        assert same._files[split][0] == drawn._files[split][0]
    by_sort = ImageNetMembership(root, classes=WNIDS, class_index="sorted", input_size=75)
    assert by_sort.class_labels == {w: i for i, w in enumerate(WNIDS)}
    assert load_class_index(index) == {w: i for i, w in enumerate(WNIDS)}


def test_membership_folders_bad_input(image_root, tmp_path):
    root, index = image_root
    with pytest.raises(ValueError, match="classes=4 but only 3"):
        ImageNetMembership(root, classes=4, class_index=index)
    with pytest.raises(ValueError, match=r"lack a train/ or val/ folder"):
        ImageNetMembership(root, classes=["n99999999"], class_index=index)
    with pytest.raises(ValueError, match="train/train does not exist"):
        ImageNetMembership(root / "train", classes=1, class_index=index)
    with pytest.raises(ValueError, match="existing JSON file"):
        ImageNetMembership(root, classes=1, class_index=tmp_path / "none.json")
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"0": [WNIDS[0], "tench"]}))
    with pytest.raises(ValueError, match="not in the class index"):
        ImageNetMembership(root, classes=WNIDS, class_index=partial)
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a Keras ImageNet class index"):
        load_class_index(broken)
    with pytest.raises(ValueError, match="input_size must be at least 75"):
        ImageNetMembership(root, classes=1, class_index=index, input_size=32)
    empty = tmp_path / "empty"
    (empty / "train" / WNIDS[0]).mkdir(parents=True)
    (empty / "val" / WNIDS[0]).mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no images"):
        ImageNetMembership(empty, classes=1, class_index=index)
