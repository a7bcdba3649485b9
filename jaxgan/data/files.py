"""The user's own images: a folder of image files, or NumPy arrays (``.npy``, ``.npz``).

Both are random-access sources (``jaxgan.data.sources.Source``): an example is read and
decoded when its batch asks for it, so memory does not grow with the number of images. A
folder is scanned once (file headers only, not pixels) to find its images, their sizes and
modes, and its classes; arrays are memory-mapped where NumPy can.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import zipfile
from collections.abc import Callable

import numpy as np

from jaxgan.data.sources import DataError, Source, fit

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# Modes whose pixels are one gray channel (with or without alpha); every other mode is
# read as RGB.
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _decode(path: str, channels: int, resolution: int) -> np.ndarray:
  """One image file as uint8 ``[H, W, channels]``; raises DataError naming the file."""
  from PIL import Image, UnidentifiedImageError

  try:
    with Image.open(path) as image:
      image.load()
      if image.mode == "I;16":  # 16-bit gray: its high byte is the 8-bit image
        image = Image.fromarray((np.asarray(image, np.uint16) >> 8).astype(np.uint8))
      image = image.convert("L" if channels == 1 else "RGB")
      return fit(image, resolution)
  except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
    raise DataError(f"{path}: not a readable image ({type(e).__name__}: {e}); the file is "
                    "truncated or corrupt. Replace or delete it, or skip such files with "
                    "--config.skip_bad_images=True.") from e


def _scan(root: str) -> list[str]:
  """Image files under ``root``, recursively, as sorted paths relative to it."""
  found = []
  for directory, subdirs, files in os.walk(root, followlinks=True):
    subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
    rel = os.path.relpath(directory, root)
    for name in files:
      if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith("."):
        found.append(name if rel == "." else os.path.join(rel, name))
  return sorted(found)


def _headers(root: str, files: list[str], skip_bad: bool, log: Callable[[str], None]):
  """``(kept files, sizes (w, h), modes, stamp)`` from each file's header (``stamp``: a hash
  of the files' sizes and times); a file whose header cannot be read raises, or is left
  out and counted with ``skip_bad``."""
  from PIL import Image, UnidentifiedImageError

  kept, sizes, modes, bad = [], [], [], []
  stamp = 0
  progress = len(files) >= 20_000
  for i, rel in enumerate(files):
    path = os.path.join(root, rel)
    try:
      with Image.open(path) as image:
        size, mode = image.size, image.mode
      stat = os.stat(path)
      stamp = (stamp * 31 + stat.st_size + stat.st_mtime_ns) % 2**61
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
      if not skip_bad:
        raise DataError(f"{path}: not a readable image ({type(e).__name__}); replace or "
                        "delete it, or skip such files with --config.skip_bad_images=True.") from e
      bad.append(path)
      continue
    kept.append(rel)
    sizes.append(size)
    modes.append(mode)
    if progress and (i + 1) % 20_000 == 0:
      log(f"jaxgan: scanned {i + 1:,} of {len(files):,} files in {root}")
  if bad:
    log(f"jaxgan: skipped {len(bad):,} unreadable file(s) in {root} (the first: {bad[0]}).")
  return kept, sizes, modes, stamp


def _class_folders(files: list[str], root: str, class_folders: str):
  """``(class names, labels)`` from the first level of sub-folders, or ``(None, None)``.

  ``class_folders``: ``"auto"`` (classes when every image sits in one of at least two
  first-level folders), ``"yes"`` (required: an error names why not), ``"no"``.
  """
  if class_folders == "no":
    return None, None
  tops = [f.split(os.sep, 1)[0] if os.sep in f else None for f in files]
  names = sorted({t for t in tops if t is not None})
  loose = [f for f, t in zip(files, tops, strict=True) if t is None]
  why = None
  if loose:
    why = (f"{len(loose):,} image(s) lie directly in {root} (e.g. {loose[0]}), outside any "
           "class folder")
  elif len(names) < 2:
    why = (f"{root} has {len(names)} class folder{'s' if len(names) != 1 else ''}"
           f"{' (' + names[0] + ')' if names else ''}; classes need at least two")
  if why is not None:
    if class_folders == "yes":
      raise DataError(f"{why}. Put each class's images in its own sub-folder "
                      f"({root}/<class>/<image>), or train without labels "
                      "(--config.conditional=False, --config.class_folders=no).")
    return None, None
  index = {name: i for i, name in enumerate(names)}
  return names, np.asarray([index[t] for t in tops], np.int32)


class FolderSource(Source):
  """Images in a folder tree (PNG, JPEG, WebP), decoded when read.

  Classes, when asked, are the first level of sub-folders in sorted order (torchvision's
  ``ImageFolder``: ``root/<class>/.../<image>``). The examples are the files in sorted
  order of their paths. Images of several sizes need ``resolution`` (each is then
  centre-cropped and resized, ``fit``); gray images among colour ones are read as RGB,
  said once.

  Args:
    root: the folder.
    resolution: the side of the square images to make (0: the files' own size, which
      must then be the same for all).
    class_folders: ``"auto"``, ``"yes"`` or ``"no"`` (``_class_folders``).
    skip_bad: leave unreadable files out (counted in the log) instead of stopping; a file
      that fails only when decoded is replaced by the next readable one.
    log: where notices go.

  Raises:
    DataError: no such folder, no images in it, unreadable files, mixed sizes without
      ``resolution``, or classes asked for that the folder does not have.
  """

  def __init__(self, root: str, *, resolution: int = 0, class_folders: str = "auto",
               skip_bad: bool = False, log: Callable[[str], None] | None = None):
    log = log or _stderr
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
      raise DataError(f"{root}: no such folder. Give the folder that holds the images.")
    files = _scan(root)
    if not files:
      raise DataError(f"{root} holds no images ({', '.join(IMAGE_SUFFIXES)}, searched "
                      "recursively). Point --config.dataset at the folder of images.")
    files, sizes, modes, stamp = _headers(root, files, skip_bad, log)
    if not files:
      raise DataError(f"{root}: none of its image files can be read.")
    if not resolution and len(set(sizes)) > 1:
      first = sizes[0]
      other = next(i for i, s in enumerate(sizes) if s != first)
      raise DataError(f"{root} holds images of several sizes: {files[0]} is "
                      f"{first[0]}x{first[1]}, {files[other]} is {sizes[other][0]}x"
                      f"{sizes[other][1]}. Set --config.resolution=N to centre-crop and "
                      "resize every image to N x N.")
    gray = sum(m in _GRAY_MODES for m in modes)
    self.channels = 1 if gray == len(modes) else 3
    if 0 < gray < len(modes):
      log(f"jaxgan: {gray:,} of {len(modes):,} images in {root} are grayscale; they are "
          "read as RGB (three equal channels).")
    class_names, labels = _class_folders(files, root, class_folders)
    w, h = sizes[0]
    self.root, self.resolution, self.skip_bad = root, resolution, skip_bad
    self.files = np.asarray(files)
    self.labels, self.class_names = labels, class_names
    self.image_shape = ((resolution, resolution) if resolution else (h, w)) + (self.channels,)
    self.num_classes = 0 if labels is None else len(class_names)
    classes = f", {self.num_classes} classes from its sub-folders" if labels is not None else ""
    crop = f", centre-cropped and resized to {resolution}x{resolution}" if resolution else ""
    self.description = f"the folder {root} ({len(files):,} images{classes}{crop})"
    # Changes when files are added, removed or rewritten: keys the classifier's cache.
    self.fingerprint = f"{len(files)}:{stamp:x}"

  def __len__(self) -> int:
    return len(self.files)

  def _read(self, i: int) -> np.ndarray:
    if not self.skip_bad:
      return _decode(os.path.join(self.root, self.files[i]), self.channels, self.resolution)
    for k in range(len(self.files)):  # the next readable file: a pure function of i
      path = os.path.join(self.root, self.files[(i + k) % len(self.files)])
      try:
        return _decode(path, self.channels, self.resolution)
      except DataError:
        _stderr(f"jaxgan: skipped {path}: it cannot be decoded (--config.skip_bad_images).")
    raise DataError(f"{self.root}: no file can be decoded.")

  def get(self, indices) -> dict[str, np.ndarray]:
    indices = np.asarray(indices)
    out = {"image": np.stack([self._read(int(i)) for i in indices])}
    if self.labels is not None:
      out["label"] = self.labels[indices]
    return out


def _stderr(line: str) -> None:
  print(line, file=sys.stderr, flush=True)


def _npz_member(path: str, name: str) -> np.ndarray:
  """Member ``name`` of an ``.npz``: memory-mapped when stored uncompressed (``np.savez``),
  else read into memory (``np.savez_compressed``)."""
  with zipfile.ZipFile(path) as archive:
    info = archive.getinfo(name + ".npy")
    if info.compress_type == zipfile.ZIP_STORED:
      with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        # The local header's name and extra field lengths (they may differ from the
        # central directory's) put the member's own bytes after them.
        start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + \
            int.from_bytes(local[28:30], "little")
        f.seek(start)
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
      if not fortran and dtype.hasobject is False:
        return np.memmap(path, dtype, "r", offset=offset, shape=shape)
    with archive.open(name + ".npy") as member:
      return np.lib.format.read_array(member, allow_pickle=False)


def _open_images(path: str, log: Callable[[str], None] | None = None) -> np.ndarray:
  """The images of a ``.npy`` or an ``.npz`` (its ``image``), memory-mapped where possible."""
  if path.endswith(".npy"):
    return np.load(path, mmap_mode="r", allow_pickle=False)
  with zipfile.ZipFile(path) as archive:
    members = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
    compressed = any(i.compress_type != zipfile.ZIP_STORED for i in archive.infolist())
  if "image" not in members:
    raise DataError(f"{path} has no 'image' array (it has {', '.join(members) or 'none'}); "
                    "save it with np.savez(path, image=images, label=labels).")
  if compressed and log is not None:
    log(f"jaxgan: {path} is compressed, so its arrays are read into memory; "
        "np.savez (uncompressed) or a .npy is memory-mapped instead.")
  return _npz_member(path, "image")


def _as_images(images: np.ndarray, where: str) -> np.ndarray:
  if images.dtype != np.uint8:
    raise DataError(f"{where}: images must be uint8 pixels in [0, 255], got {images.dtype}. "
                    "Convert them, e.g. np.round(x * 255).astype(np.uint8) for floats in "
                    "[0, 1].")
  if images.ndim == 3:
    return images[..., None]
  if images.ndim != 4:
    raise DataError(f"{where}: images must be [N, H, W, C] or [N, H, W], got shape "
                    f"{images.shape}.")
  if images.shape[-1] not in (1, 3) and images.shape[1] in (1, 3):
    raise DataError(f"{where}: images of shape {images.shape} look channels-first; save "
                    "them as [N, H, W, C] (np.transpose(x, (0, 2, 3, 1))).")
  if images.shape[-1] not in (1, 3):
    raise DataError(f"{where}: images must have 1 or 3 channels, got {images.shape[-1]} "
                    f"(shape {images.shape}).")
  return images


@dataclasses.dataclass(frozen=True, eq=False)
class NumpySource(Source):
  """Images from a ``.npy`` (uint8 ``[N, H, W, C]`` or ``[N, H, W]``), or an ``.npz`` with
  ``image`` and optionally ``label``; memory-mapped where NumPy can (``.npy``, and ``.npz``
  written by ``np.savez``), so only the examples read are in memory."""

  path: str
  images: np.ndarray
  labels: np.ndarray | None
  resolution: int = 0

  def __getstate__(self):
    # A worker process maps the file again rather than receiving its pixels.
    state = dict(self.__dict__)
    if isinstance(self.images, np.memmap):
      state["images"] = None
    return state

  def __setstate__(self, state):
    if state["images"] is None:
      state["images"] = _as_images(_open_images(state["path"]), state["path"])
    self.__dict__.update(state)

  @classmethod
  def open(cls, path: str, resolution: int = 0, log: Callable[[str], None] | None = None):
    log = log or _stderr
    path = os.path.abspath(os.path.expanduser(path))
    labels = None
    try:
      images = _open_images(path, log)
      if path.endswith(".npz"):
        with zipfile.ZipFile(path) as archive:
          if "label.npy" in archive.namelist():
            labels = np.asarray(_npz_member(path, "label"))
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
      raise DataError(f"{path}: not a readable NumPy file ({type(e).__name__}: {e}).") from e
    images = _as_images(images, path)
    if len(images) == 0:
      raise DataError(f"{path} holds no images.")
    if labels is not None:
      if labels.ndim != 1 or len(labels) != len(images) or labels.dtype.kind not in "iu":
        raise DataError(f"{path}: 'label' must be integer class ids [N] for its {len(images)} "
                        f"images, got {labels.dtype} {labels.shape}.")
      if labels.min() < 0:
        raise DataError(f"{path}: labels must be class ids >= 0, found {int(labels.min())}.")
      labels = labels.astype(np.int32)
    return cls(path, images, labels, resolution)

  @property
  def description(self) -> str:
    n = f"{len(self):,} images" + (f", {self.num_classes} classes" if self.num_classes else "")
    crop = (f", centre-cropped and resized to {self.resolution}x{self.resolution}"
            if self.resolution else "")
    return f"the arrays in {self.path} ({n}{crop})"

  @property
  def fingerprint(self) -> str:
    return f"{self.images.shape}:{os.path.getmtime(self.path)}"

  @property
  def image_shape(self) -> tuple[int, int, int]:
    if self.resolution:
      return (self.resolution, self.resolution, self.images.shape[3])
    return tuple(self.images.shape[1:])

  @property
  def num_classes(self) -> int:
    return 0 if self.labels is None else int(self.labels.max()) + 1

  def __len__(self) -> int:
    return len(self.images)

  def get(self, indices) -> dict[str, np.ndarray]:
    indices = np.asarray(indices)
    images = np.asarray(self.images[indices])  # reads only these from a mapped file
    if self.resolution:
      images = np.stack([fit(x, self.resolution) for x in images])
    out = {"image": np.ascontiguousarray(images)}
    if self.labels is not None:
      out["label"] = self.labels[indices]
    return out
