"""Where images come from: TFDS by name (read record by record), MNIST-format IDX files,
Debian's offline Fashion-MNIST, and the user's own folders, arrays and packed sets
(``load`` picks by the name or path). Each is a ``Source``: random access to uint8 images
and optional labels by index, read when a batch asks for them.

``to_model_range`` turns uint8 pixels into the models' float32 in [-1, 1].
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import json
import math
import os
import socket
import sys
import threading
import zipfile
import zlib
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from jaxgan.errors import ConfigError, Error

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


class DataError(Error, ValueError):
  """A dataset that cannot be used as it is; the message says what is wrong and the fix."""


# uint8 -> [-1, 1] through a table, computed once in float64 and rounded: XLA rewrites
# x / 127.5 - 1 (reciprocal, fused multiply-add) so that it differs from NumPy in the last
# bit for some pixels; a table lookup is the same on the host and on every device.
PIXEL_TABLE = (np.arange(256, dtype=np.float64) / 127.5 - 1.0).astype(np.float32)


def to_model_range(images):
  """uint8 pixels in [0, 255] -> float32 in [-1, 1] (the contract's image range).

  NumPy in, NumPy out (host); a JAX array or tracer in, JAX out (device); both
  bit-identical.
  """
  if isinstance(images, np.ndarray):
    return PIXEL_TABLE[images]
  return jnp.asarray(PIXEL_TABLE)[images]


def fit(image, resolution: int) -> np.ndarray:
  """A PIL image (or uint8 ``[H, W, C]``) centre-cropped to a square and resized to
  ``resolution`` x ``resolution`` with Lanczos filtering (StyleGAN2-ADA's ``dataset_tool``
  ``--transform=center-crop``); ``resolution`` 0 keeps it as it is. uint8 ``[H, W, C]``."""
  from PIL import Image

  if isinstance(image, np.ndarray):
    if not resolution or image.shape[:2] == (resolution, resolution):
      return image
    channels = image.shape[2]
    image = Image.fromarray(image[..., 0] if channels == 1 else image)
  if resolution and image.size != (resolution, resolution):
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize(
        (resolution, resolution), Image.Resampling.LANCZOS)
  pixels = np.asarray(image, np.uint8)
  return pixels[..., None] if pixels.ndim == 2 else pixels


_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str) -> np.ndarray:
  """Reads one IDX file (optionally gzipped), checking its header against its size.

  Raises:
    DataError: unreadable gzip data, a bad magic number, or a payload whose size does
      not match the header (a truncated or padded file).
  """
  try:
    with open(path, "rb") as f:
      raw = f.read()
    if raw[:2] == b"\x1f\x8b":
      raw = gzip.decompress(raw)
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(f"{path}: not a readable IDX file ({e}); the file is truncated or "
                    "corrupt. Download it again (or reinstall the package that ships it).") from e
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or not (
      1 <= raw[3] <= 4):
    raise DataError(f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}; "
                    "expected 0000 08 0n for uint8 data).")
  ndim, dtype = raw[3], _IDX_DTYPES[raw[2]]
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise DataError(f"{path}: truncated inside its header ({len(raw)} bytes).")
  dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  expected = int(np.prod(dims)) * dtype.itemsize
  if len(raw) - header != expected:
    raise DataError(f"{path}: the header promises {dims} = {expected} bytes of data, the file "
                    f"holds {len(raw) - header}; it is truncated or corrupt. Download it again.")
  return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


# The evaluation reads at most this many real images of a reference split (all of
# Fashion-MNIST's and CIFAR-10's test splits).
REFERENCE_SAMPLES = 10_000


class Source:
  """Random access to a dataset's examples: what the pipeline, the evaluation and the pack
  command read.

  A source has ``description`` (where the data comes from, printed when a run starts),
  ``image_shape`` ``(H, W, C)``, ``num_classes`` (0: unlabelled), ``splits`` (the names
  ``split`` accepts), ``len()`` and ``get(indices) -> {"image": uint8 [n, H, W, C],
  "label": int32 [n]}`` (``label`` only when labelled). It must pickle: the pipeline's
  worker processes read it.
  """

  splits: tuple[str, ...] = ("train",)
  fingerprint: str = ""  # changes with the data's content where that is cheap to know

  def __len__(self) -> int:
    raise NotImplementedError

  def get(self, indices) -> dict[str, np.ndarray]:
    raise NotImplementedError

  def split(self, name: str) -> Source:
    """Another split of the same dataset."""
    raise DataError(f"{self.description} has no {name!r} split (it is one set of images).")

  def reference(self, log: Callable[[str], None] | None = None) -> Source:
    """The split the evaluation compares with: ``test`` where there is one, else these
    images themselves (as StyleGAN2-ADA's ``fid50k_full`` does), said once in ``log``."""
    if "test" in self.splits:
      return self.split("test")
    if log is not None:
      log(f"jaxgan: {self.description} has no test split; the evaluation compares with "
          f"(at most {REFERENCE_SAMPLES:,} of) these training images.")
    return self

  def fraction(self, fraction: float) -> Source:
    """The first ``ceil(fraction * N)`` examples (the data-efficient setting)."""
    check_fraction(fraction)
    if fraction == 1:
      return self
    return Take(self, max(1, math.ceil(fraction * len(self))), fraction)


def check_fraction(fraction: float) -> None:
  if not 0 < fraction <= 1:
    raise ConfigError(f"data_fraction must be in (0, 1] (1: the whole split), got "
                      f"{fraction!r}.")


@dataclasses.dataclass(frozen=True, eq=False)
class Take(Source):
  """The first ``n`` examples of ``source``."""

  source: Source
  n: int
  of: float

  def __len__(self) -> int:
    return self.n

  @property
  def description(self) -> str:
    return (f"{self.source.description}, its first {self.n:,} examples ({self.of:g} of "
            f"{len(self.source):,})")

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return self.source.image_shape

  @property
  def num_classes(self) -> int:
    return self.source.num_classes

  @property
  def fingerprint(self) -> str:
    return self.source.fingerprint

  def get(self, indices) -> dict[str, np.ndarray]:
    indices = np.asarray(indices)
    if indices.size and (indices.min() < 0 or indices.max() >= self.n):
      raise IndexError(f"index outside the first {self.n} examples")
    return self.source.get(indices)


STACKED_PREFIX = "stacked:"
STACKED_MODES = 1000  # three channels of 10 classes each


@dataclasses.dataclass(frozen=True, eq=False)
class Stacked(Source):
  """Stacked MNIST (Metz et al. 2017; VEEGAN, PacGAN, PresGAN, R3GAN): example ``i`` is three
  images of ``base`` drawn independently (a fixed draw of ``seed``) as the channels of one
  RGB image, and its mode is the triple of their classes (1,000 modes of a 10-class base).

  Unlabelled to the training (the GAN is unconditional); ``modes(indices)`` gives the
  triples' modes ``100 c0 + 10 c1 + c2`` for the evaluation's floor.
  """

  base: Source
  picks: np.ndarray = dataclasses.field(repr=False)  # [n, 3] indices into base

  @classmethod
  def of(cls, base: Source, n: int | None = None, seed: int = 0) -> Stacked:
    if base.image_shape[-1] != 1 or base.num_classes != 10:
      raise DataError(f"Stacking takes a grayscale dataset of 10 classes (three of them make "
                      f"an RGB image of 1,000 modes); {base.description} has "
                      f"{base.image_shape[-1]} channel(s) and {base.num_classes} classes.")
    n = len(base) if n is None else n
    return cls(base, np.random.default_rng(seed).integers(0, len(base), (n, 3)))

  def __len__(self) -> int:
    return len(self.picks)

  @property
  def description(self) -> str:
    return f"stacked {self.base.description} ({len(self):,} RGB triples, 1,000 modes)"

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return (*self.base.image_shape[:2], 3)

  @property
  def num_classes(self) -> int:
    return 0

  @property
  def splits(self) -> tuple[str, ...]:
    return self.base.splits

  @property
  def fingerprint(self) -> str:
    return self.base.fingerprint

  def split(self, name: str) -> Stacked:
    # Another split's own draw: its triples are not the training ones.
    return Stacked.of(self.base.split(name), seed=0 if name == "train" else 1)

  def _read(self, indices, what: str) -> np.ndarray:
    picks = self.picks[np.asarray(indices, np.int64)]
    return np.stack([self.base.get(picks[:, c])[what] for c in range(3)], axis=1)

  def get(self, indices) -> dict[str, np.ndarray]:
    channels = self._read(indices, "image")  # [n, 3, H, W, 1]
    return {"image": np.moveaxis(channels[..., 0], 1, -1)}

  def modes(self, indices) -> np.ndarray:
    """The modes ``100 c0 + 10 c1 + c2`` of the examples ``indices``."""
    c = self._read(indices, "label").astype(np.int32)
    return 100 * c[:, 0] + 10 * c[:, 1] + c[:, 2]


def sample(source: Source, num: int = REFERENCE_SAMPLES, chunk: int = 1000
           ) -> dict[str, np.ndarray]:
  """A bounded, fixed draw of ``min(num, len)`` examples (all of them, in order, when the
  split is no larger), read ``chunk`` at a time: the evaluation's real images."""
  if num >= len(source):
    index = np.arange(len(source))
  else:
    index = np.sort(np.random.default_rng(0).permutation(len(source))[:num])
  parts = [source.get(index[i:i + chunk]) for i in range(0, len(index), chunk)]
  return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


@dataclasses.dataclass(frozen=True)
class ArraySource(Source):
  """A split held in memory: uint8 images ``[N, H, W, C]`` and int32 labels ``[N]``.

  Attributes:
    images: the pixels.
    labels: the class labels, or None.
    description: where the data came from (printed when a run starts).
    loader: loads another split from the same place (``split(name)`` calls it), or None.
  """

  images: np.ndarray
  labels: np.ndarray | None
  description: str
  loader: Callable[[str], ArraySource] | None = dataclasses.field(default=None, repr=False,
                                                                   compare=False)

  def __post_init__(self):
    if self.images.ndim != 4 or self.images.dtype != np.uint8:
      raise DataError(f"{self.description}: images must be uint8 [N, H, W, C], got "
                      f"{self.images.dtype} {self.images.shape}.")
    if len(self.images) == 0:
      raise DataError(f"{self.description}: the split is empty (0 examples).")
    if self.labels is not None and len(self.labels) != len(self.images):
      raise DataError(f"{self.description}: {len(self.images)} images but {len(self.labels)} "
                      "labels.")
    if self.labels is not None and self.labels.min() < 0:
      raise DataError(f"{self.description}: labels must be class ids >= 0, found "
                      f"{int(self.labels.min())}.")

  def __len__(self) -> int:
    return len(self.images)

  @property
  def splits(self) -> tuple[str, ...]:
    return ("train", "test") if self.loader is not None else ("train",)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.images.shape[1:])

  @property
  def num_classes(self) -> int:
    """``max(label) + 1``; 0 for an unlabelled split."""
    return 0 if self.labels is None else int(self.labels.max()) + 1

  def split(self, name: str) -> ArraySource:
    """Another split (e.g. ``"test"``) of the same dataset, from the same place."""
    if self.loader is None:
      raise DataError(f"{self.description} was not loaded from a dataset with splits; load "
                      f"the {name!r} split yourself.")
    return self.loader(name)

  def fraction(self, fraction: float) -> ArraySource:
    """The first ``ceil(fraction * N)`` examples (the data-efficient setting: 0.1 of
    CIFAR-10 is its first 5,000 images); other splits load whole."""
    check_fraction(fraction)
    if fraction == 1:
      return self
    n = max(1, math.ceil(fraction * len(self)))
    return dataclasses.replace(
        self, images=self.images[:n], labels=None if self.labels is None else self.labels[:n],
        description=f"{self.description}, its first {n:,} examples ({fraction:g} of "
                    f"{len(self):,})")

  def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """The examples at ``indices``: ``{"image": uint8, "label": int32}``."""
    out = {"image": self.images[indices]}
    if self.labels is not None:
      out["label"] = self.labels[indices]
    return out


def _find(directory: str, stem: str) -> str | None:
  for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") +
               ".gz"):
    path = os.path.join(directory, name)
    if os.path.exists(path):
      return path
  return None


def load_idx(directory: str, split: str = "train") -> ArraySource:
  """MNIST-format files from ``directory``: ``train-*`` for ``train``, ``t10k-*`` for ``test``.

  Raises:
    DataError: missing files, unreadable files, or images and labels that disagree.
  """
  prefix = {"train": "train", "test": "t10k"}.get(split)
  if prefix is None:
    raise DataError(f"IDX directories have the splits 'train' and 'test', not {split!r}.")
  image_path = _find(directory, f"{prefix}-images-idx3-ubyte")
  label_path = _find(directory, f"{prefix}-labels-idx1-ubyte")
  if image_path is None:
    listing = sorted(os.listdir(directory)) if os.path.isdir(directory) else "no such directory"
    raise DataError(f"No {prefix}-images-idx3-ubyte[.gz] in {directory} ({listing}).")
  images = read_idx(image_path)
  if images.ndim != 3 or images.dtype != np.uint8:
    raise DataError(f"{image_path}: expected uint8 images [N, H, W], got {images.dtype} "
                    f"{images.shape}.")
  labels = None
  if label_path is not None:
    labels = read_idx(label_path)
    if labels.ndim != 1:
      raise DataError(f"{label_path}: expected labels [N], got shape {labels.shape}.")
    labels = labels.astype(np.int32)
  return ArraySource(images[..., None], labels, f"IDX files in {directory} ({split})",
                     functools.partial(load_idx, directory))


# Where TFDS downloads the datasets we fall back for; probed (DNS + TCP, short timeout)
# before a download, because offline TFDS retries for minutes before failing.
_DOWNLOAD_HOSTS = {"fashion_mnist": "fashion-mnist.s3-website.eu-central-1.amazonaws.com",
                   "mnist": "storage.googleapis.com", "cifar10": "www.cs.toronto.edu"}
_PROBE_TIMEOUT_S = 5.0


def _reachable(host: str, port: int = 80) -> str | None:
  """None when ``host`` answers within the timeout, else why not."""
  result: list = []

  def probe():
    try:
      socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S).close()
      result.append(None)
    except OSError as e:
      result.append(f"cannot reach {host} ({e.strerror or e})")

  thread = threading.Thread(target=probe, daemon=True)
  thread.start()
  thread.join(_PROBE_TIMEOUT_S + 1)
  return result[0] if result else f"no answer from {host} in {_PROBE_TIMEOUT_S:.0f} s"


def _tfds_split(name: str, data_dir: str | None, split: str, resolution: int = 0) -> Source:
  """A split of a TFDS dataset that is already prepared (no download, no probe)."""
  import tensorflow_datasets as tfds

  return _from_tfds_source(tfds.data_source(name, split=split, data_dir=data_dir,
                                            download=False), name, split, data_dir, resolution)


def _from_tfds_source(ds, name: str, split: str, data_dir: str | None,
                      resolution: int = 0) -> TFDSSource:
  example = ds[0]
  if "image" not in example:
    raise DataError(f"TFDS dataset {name!r} has no 'image' feature (features: "
                    f"{sorted(example)}); jaxgan trains on image datasets.")
  features = getattr(getattr(ds, "dataset_info", None), "features", None)
  num_classes = 0
  if "label" in example:
    num_classes = getattr(features["label"], "num_classes", 0) if features else 0
    if not num_classes:
      raise DataError(f"TFDS dataset {name!r}: its 'label' feature has no number of classes.")
  shape = np.shape(example["image"])
  shape = shape + (1,) if len(shape) == 2 else shape
  if resolution:
    shape = (resolution, resolution, shape[2])
  return TFDSSource(name, split, data_dir, resolution, tuple(int(d) for d in shape),
                    num_classes, len(ds), ds)


@dataclasses.dataclass(frozen=True, eq=False)
class TFDSSource(Source):
  """A split of a prepared TFDS dataset, read record by record through
  ``tfds.data_source`` (ArrayRecord files, random access), never held whole in memory."""

  name: str
  split_name: str
  data_dir: str | None
  resolution: int
  image_shape: tuple[int, int, int]
  num_classes: int
  size: int
  ds: object = dataclasses.field(repr=False)

  splits = ("train", "test")

  def __getstate__(self):  # a worker process opens the files again
    state = dict(self.__dict__)
    state["ds"] = None
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)

  def _ds(self):
    if self.ds is None:
      import tensorflow_datasets as tfds

      object.__setattr__(self, "ds", tfds.data_source(self.name, split=self.split_name,
                                                      data_dir=self.data_dir, download=False))
    return self.ds

  @property
  def description(self) -> str:
    crop = (f", centre-cropped and resized to {self.resolution}x{self.resolution}"
            if self.resolution else "")
    return f"TFDS {self.name} ({self.split_name}{crop})"

  def __len__(self) -> int:
    return self.size

  def split(self, name: str) -> Source:
    return _tfds_split(self.name, self.data_dir, name, self.resolution)

  def get(self, indices) -> dict[str, np.ndarray]:
    ds, keys = self._ds(), [int(i) for i in np.asarray(indices)]
    try:
      records = ds.__getitems__(keys)
    except TypeError:  # tfds.testing.mock_data's source has no working __getitems__
      records = [ds[i] for i in keys]
    images = []
    for key, record in zip(keys, records, strict=True):
      image = np.asarray(record["image"], np.uint8)
      image = fit(image[..., None] if image.ndim == 2 else image, self.resolution)
      if image.shape != self.image_shape:
        raise DataError(f"{self.description}: example {key} is {image.shape[1]}x"
                        f"{image.shape[0]}, not {self.image_shape[1]}x{self.image_shape[0]} "
                        "as the first; set --config.resolution=N to centre-crop and resize "
                        "every image to N x N.")
      images.append(image)
    out = {"image": np.stack(images)}
    if self.num_classes:
      out["label"] = np.asarray([r["label"] for r in records], np.int32)
    return out


def in_memory(source: Source) -> ArraySource:
  """Every example of ``source`` as an ``ArraySource`` (for the translation tasks, which
  pair or split whole sets); other splits come from ``source.split``."""
  if isinstance(source, ArraySource):
    return source
  everything = sample(source, len(source))
  loader = (lambda name: in_memory(source.split(name))) if "test" in source.splits else None
  return ArraySource(everything["image"], everything.get("label"), source.description, loader)


def is_path(name: str) -> bool:
  """Whether a dataset value names files (a folder, ``.npy``, ``.npz`` or a pack) rather
  than a TFDS dataset: it has a path separator, starts with ``~`` or ``.``, ends with one
  of those suffixes, or exists. ``idx:`` and ``stacked:`` values are named datasets."""
  if name.startswith(("idx:", STACKED_PREFIX)):
    return False
  return (os.sep in name or name.startswith(("~", ".")) or
          name.endswith((".npy", ".npz", ".pack")) or os.path.exists(name))


def without_labels(path: str, class_folders: str = "auto") -> bool:
  """Whether the data at ``path`` surely has no class labels, found cheaply (a folder's top
  level, an archive's member names, a pack's metadata) without reading it: a recipe that
  would train on labels can then run its unconditional variant. False when unsure (or when
  nothing is there): opening the data decides and names what is wrong."""
  from jaxgan.data import files, pack

  full = os.path.abspath(os.path.expanduser(path))
  try:
    if pack.is_pack(full):
      with open(os.path.join(full, pack.META)) as f:
        return not json.load(f).get("num_classes")
    if os.path.isdir(full):
      if class_folders != "auto":
        return class_folders == "no"
      # Labels need every image in one of at least two first-level folders: an image at
      # the top, or fewer than two folders, means none.
      entries = [e for e in os.scandir(full) if not e.name.startswith(".")]
      loose = any(e.is_file() and e.name.lower().endswith(files.IMAGE_SUFFIXES)
                  for e in entries)
      return loose or sum(e.is_dir() for e in entries) < 2
    if full.endswith(".npy"):
      return True
    if full.endswith(".npz"):
      with zipfile.ZipFile(full) as archive:
        return "label.npy" not in archive.namelist()
  except (OSError, ValueError, zipfile.BadZipFile):
    return False
  return False


def open_path(path: str, *, resolution: int = 0, class_folders: str = "auto",
              skip_bad: bool = False, log: Callable[[str], None] | None = None) -> Source:
  """The user's own data at ``path``: a packed set (``python -m jaxgan.data.pack``), a
  ``.npy``/``.npz`` of arrays, or a folder of images.

  Raises:
    DataError: nothing at ``path``, a file of another kind, or data that cannot be used
      (the message names the file and the fix).
  """
  from jaxgan.data import files, pack

  full = os.path.abspath(os.path.expanduser(path))
  if not os.path.exists(full):
    raise DataError(f"{path}: no such file or folder. --config.dataset takes a folder of "
                    "images, a .npy or .npz of arrays, a packed set (.pack), or a TFDS name.")
  if pack.is_pack(full):
    return pack.PackedSource.open(full, resolution=resolution)
  if os.path.isdir(full):
    return files.FolderSource(full, resolution=resolution, class_folders=class_folders,
                              skip_bad=skip_bad, log=log)
  if full.endswith((".npy", ".npz")):
    return files.NumpySource.open(full, resolution=resolution, log=log)
  raise DataError(f"{path}: not a dataset jaxgan reads (a folder of images, a .npy, a .npz "
                  "with 'image' and 'label', or a .pack made by python -m jaxgan.data.pack).")


def load(name: str, split: str = "train", *, data_dir: str | None = None, download: bool = True,
         log: Callable[[str], None] | None = None, resolution: int = 0,
         class_folders: str = "auto", skip_bad: bool = False) -> Source:
  """A split by name or path, read record by record where it is large.

  Args:
    name: ``stacked:NAME`` for the Stacked MNIST form of a 10-class grayscale dataset
      (``Stacked``: three images as the channels of one, 1,000 modes), or a TFDS dataset
      with an ``image`` feature (``mnist``, ``fashion_mnist``,
      ``cifar10``, ...; read through ``tfds.data_source``), ``idx:/path/to/dir`` for
      MNIST-format files (held in memory), or a path (``open_path``: a folder of images,
      a ``.npy`` or ``.npz``, a packed set), which has one split.
    split: ``train`` or ``test`` (TFDS split syntax is accepted for TFDS datasets).
    data_dir: TFDS data directory (default: TFDS's, ``~/tensorflow_datasets``).
    download: let TFDS download and prepare the dataset when it is not prepared.
    log: where the one-line notices go (default: stderr).
    resolution: centre-crop and resize every image to this side (0: as they are).
    class_folders: for a folder, ``"auto"``, ``"yes"`` or ``"no"``
      (``jaxgan.data.files.FolderSource``).
    skip_bad: for a folder, leave unreadable files out instead of stopping.

  Returns:
    A ``Source``. ``fashion_mnist`` falls back to Debian's IDX files
    (``/usr/share/datasets/fashion-mnist``) when TFDS cannot provide it, with a one-line
    notice saying why.

  Raises:
    DataError: an unknown name, or no source that works; the message lists what was
      tried and how to fix it.
  """
  log = log or (lambda line: print(line, file=sys.stderr, flush=True))
  if name.startswith(STACKED_PREFIX):
    base = load(name[len(STACKED_PREFIX):], split, data_dir=data_dir, download=download,
                log=log, resolution=resolution)
    return Stacked.of(base, seed=0 if split == "train" else 1)
  if is_path(name):
    if split != "train":
      raise DataError(f"{name} is one set of images; it has no {split!r} split.")
    return open_path(name, resolution=resolution, class_folders=class_folders,
                     skip_bad=skip_bad, log=log)
  found = _load_named(name, split, data_dir, download, log, resolution)
  if resolution and isinstance(found, ArraySource) and found.image_shape[:2] != (
      resolution, resolution):
    found = dataclasses.replace(
        found, images=np.stack([fit(x, resolution) for x in found.images]),
        description=f"{found.description}, resized to {resolution}x{resolution}",
        loader=lambda other: load(name, other, data_dir=data_dir, download=download, log=log,
                                  resolution=resolution))
  return found


def _load_named(name, split, data_dir, download, log, resolution) -> Source:
  if name.startswith("idx:"):
    return load_idx(name[len("idx:"):], split)
  import tensorflow_datasets as tfds  # imported here: only the TFDS path needs it

  tried = []
  known = tfds.list_builders(with_community_datasets=False)  # the community index needs TF
  if name.split(":")[0].split("/")[0] not in known:
    # Checked up front: for an unknown name tfds.builder goes looking for community
    # datasets and may fail on a missing TensorFlow instead of saying "not found".
    import difflib

    close = difflib.get_close_matches(name, known, n=3)
    raise DataError(f"Unknown dataset {name!r}: not a TFDS dataset"
                    + (f" (did you mean {', '.join(close)}?)" if close else "")
                    + ". For MNIST-format files in a directory use idx:/path/to/dir.")
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # noqa: BLE001 - e.g. a TFDS builder whose imports are missing
    tried.append(f"TFDS builder {name!r}: {type(e).__name__}: {e}")
    builder = None
  if builder is not None:
    try:
      ds = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except Exception as e:  # noqa: BLE001 - not prepared (or not as array_record)
      tried.append(f"TFDS {name} in {builder.data_dir}: not prepared ({type(e).__name__})")
    else:
      return _from_tfds_source(ds, name, split, data_dir, resolution)
    if download:
      host = _DOWNLOAD_HOSTS.get(name)
      why = _reachable(host) if host else None
      if why is not None:
        tried.append(f"TFDS download: {why}")
      else:
        try:
          ds = tfds.data_source(name, split=split, data_dir=data_dir, download=True)
        except Exception as e:  # noqa: BLE001 - reported below with the other attempts
          tried.append(f"TFDS download: {type(e).__name__}: {str(e)[:200]}")
        else:
          return _from_tfds_source(ds, name, split, data_dir, resolution)
  if name == "fashion_mnist" and split in ("train", "test"):
    if os.path.exists(os.path.join(DEBIAN_FASHION_MNIST, "train-images-idx3-ubyte.gz")):
      log(f"jaxgan: using Debian's Fashion-MNIST IDX files in {DEBIAN_FASHION_MNIST}, "
          f"because {tried[-1] if tried else 'TFDS cannot provide fashion_mnist'}.")
      return load_idx(DEBIAN_FASHION_MNIST, split)
    tried.append(f"Debian's IDX files: not in {DEBIAN_FASHION_MNIST}")
  fixes = ["connect to the internet once so TFDS can download and prepare it",
           "or pass data_dir= (--config.data_dir) where it is already prepared",
           "or use MNIST-format files with idx:/path/to/dir"]
  if name == "fashion_mnist":
    fixes.insert(0, "apt-get install dataset-fashion-mnist (offline copy)")
  raise DataError(f"No source could provide {name!r} ({split}). Tried:\n  - "
                  + "\n  - ".join(tried) + "\nFix: " + "; ".join(fixes) + ".")
