"""A packed set: any source's images at one resolution in an ArrayRecord file, for large
sets (in the manner of StyleGAN2-ADA's ``dataset_tool.py``).

``python -m jaxgan.data.pack SOURCE DEST.pack --resolution=N`` reads SOURCE (a folder of
images, a ``.npy``/``.npz``, a TFDS name, another pack) once, centre-crops and resizes each
image to N x N, and writes ``DEST.pack/``: ``images.array_record`` (one record per image:
its int32 label, -1 when unlabelled, then its raw uint8 pixels) and ``meta.json`` (count,
shape, classes, where it came from and how it was transformed). ArrayRecord is the format
TFDS and Grain read: reading example ``i`` reads its chunk, whatever the size of the set,
and nothing is decoded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time

import numpy as np

from jaxgan.data.sources import DataError, Source, fit

FORMAT = "jaxgan-pack"
VERSION = 1
RECORDS = "images.array_record"
META = "meta.json"
# Records are grouped into uncompressed chunks of about this many bytes. One record per
# chunk (what Grain asks for) costs the reader about half a kilobyte of memory per chunk
# it touches, held for good: 600,000 images of 28x28 grew a run by 300 MB; chunks of 64 KB
# keep it flat and read 5x faster (BUILD_NOTES.md, "Your own data").
CHUNK_BYTES = 65536


def writer_options(record_bytes: int) -> str:
  return f"group_size:{max(1, CHUNK_BYTES // record_bytes)},uncompressed"


def is_pack(path: str) -> bool:
  return os.path.isfile(os.path.join(path, META)) and os.path.isfile(os.path.join(path, RECORDS))


def _encode(image: np.ndarray, label: int) -> bytes:
  return np.array(label, "<i4").tobytes() + np.ascontiguousarray(image, np.uint8).tobytes()


@dataclasses.dataclass(frozen=True, eq=False)
class PackedSource(Source):
  """A packed set, read record by record (``array_record``'s random-access reader)."""

  path: str
  meta: dict
  resolution: int = 0
  reader: object = dataclasses.field(default=None, repr=False)

  @classmethod
  def open(cls, path: str, resolution: int = 0) -> PackedSource:
    path = os.path.abspath(os.path.expanduser(path))
    try:
      with open(os.path.join(path, META)) as f:
        meta = json.load(f)
    except (OSError, ValueError) as e:
      raise DataError(f"{path}: its {META} cannot be read ({e}); pack the set again.") from e
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
      raise DataError(f"{path}: not a {FORMAT} v{VERSION} pack ({meta.get('format')} "
                      f"v{meta.get('version')}); pack it again with python -m jaxgan.data.pack.")
    source = cls(path, meta, resolution)
    held = source._reader().num_records()
    if held != meta["count"]:
      raise DataError(f"{path}: {META} promises {meta['count']:,} images, "
                      f"{RECORDS} holds {held:,}; the pack is incomplete. Pack it again.")
    return source

  def __getstate__(self):  # a worker process opens the file again
    return {**self.__dict__, "reader": None}

  def __setstate__(self, state):
    self.__dict__.update(state)

  def _reader(self):
    if self.reader is None:
      from array_record.python.array_record_module import ArrayRecordReader

      object.__setattr__(self, "reader", ArrayRecordReader(os.path.join(self.path, RECORDS),
                                                           "readahead_buffer_size:0"))
    return self.reader

  @property
  def stored_shape(self) -> tuple[int, int, int]:
    return tuple(self.meta["image_shape"])

  @property
  def image_shape(self) -> tuple[int, int, int]:
    h, w, c = self.stored_shape
    return (self.resolution, self.resolution, c) if self.resolution else (h, w, c)

  @property
  def num_classes(self) -> int:
    return int(self.meta["num_classes"])

  @property
  def fingerprint(self) -> str:
    return f"{self.meta['count']}:{self.meta.get('created', '')}"

  @property
  def description(self) -> str:
    classes = f", {self.num_classes} classes" if self.num_classes else ""
    h, w, _ = self.stored_shape
    size = (f", resized to {self.resolution}x{self.resolution}"
            if self.resolution and self.resolution != h else "")
    return f"the pack {self.path} ({len(self):,} images of {w}x{h}{classes}{size})"

  def __len__(self) -> int:
    return int(self.meta["count"])

  def get(self, indices) -> dict[str, np.ndarray]:
    keys = [int(i) for i in np.asarray(indices)]
    records = self._reader().read(keys)
    shape = self.stored_shape
    raw = np.frombuffer(b"".join(records), np.uint8).reshape(len(keys), -1)
    labels = raw[:, :4].copy().view("<i4")[:, 0]
    images = raw[:, 4:].reshape(len(keys), *shape)
    if self.resolution and self.resolution != shape[0]:
      images = np.stack([fit(x, self.resolution) for x in images])
    out = {"image": images}
    if self.num_classes:
      out["label"] = labels.astype(np.int32)
    return out


def pack(source: Source, dest: str, *, chunk: int = 256, log=print, progress: bool = True) -> str:
  """Writes every example of ``source`` (already at its resolution) to the pack ``dest``.

  The pack is written beside ``dest`` under a temporary name and renamed into place when
  complete, so an interrupted pack leaves no ``dest`` that looks whole.

  Raises:
    DataError: ``dest`` exists, or reading the source fails (naming the file).
  """
  from array_record.python.array_record_module import ArrayRecordWriter

  dest = os.path.abspath(os.path.expanduser(dest))
  if os.path.exists(dest):
    raise DataError(f"{dest} exists; remove it or choose another destination.")
  tmp = f"{dest}.partial-{os.getpid()}"
  os.makedirs(tmp)
  bar = None
  if progress:
    from tqdm import tqdm

    bar = tqdm(total=len(source), unit="img", desc="pack", dynamic_ncols=True)
  try:
    record_bytes = 4 + int(np.prod(source.image_shape))
    writer = ArrayRecordWriter(os.path.join(tmp, RECORDS), writer_options(record_bytes))
    try:
      for start in range(0, len(source), chunk):
        batch = source.get(np.arange(start, min(start + chunk, len(source))))
        labels = batch.get("label", np.full(len(batch["image"]), -1))
        for image, label in zip(batch["image"], labels, strict=True):
          writer.write(_encode(image, int(label)))
        if bar is not None:
          bar.update(len(batch["image"]))
    finally:
      writer.close()
    meta = {"format": FORMAT, "version": VERSION, "count": len(source),
            "image_shape": list(source.image_shape), "num_classes": source.num_classes,
            "class_names": getattr(source, "class_names", None),
            "source": source.description, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "record": "int32 label (-1: none), then uint8 pixels [H, W, C] in row-major order"}
    with open(os.path.join(tmp, META), "w") as f:
      json.dump(meta, f, indent=1)
    os.replace(tmp, dest)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  finally:
    if bar is not None:
      bar.close()
  log(f"jaxgan: packed {len(source):,} images of {source.image_shape[1]}x"
      f"{source.image_shape[0]}x{source.image_shape[2]} into {dest}.")
  return dest


def main(argv: list[str] | None = None) -> int:
  """``python -m jaxgan.data.pack SOURCE DEST [--resolution=N]``."""
  from jaxgan.data import sources

  parser = argparse.ArgumentParser(
      prog="python -m jaxgan.data.pack",
      description="Packs a set of images (a folder, a .npy/.npz, a TFDS name, a pack) into "
                  "an ArrayRecord pack that training streams from disk.")
  parser.add_argument("source", help="folder of images, .npy, .npz, TFDS name or .pack")
  parser.add_argument("dest", help="the pack to write (a new folder; e.g. faces.pack)")
  parser.add_argument("--resolution", type=int, default=0,
                      help="centre-crop and resize every image to N x N (0: as they are, "
                           "which must then be one size)")
  parser.add_argument("--class_folders", choices=("auto", "yes", "no"), default="auto",
                      help="labels from a folder's first level of sub-folders")
  parser.add_argument("--skip_bad_images", action="store_true",
                      help="leave unreadable files out (counted) instead of stopping")
  parser.add_argument("--split", default="train", help="the split of a TFDS dataset")
  args = parser.parse_args(argv)

  def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)

  if args.resolution < 0:
    print("error: --resolution must be >= 0", file=sys.stderr)
    return 2
  try:
    source = sources.load(args.source, args.split, resolution=args.resolution,
                          class_folders=args.class_folders, skip_bad=args.skip_bad_images,
                          log=log)
    log(f"jaxgan: packing {source.description}")
    pack(source, args.dest, log=log)
  except DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
