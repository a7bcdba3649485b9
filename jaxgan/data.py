"""Data: which examples make batch ``s`` of a run, and how pixels become model inputs.

Batch ``s`` is a pure function of ``(seed, s, global batch size)``: the examples of a run
form one stream, the concatenation of a fresh permutation of the split per epoch, and
batch ``s`` is positions ``s * B ... s * B + B - 1`` of that stream. Every example appears
exactly once per epoch, nothing but the step needs checkpointing, and a resumed run sees
the batches an uninterrupted one would have seen. The permutation is a keyed bijection
evaluated per position (``permute``: a Feistel network with cycle-walking), so a batch
costs O(B) whatever the size of the split. One definition runs in NumPy on the host (to
feed batches) and in JAX inside a compiled loop on the device (``jaxgan.parallel``).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import math
import os
import queue
import socket
import sys
import threading
import zlib
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.errors import ConfigError, Error

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


class DataError(Error, ValueError):
  """A dataset that cannot be used as it is; the message says what is wrong and the fix."""


# -- the order of the examples: a keyed bijection per epoch, O(1) per example -------------

# The name of the data order, saved with every checkpoint: a run resumed under another
# order would see other batches, so resuming across orders is refused (jaxgan.train).
# "permutation" was the order before: jax.random.permutation of the split per epoch.
ORDER = "feistel-1"
FEISTEL_ROUNDS = 8

_GOLDEN = 0x9E3779B9  # 2**32 / golden ratio: separates the inputs of successive hashes
_M1, _M2 = 0x85EBCA6B, 0xC2B2AE35  # MurmurHash3's 32-bit finaliser


def _hash(xp, x):
  """MurmurHash3's finaliser on uint32 (a bijection of 32-bit words with full avalanche)."""
  x = x ^ (x >> xp.uint32(16))
  x = x * xp.uint32(_M1)
  x = x ^ (x >> xp.uint32(13))
  x = x * xp.uint32(_M2)
  return x ^ (x >> xp.uint32(16))


def _epoch_key(xp, key_words, epoch):
  """One uint32 word per element from the run's key words and the element's epoch."""
  k = _hash(xp, epoch * xp.uint32(_GOLDEN) + xp.uint32(1))
  for i in range(key_words.shape[-1]):
    k = _hash(xp, k ^ key_words[i])
  return k


def _feistel(xp, x, key, bits: int):
  """A Feistel network on ``bits``-bit words: a bijection of ``[0, 2**bits)`` for any key.

  Each round maps the halves ``(L, R)`` (``a`` and ``b`` bits) to
  ``(R, L ^ F(key, round, R) mod 2**a)``; the halves alternate in size when ``bits`` is
  odd, and every round can be undone from its output, so the whole is a bijection.
  """
  a, b = bits // 2, bits - bits // 2
  left, right = x >> xp.uint32(b), x & xp.uint32((1 << b) - 1)
  for r in range(FEISTEL_ROUNDS):
    f = _hash(xp, (right + xp.uint32(r * _GOLDEN % 2**32)) ^ key)
    left, right = right, left ^ (f & xp.uint32((1 << a) - 1))
    a, b = b, a
  return (left << xp.uint32(b)) | right


# At least 8 bits (halves of 4): on smaller domains a Feistel network reaches only a
# skewed subset of the permutations (for N = 5 on 3 bits, chi-squared 1088 over the 120
# orders with 119 degrees of freedom, against 134 on 8 bits: tests/test_data.py). Walking
# a domain of 256 costs a small split at most 256 / N walks, and a large one nothing.
MIN_DOMAIN_BITS = 8


def _domain_bits(num_examples: int) -> int:
  return max(MIN_DOMAIN_BITS, (num_examples - 1).bit_length())


def _positions(xp, step, batch_size: int, num_examples: int):
  """``(epoch, position within the epoch)`` of stream positions ``step * B + j``, uint32.

  Computed without forming ``step * B`` (which would overflow 32 bits after 2**32
  examples): ``step = q * N + r`` so ``step * B = (q * B) * N + r * B``, and ``r * B < N * B``.
  """
  if batch_size > num_examples:
    raise ConfigError(f"The batch size ({batch_size}) exceeds the number of examples "
                      f"({num_examples}); use a smaller batch.")
  if num_examples * batch_size >= 2**32:
    raise ConfigError(f"num_examples * batch_size = {num_examples * batch_size:,} must be below "
                      "2**32 for the 32-bit data order.")
  n = xp.uint32(num_examples)
  step = xp.asarray(step).astype(xp.uint32)
  carried = (step % n) * xp.uint32(batch_size)
  first = (step // n) * xp.uint32(batch_size) + carried // n
  position = carried % n + xp.arange(batch_size, dtype=xp.uint32)
  return first + position // n, position % n


def _first_walk(xp, key_words, epoch, position, num_examples: int):
  """``(domain bits, per-element round key, the network's first value)``."""
  bits = _domain_bits(num_examples)
  key = _epoch_key(xp, key_words, epoch)
  return bits, key, _feistel(xp, position, key, bits)


def _permute_np(key_words: np.ndarray, epoch: np.ndarray, position: np.ndarray,
                num_examples: int) -> np.ndarray:
  if num_examples == 1:
    return np.zeros(position.shape, np.int32)
  bits, key, out = _first_walk(np, key_words, epoch, position, num_examples)
  n = np.uint32(num_examples)
  outside = out >= n
  while outside.any():  # cycle-walking: under 2 walks on average once N > 128
    out[outside] = _feistel(np, out[outside], key[outside], bits)
    outside = out >= n
  return out.astype(np.int32)


def _permute_jax(key_words: jax.Array, epoch: jax.Array, position: jax.Array,
                 num_examples: int) -> jax.Array:
  if num_examples == 1:
    return jnp.zeros(position.shape, jnp.int32)
  bits, key, out = _first_walk(jnp, key_words, epoch, position, num_examples)
  n = jnp.uint32(num_examples)
  out = jax.lax.while_loop(lambda y: jnp.any(y >= n),
                           lambda y: jnp.where(y >= n, _feistel(jnp, y, key, bits), y), out)
  return out.astype(jnp.int32)


def permute(key: jax.Array, epoch, position, num_examples: int):
  """Example at ``position`` of epoch ``epoch``'s order: a keyed bijection of ``[0, N)``.

  A Feistel network on the smallest power-of-two domain holding ``N`` (of at least
  ``2**MIN_DOMAIN_BITS``), keyed by the run's key and the epoch, restricted to ``[0, N)`` by
  cycle-walking (a value outside is permuted again until it lands inside; this is a
  bijection of ``[0, N)`` because it follows the cycles of a bijection of the domain,
  Black and Rogaway, 2002). Each position costs O(1) (``FEISTEL_ROUNDS`` hashes per
  walk, under 2 walks on average), whatever ``N``.

  NumPy arrays in (``epoch``, ``position``): NumPy out, for the host; anything else:
  JAX, for the device. Both compute the same integers.

  Args:
    key: the data key (``jax.random.key(seed)``), or its ``jax.random.key_data`` words.
    epoch: uint32 epoch numbers.
    position: uint32 positions in ``[0, N)``, the same shape as ``epoch``.
    num_examples: ``N``.
  """
  words = _key_words(key)
  if isinstance(position, np.ndarray) and isinstance(epoch, np.ndarray):
    return _permute_np(np.asarray(words, np.uint32), epoch.astype(np.uint32),
                       position.astype(np.uint32), num_examples)
  return _permute_jax(jnp.asarray(words, jnp.uint32), jnp.asarray(epoch, jnp.uint32),
                      jnp.asarray(position, jnp.uint32), num_examples)


def _key_words(key):
  if hasattr(key, "dtype") and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(key)
  return key


def batch_indices(key: jax.Array, step, batch_size: int, num_examples: int) -> jax.Array:
  """Indices into the split of the examples of batch ``step``, computed in JAX.

  Args:
    key: the data key (one per run; ``jax.random.key(seed)``).
    step: the batch number (int or int32 scalar array).
    batch_size: global batch size ``B``; at most ``num_examples``.
    num_examples: size of the split ``N``.

  Returns:
    int32 ``[B]``: entry ``j`` is ``permute(key, e, p, N)`` for stream position
    ``g = step * B + j``, epoch ``e = g // N``, position ``p = g % N``. Each epoch is a
    fresh permutation of the split; the cost is O(B), whatever ``N``.
  """
  epoch, position = _positions(jnp, step, batch_size, num_examples)
  return _permute_jax(jnp.asarray(_key_words(key), jnp.uint32), epoch, position, num_examples)


def host_batch_indices(key_words: np.ndarray, step: int, batch_size: int,
                       num_examples: int) -> np.ndarray:
  """``batch_indices`` in NumPy on the host, from the key's ``jax.random.key_data`` words."""
  epoch, position = _positions(np, step, batch_size, num_examples)
  return _permute_np(np.asarray(key_words, np.uint32), epoch, position, num_examples)


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


# -- MNIST-format IDX files ---------------------------------------------------------------

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


@dataclasses.dataclass(frozen=True)
class ArraySource:
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
    CIFAR-10 is its first 5,000 images); other splits load as before."""
    if not 0 < fraction <= 1:
      raise ConfigError(f"data_fraction must be in (0, 1] (1: the whole split), got "
                        f"{fraction!r}.")
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


# -- batches on the host, placed on the device ahead of use ------------------------------


def batches(source: ArraySource, batch_size: int, seed: int, start_step: int = 0, *,
            process_index: int | None = None, process_count: int | None = None,
            stream: int = 0) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
  """Yields ``(step, batch)`` for ``step = start_step, start_step + 1, ...``.

  ``batch`` is this process's share of global batch ``step``: examples
  ``batch_indices(key(seed), step, batch_size, N)[p * b : (p + 1) * b]`` with
  ``b = batch_size / process_count``, as ``{"image": float32 [b, H, W, C] in [-1, 1],
  "label": int32 [b]}``. A run restarted at step ``s`` gets exactly the batches it would
  have had; the indices are computed on the host CPU with the same function the
  on-device loop uses (``jaxgan.parallel.fuse_steps_on_device`` with
  ``data_key=jax.random.key(seed)``).

  Any source with ``len()``, ``description`` and ``get(indices) -> dict`` of uint8 pixel
  arrays (and ``label``) serves (``jaxgan.translation_data.PairedSource``: ``source`` and
  ``image``); every field but ``label`` comes out in [-1, 1]. ``stream`` > 0 orders the
  examples by the key ``fold_in(key(seed), stream)`` instead: an order independent of
  stream 0's (a second dataset of the same run).

  Raises:
    DataError: the batch does not divide over the processes, or exceeds the split.
  """
  p = jax.process_index() if process_index is None else process_index
  count = jax.process_count() if process_count is None else process_count
  if batch_size % count:
    raise DataError(f"The global batch size {batch_size} does not divide over {count} "
                    "processes; make it a multiple of the process count.")
  if batch_size > len(source):
    raise DataError(f"The batch size {batch_size} exceeds the {len(source)} examples of "
                    f"{source.description}.")
  share = batch_size // count
  key = jax.random.key(seed)
  if stream:
    key = jax.random.fold_in(key, stream)
  key_words = np.asarray(jax.random.key_data(key))
  step = start_step
  while True:
    index = host_batch_indices(key_words, step, batch_size, len(source))[p * share:
                                                                          (p + 1) * share]
    examples = source.get(index)
    yield step, {name: x.astype(np.int32) if name == "label" else to_model_range(x)
                 for name, x in examples.items()}
    step += 1


class Prefetch:
  """Prepares batches in a background thread and places them on the device ahead of use.

  ``for step, batch in Prefetch(batches(...), place=...)`` keeps ``size`` batches ready,
  already transferred (``place`` is e.g. ``jax.device_put``,
  ``jaxgan.parallel.split_batch`` or ``functools.partial(shard_batch, mesh=mesh)``), so
  the device does not wait for the host. An exception in the producer is raised in the
  consumer. ``close()`` (or leaving a ``with`` block) stops the thread.
  """

  _DONE = object()

  def __init__(self, iterator: Iterator, place: Callable = jax.device_put, size: int = 2):
    self._queue: queue.Queue = queue.Queue(maxsize=size)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._fill, args=(iterator, place), daemon=True)
    self._thread.start()

  def _fill(self, iterator, place):
    try:
      for step, batch in iterator:
        item = (step, place(batch))
        while not self._stop.is_set():
          try:
            self._queue.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
        if self._stop.is_set():
          return
    except BaseException as e:  # noqa: BLE001 - handed to the consumer
      self._queue.put(e)
      return
    self._queue.put(self._DONE)

  def __iter__(self):
    return self

  def __next__(self):
    item = self._queue.get()
    if item is self._DONE:
      raise StopIteration
    if isinstance(item, BaseException):
      raise item
    return item

  def close(self) -> None:
    self._stop.set()
    while not self._queue.empty():  # unblock a producer waiting on a full queue
      try:
        self._queue.get_nowait()
      except queue.Empty:
        break
    self._thread.join(timeout=5)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


# -- datasets by name: TFDS, IDX directories, the offline Fashion-MNIST fallback ----------

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


def _tfds_split(name: str, data_dir: str | None, split: str) -> ArraySource:
  """A split of a TFDS dataset that is already prepared (no download, no probe)."""
  import tensorflow_datasets as tfds

  return _from_tfds_source(tfds.data_source(name, split=split, data_dir=data_dir,
                                            download=False), name, split, data_dir)


def _from_tfds_source(ds, name: str, split: str, data_dir: str | None) -> ArraySource:
  example = ds[0]
  if "image" not in example:
    raise DataError(f"TFDS dataset {name!r} has no 'image' feature (features: "
                    f"{sorted(example)}); jaxgan trains on image datasets.")
  try:
    records = ds.__getitems__(list(range(len(ds))))
  except TypeError:  # tfds.testing.mock_data's source has no working __getitems__
    records = [ds[i] for i in range(len(ds))]
  images = np.stack([np.asarray(r["image"]) for r in records]).astype(np.uint8)
  if images.ndim == 3:
    images = images[..., None]
  labels = (np.asarray([r["label"] for r in records], np.int32) if "label" in example else None)
  return ArraySource(images, labels, f"TFDS {name} ({split})",
                     functools.partial(_tfds_split, name, data_dir))


def load(name: str, split: str = "train", *, data_dir: str | None = None, download: bool = True,
         log: Callable[[str], None] | None = None) -> ArraySource:
  """A split by name, held in memory.

  Args:
    name: a TFDS dataset with an ``image`` feature (``mnist``, ``fashion_mnist``,
      ``cifar10``, ...), or ``idx:/path/to/dir`` for MNIST-format files.
    split: ``train`` or ``test`` (TFDS split syntax is accepted for TFDS datasets).
    data_dir: TFDS data directory (default: TFDS's, ``~/tensorflow_datasets``).
    download: let TFDS download and prepare the dataset when it is not prepared.
    log: where the one-line fallback notice goes (default: stderr).

  Returns:
    An ``ArraySource``. ``fashion_mnist`` falls back to Debian's IDX files
    (``/usr/share/datasets/fashion-mnist``) when TFDS cannot provide it, with a one-line
    notice saying why.

  Raises:
    DataError: an unknown name, or no source that works; the message lists what was
      tried and how to fix it.
  """
  log = log or (lambda line: print(line, file=sys.stderr, flush=True))
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
      return _from_tfds_source(ds, name, split, data_dir)
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
          return _from_tfds_source(ds, name, split, data_dir)
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
