"""Data sets: what ships inside installed packages, registered by name, never downloaded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from convscope.errors import DataError, RegistryError, UnknownDatasetError

if TYPE_CHECKING:
    import torch

    from convscope.models._spec import InputSpec

__all__ = ["Dataset", "DatasetInfo", "list_datasets", "load_dataset", "register_dataset"]


@dataclass
class Dataset:
    """Images and labels, ready for a model.

    Attributes:
        images: ``N x C x H x W`` float32 tensor of raw pixel values in ``[0, 1]``
            (or, after :meth:`prepare`, normalised for a model).
        labels: ``N`` int64 tensor (``-1`` where unknown).
        class_names: names of the classes, index = label.
        name: registry name or path it came from.
        normalised: whether :meth:`prepare` has been applied.
        sample_names: one name per image where images have names (photos, files), else ``None``.

    Example:
        >>> ds = load_dataset("digits")
        >>> tuple(ds.images.shape), ds.class_names[int(ds.labels[0])]
        ((1797, 1, 28, 28), '0')
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    name: str
    normalised: bool = False
    sample_names: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def prepare(self, spec: InputSpec) -> Dataset:
        """Resize / convert channels to ``spec.shape``, scale ``[0, 1]`` to ``spec.value_range``
        and normalise with its mean and std, as the model's inputs are."""
        from convscope.data._transforms import fit_to_spec, target_shape

        if self.normalised:
            raise DataError(f"data set {self.name!r} is already normalised; call prepare() once")
        channels = target_shape(spec)[0]
        for field, values in (("mean", spec.mean), ("std", spec.std)):
            if values is not None and len(values) not in (1, channels):
                raise DataError(
                    f"the model's input {field} has {len(values)} values for {channels} channel(s); "
                    f"give the spec one {field} per channel (or one for all)"
                )
        images = fit_to_spec(self.images, spec)
        lo, hi = spec.value_range
        if (lo, hi) != (0.0, 1.0):  # raw pixels live in the spec's range: 0..255 for some models
            images = images * (hi - lo) + lo
        images = spec.prepare(images)
        return Dataset(
            images=images,
            labels=self.labels,
            class_names=self.class_names,
            name=self.name,
            normalised=True,
            sample_names=self.sample_names,
        )

    def split(self, *, test_fraction: float = 0.2, seed: int = 0) -> tuple[Dataset, Dataset]:
        """A stratified train/test split that is the same for the same seed.

        The test part holds ``round(len(self) * test_fraction)`` samples, shared among the
        classes in proportion to their sizes (the largest remainders get the odd ones, larger
        classes first), so classes of one or two samples still reach the test part as a whole;
        a class of one sample is on one side only.
        """
        import torch

        if not 0.0 < test_fraction < 1.0:
            raise DataError(f"test_fraction must be between 0 and 1, got {test_fraction!r}")
        gen = torch.Generator().manual_seed(seed)
        groups = []
        for label in torch.unique(self.labels).tolist():
            idx = torch.nonzero(self.labels == label).flatten()
            groups.append(idx[torch.randperm(len(idx), generator=gen)].tolist())
        quotas = [len(g) * test_fraction for g in groups]
        counts = [int(q) for q in quotas]
        spare = round(len(self) * test_fraction) - sum(counts)
        by_remainder = sorted(range(len(groups)), key=lambda i: (counts[i] - quotas[i], -len(groups[i]), i))
        for i in by_remainder[: max(0, spare)]:
            counts[i] += 1
        train_idx: list[int] = []
        test_idx: list[int] = []
        for group, n_test in zip(groups, counts, strict=True):
            test_idx += group[:n_test]
            train_idx += group[n_test:]
        train_sel = torch.tensor(sorted(train_idx), dtype=torch.long)
        test_sel = torch.tensor(sorted(test_idx), dtype=torch.long)
        return self.subset(train_sel, suffix="train"), self.subset(test_sel, suffix="test")

    def subset(self, index: torch.Tensor, *, suffix: str = "subset") -> Dataset:
        """The samples at ``index`` (a 1-D index tensor), named ``name[suffix]``."""
        names = None if self.sample_names is None else tuple(self.sample_names[i] for i in index.tolist())
        return Dataset(
            images=self.images[index],
            labels=self.labels[index],
            class_names=self.class_names,
            name=f"{self.name}[{suffix}]",
            normalised=self.normalised,
            sample_names=names,
        )


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`list_datasets` tells about one registered data set (nothing is loaded).

    Attributes:
        name: the name for :func:`load_dataset`.
        description: one line on what the images are.
        source: the installed package and file the data comes from.
        shape: per-image ``(C, H, W)`` after loading.
        classes: number of classes (``0`` where images are unlabelled).
        size: number of images.
        license: the data's license (and the shipping package's, where they differ).
        loader: the function that builds the :class:`Dataset` (for the bundled sets, once per
            process; each call returns tensors of its own).
        requires: the modules it is read from (:attr:`available` says whether they import here).
    """

    name: str
    description: str
    source: str
    shape: tuple[int, ...]
    classes: int
    size: int
    license: str
    loader: Callable[[], Dataset]
    requires: tuple[str, ...] = ()

    @property
    def available(self) -> bool:
        """Whether the packages it comes from are installed (``convscope[data]`` for most)."""
        from convscope._optional import available

        return available(*self.requires)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields (without the loader)."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "shape": list(self.shape),
            "classes": self.classes,
            "size": self.size,
            "license": self.license,
        }


_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(
    name: str,
    *,
    description: str,
    source: str,
    shape: tuple[int, ...],
    classes: int,
    size: int,
    license: str = "unknown",  # noqa: A002  (the field's natural name)
    requires: tuple[str, ...] = (),
) -> Callable[[Callable[[], Dataset]], Callable[[], Dataset]]:
    """Register a loader under ``name``; a second registration of one name is an error.

    Example:
        >>> @register_dataset("my-set", description="...", source="...", shape=(1, 28, 28), classes=10, size=3)  # doctest: +SKIP
        ... def my_set() -> Dataset: ...  # doctest: +SKIP
    """

    def decorate(fn: Callable[[], Dataset]) -> Callable[[], Dataset]:
        if name in _REGISTRY:
            qual = getattr(fn, "__qualname__", repr(fn))
            raise RegistryError(
                f"data set {name!r} is registered twice ({getattr(_REGISTRY[name].loader, '__qualname__', '?')} and {qual}); "
                "choose another name"
            )
        _REGISTRY[name] = DatasetInfo(name, description, source, shape, classes, size, license, fn, tuple(requires))
        return fn

    return decorate


def list_datasets() -> list[DatasetInfo]:
    """Every bundled data set, sorted by name, with size, shape, license and source.

    Example:
        >>> [(i.name, i.size) for i in list_datasets()][:2]
        [('digits', 1797), ('foolbox-cifar10', 20)]
    """
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def load_dataset(name: str, *, split: str = "all", spec: InputSpec | None = None, seed: int = 0) -> Dataset:
    """Load a bundled data set by name.

    Args:
        name: a name from :func:`list_datasets` (``"mnist-5k"``, ``"digits"`` ...).
        split: ``"all"``, or ``"train"`` / ``"test"`` for a stratified 80/20 split.
        spec: if given, images are resized and normalised for that model.
        seed: the split's seed.

    Each call returns tensors of its own (the bundled set is read once per process and copied),
    so editing ``images`` in place, as ``ds.images -= mean`` does, changes no other caller's data.

    Example:
        >>> ds = load_dataset("mnist-5k", split="test")
        >>> tuple(ds.images.shape[1:]), len(ds)
        ((1, 28, 28), 1000)
    """
    try:
        info = _REGISTRY[name]
    except KeyError:
        from convscope._names import near_misses

        close = near_misses(str(name), _REGISTRY, key=str.lower)
        close += [k for k in sorted(_REGISTRY) if str(name).lower() and str(name).lower() in k and k not in close]
        hint = f"did you mean {' or '.join(repr(k) for k in close[:3])}? " if close else ""
        raise UnknownDatasetError(
            f"data set {name!r} is not bundled; {hint}choose one of {', '.join(sorted(_REGISTRY))} "
            "(see `convscope data`), or load your own files with convscope.data.load_mnist_idx / "
            "load_cifar_batches / load_image_folder"
        ) from None
    ds = info.loader()
    if split != "all":
        if split not in ("train", "test"):
            raise DataError(f"split must be 'all', 'train' or 'test', got {split!r}")
        train, test = ds.split(seed=seed)
        ds = train if split == "train" else test
    return ds.prepare(spec) if spec is not None else ds
