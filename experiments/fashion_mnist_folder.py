"""Writes the offline Fashion-MNIST as a folder of PNG files, one sub-folder per class:
a stand-in for your own images, to try the folder, array and pack sources on.

    python experiments/fashion_mnist_folder.py /tmp/fashion_png
    python experiments/mnist.py --config.dataset=/tmp/fashion_png

``DEST/<k>_<class name>/<index>.png``: the class folders sort in Fashion-MNIST's label
order (so their labels are its labels), and ``<index>`` is the image's position in the
IDX file. ``--split=test`` writes the test split; ``--limit=N`` the first N images.
"""

import argparse
import os
import sys

import numpy as np
from PIL import Image

from jaxgan.data import sources

CLASS_NAMES = ("t-shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
               "sneaker", "bag", "ankle_boot")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("dest", help="the folder to write (must not exist)")
  parser.add_argument("--split", default="train", choices=("train", "test"))
  parser.add_argument("--limit", type=int, default=0, help="the first N images (0: all)")
  args = parser.parse_args(argv)
  if os.path.exists(args.dest):
    print(f"error: {args.dest} exists; choose a new folder.", file=sys.stderr)
    return 2
  source = sources.load_idx(sources.DEBIAN_FASHION_MNIST, args.split)
  count = min(args.limit, len(source)) if args.limit > 0 else len(source)
  folders = [os.path.join(args.dest, f"{k}_{name}") for k, name in enumerate(CLASS_NAMES)]
  tmp = args.dest + ".partial"
  for folder in folders:
    os.makedirs(folder.replace(args.dest, tmp, 1), exist_ok=True)
  for i in range(count):
    image, label = source.images[i, ..., 0], int(source.labels[i])
    Image.fromarray(np.asarray(image)).save(
        os.path.join(folders[label].replace(args.dest, tmp, 1), f"{i:05d}.png"))
  os.replace(tmp, args.dest)
  print(f"wrote {count:,} PNG files of {source.description} to {args.dest}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
