"""Data for image-to-image translation: paired tasks made from an image dataset, unpaired
domains (classes of one dataset, or TFDS ``cycle_gan/*``), and their batches.

Paired tasks (pix2pix), each made deterministically from every image, so the test split's
pairs are fixed and a run sees the same pairs whatever its length:

* ``edges``: the image's edge map (Sobel gradient magnitude above ``EDGE_THRESHOLD`` of the
  image's largest) -> the image, as edges2shoes is (with HED edges there);
* ``super_resolution``: the image shrunk ``factor`` times (box average), brought back to
  full size by pixel replication (no detail added) -> the image; the baseline to beat is
  bicubic interpolation of the shrunk image (``bicubic_upsample``);
* ``inpainting``: the image with a square hole (``hole`` pixels a side, at a place drawn
  from the example's index) filled with mid-grey, plus the hole's mask as a second channel
  -> the image.

Unpaired domains (CycleGAN): two splits with independent orders. Offline, the classes of
one dataset (Fashion-MNIST's sneakers (7) and ankle boots (9) by default); TFDS
``cycle_gan/<name>`` (``trainA``/``trainB``/``testA``/``testB``, images of any size) is
resized to a square side first.

Batches keep the data contract of ``jaxgan.data.order``: batch ``s`` is a pure function of
``(seed, s, batch size)``, uint8 pixels become float32 in [-1, 1] (``to_model_range``).

"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import jax
import numpy as np

from jaxgan.data import order as order_lib
from jaxgan.data import pipeline, sources
from jaxgan.data.sources import ArraySource, DataError

PAIRED_TASKS = ("edges", "super_resolution", "inpainting")
EDGE_THRESHOLD = 0.25  # of the image's largest gradient magnitude
MID_GREY = 128  # the inpainting hole's fill


@dataclasses.dataclass(frozen=True)
class PairedSource:
  """Aligned pairs held in memory: ``source`` uint8 ``[N, H, W, C_in]`` -> ``images`` uint8
  ``[N, H, W, C_out]``.

  Attributes:
    source: the inputs.
    images: the targets.
    description: what the pairs are and where they came from.
    labels: the images' class labels (for evaluation), or None.
  """

  source: np.ndarray
  images: np.ndarray
  description: str
  labels: np.ndarray | None = None

  def __post_init__(self):
    for name, x in (("source", self.source), ("images", self.images)):
      if x.ndim != 4 or x.dtype != np.uint8:
        raise DataError(f"{self.description}: {name} must be uint8 [N, H, W, C], got "
                        f"{x.dtype} {x.shape}.")
    if self.source.shape[:3] != self.images.shape[:3]:
      raise DataError(f"{self.description}: sources {self.source.shape} and images "
                      f"{self.images.shape} must agree in N, H and W.")

  def __len__(self) -> int:
    return len(self.images)

  @property
  def source_shape(self) -> tuple[int, int, int]:
    return tuple(self.source.shape[1:])

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.images.shape[1:])

  def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """The pairs at ``indices``: ``{"source": uint8, "image": uint8}``."""
    return {"source": self.source[indices], "image": self.images[indices]}


@dataclasses.dataclass(frozen=True)
class UnpairedSource:
  """Two unaligned domains: ``a`` and ``b`` (``ArraySource``s of one image shape each)."""

  a: ArraySource
  b: ArraySource
  description: str

  @property
  def shape_a(self) -> tuple[int, int, int]:
    return self.a.image_shape

  @property
  def shape_b(self) -> tuple[int, int, int]:
    return self.b.image_shape


def edge_map(images: np.ndarray, threshold: float = EDGE_THRESHOLD) -> np.ndarray:
  """uint8 edge maps ``[N, H, W, 1]`` (255 on edges) of uint8 images ``[N, H, W, C]``: the
  Sobel gradient magnitude of the grey image (channel mean), above ``threshold`` times the
  image's largest (edge-replicated border)."""
  x = images.astype(np.float64).mean(axis=-1) / 255.0
  p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
  gx = (p[:, :-2, 2:] + 2 * p[:, 1:-1, 2:] + p[:, 2:, 2:]
        - p[:, :-2, :-2] - 2 * p[:, 1:-1, :-2] - p[:, 2:, :-2])
  gy = (p[:, 2:, :-2] + 2 * p[:, 2:, 1:-1] + p[:, 2:, 2:]
        - p[:, :-2, :-2] - 2 * p[:, :-2, 1:-1] - p[:, :-2, 2:])
  magnitude = np.hypot(gx, gy)
  peak = magnitude.max(axis=(1, 2), keepdims=True)
  edges = (magnitude > threshold * np.maximum(peak, 1e-12)) & (peak > 0)
  return (edges * 255).astype(np.uint8)[..., None]


def low_resolution(images: np.ndarray, factor: int) -> np.ndarray:
  """uint8 images shrunk ``factor`` times by averaging ``factor x factor`` blocks (rounded)."""
  n, h, w, c = images.shape
  if h % factor or w % factor:
    raise DataError(f"super_resolution with factor {factor} needs sides divisible by it; the "
                    f"images are {h}x{w}. Use factor 2 or 4 for 28x28.")
  blocks = images.astype(np.float64).reshape(n, h // factor, factor, w // factor, factor, c)
  return np.round(blocks.mean(axis=(2, 4))).astype(np.uint8)


def replicate_pixels(images: np.ndarray, factor: int) -> np.ndarray:
  """Nearest-neighbour up-sampling by ``factor``: each pixel a ``factor x factor`` block."""
  return images.repeat(factor, axis=1).repeat(factor, axis=2)


def bicubic_upsample(images: np.ndarray, factor: int) -> np.ndarray:
  """The super-resolution baseline: uint8 ``[N, h, w, C]`` -> float32 ``[N, h f, w f, C]``
  in [-1, 1] by bicubic interpolation (Keys' kernel, a = -0.5, ``jax.image.resize``),
  clipped to the range."""
  x = sources.to_model_range(images)
  n, h, w, c = x.shape
  out = jax.image.resize(x, (n, h * factor, w * factor, c), method="bicubic")
  return np.clip(np.asarray(out), -1.0, 1.0)


def hole_masks(indices: np.ndarray, height: int, width: int, hole: int) -> np.ndarray:
  """bool ``[N, H, W]``: a ``hole x hole`` square for each example, its corner drawn from
  the example's index in the split (the same for the example whatever the batch)."""
  if not 1 <= hole <= min(height, width):
    raise DataError(f"The inpainting hole must be 1..{min(height, width)} pixels a side, got "
                    f"{hole}.")
  words = order_lib.hash32(np, np.asarray(indices, np.uint32) * np.uint32(2654435761) + 1)
  top = words % np.uint32(height - hole + 1)
  left = order_lib.hash32(np, words) % np.uint32(width - hole + 1)
  rows, cols = np.arange(height), np.arange(width)
  return (((rows[None, :, None] >= top[:, None, None])
           & (rows[None, :, None] < top[:, None, None] + hole))
          & ((cols[None, None, :] >= left[:, None, None])
             & (cols[None, None, :] < left[:, None, None] + hole)))


def make_pairs(source: ArraySource, task: str, *, factor: int = 2, hole: int = 12
               ) -> PairedSource:
  """The pairs of ``task`` (``PAIRED_TASKS``) made from every image of ``source``.

  Args:
    source: the images (and labels, kept for evaluation).
    task: ``edges``, ``super_resolution`` or ``inpainting``.
    factor: super-resolution's shrinking factor (2: 28 -> 14; 4: 28 -> 7).
    hole: inpainting's square hole side in pixels.
  """
  images = source.images
  if task == "edges":
    inputs = edge_map(images)
    what = "edge maps"
  elif task == "super_resolution":
    inputs = replicate_pixels(low_resolution(images, factor), factor)
    what = f"{images.shape[1] // factor}x{images.shape[2] // factor} copies (x{factor})"
  elif task == "inpainting":
    masks = hole_masks(np.arange(len(images)), images.shape[1], images.shape[2], hole)
    grey = images.mean(axis=-1, keepdims=True).astype(np.uint8) if images.shape[-1] > 1 else (
        images)
    filled = np.where(masks[..., None], np.uint8(MID_GREY), grey)
    inputs = np.concatenate([filled, (masks[..., None] * 255).astype(np.uint8)], axis=-1)
    what = f"images with a {hole}x{hole} hole (and its mask)"
  else:
    raise DataError(f"Unknown paired task {task!r}; the tasks are {PAIRED_TASKS}.")
  return PairedSource(inputs, images, f"{what} -> {source.description}", source.labels)


def class_domains(source: ArraySource, a: int, b: int, names: tuple[str, str] | None = None
                  ) -> UnpairedSource:
  """Domain A: ``source``'s images of class ``a``; domain B: those of class ``b``."""
  if source.labels is None:
    raise DataError(f"{source.description} has no labels, so it has no classes to make "
                    "domains of.")
  domains = []
  for cls in (a, b):
    keep = source.labels == cls
    if not keep.any():
      raise DataError(f"{source.description} has no images of class {cls} (classes 0.."
                      f"{source.num_classes - 1}).")
    domains.append(ArraySource(source.images[keep], source.labels[keep],
                               f"class {cls} of {source.description}"))
  names = names or (f"class {a}", f"class {b}")
  return UnpairedSource(*domains, f"{names[0]} <-> {names[1]} of {source.description}")


def _resize_square(images: list[np.ndarray], size: int) -> np.ndarray:
  from PIL import Image

  out = []
  for image in images:
    image = np.asarray(image)
    if image.ndim == 2:
      image = image[..., None]
    if image.shape[-1] == 1:
      image = np.repeat(image, 3, axis=-1)
    if image.shape[:2] != (size, size):
      image = np.asarray(Image.fromarray(image.astype(np.uint8)).resize(
          (size, size), Image.Resampling.BICUBIC))
    out.append(image)
  return np.stack(out).astype(np.uint8)


def load_cycle_gan(name: str, split: str = "train", *, size: int = 256,
                   data_dir: str | None = None) -> UnpairedSource:
  """TFDS ``cycle_gan/<name>`` (e.g. ``horse2zebra``): splits ``trainA``/``trainB`` for
  ``train``, ``testA``/``testB`` for ``test``, every image resized to ``size x size`` RGB
  (bicubic).

  Raises:
    DataError: the dataset is not prepared (TFDS downloads it when it can), or another.
  """
  import tensorflow_datasets as tfds

  if split not in ("train", "test"):
    raise DataError(f"cycle_gan datasets have the splits 'train' and 'test', not {split!r}.")
  full = name if name.startswith("cycle_gan/") else f"cycle_gan/{name}"
  domains = []
  for domain in "AB":
    try:
      ds = tfds.data_source(full, split=f"{split}{domain}", data_dir=data_dir)
    except Exception as e:  # noqa: BLE001 - TFDS raises many kinds; the message says which
      raise DataError(f"TFDS {full} ({split}{domain}) cannot be loaded: {type(e).__name__}: "
                      f"{str(e)[:300]}. Prepare it once with internet access "
                      "(tfds.data_source downloads it), or pass --config.data_dir where it "
                      "is prepared.") from e
    records = [ds[i] for i in range(len(ds))]
    images = _resize_square([r["image"] for r in records], size)
    domains.append(ArraySource(images, None, f"TFDS {full} ({split}{domain}, {size}x{size})"))
  return UnpairedSource(*domains, f"TFDS {full} ({split}, {size}x{size})")


def paired_batches(pairs: PairedSource, batch_size: int, seed: int, start_step: int = 0
                   ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
  """``(step, {"source", "image"})`` for ``step = start_step, ...``: ``jaxgan.data.batches``'
  order over the pairs."""
  return pipeline.batches(pairs, batch_size, seed, start_step)


def unpaired_batches(domains: UnpairedSource, batch_size: int, seed: int, start_step: int = 0
                     ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
  """``(step, {"a", "b"})``: each domain in its own order (``jaxgan.data.batches`` with the
  seed's streams 0 and 1), ``batch_size`` images of each per step."""
  a = pipeline.batches(domains.a, batch_size, seed, start_step, stream=0)
  b = pipeline.batches(domains.b, batch_size, seed, start_step, stream=1)
  for (step, batch_a), (_, batch_b) in zip(a, b, strict=True):
    yield step, {"a": batch_a["image"], "b": batch_b["image"]}
