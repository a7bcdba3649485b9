"""Measures and pictures of a generator: sample grids."""

from __future__ import annotations

import math
import os

import numpy as np


def to_uint8(images) -> np.ndarray:
  """Images in [-1, 1] -> uint8 in [0, 255] (values outside the range are clipped)."""
  images = np.asarray(images, np.float32)
  return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images, columns: int | None = None, padding: int = 2) -> np.ndarray:
  """Tiles ``[N, H, W, C]`` images in [-1, 1] into one uint8 picture.

  Args:
    images: ``N`` images with 1 or 3 channels.
    columns: images per row (default: a square grid).
    padding: pixels of black between images.

  Returns:
    uint8 ``[rows * (H + padding) + padding, columns * (W + padding) + padding, C]``.
  """
  images = to_uint8(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"image_grid takes images [N, H, W, C] with C = 1 or 3, got shape "
                     f"{images.shape}.")
  n, h, w, c = images.shape
  columns = columns or math.ceil(math.sqrt(n))
  rows = math.ceil(n / columns)
  grid = np.zeros((rows * (h + padding) + padding, columns * (w + padding) + padding, c),
                  np.uint8)
  for i, image in enumerate(images):
    r, col = divmod(i, columns)
    top, left = padding + r * (h + padding), padding + col * (w + padding)
    grid[top:top + h, left:left + w] = image
  return grid


def save_image(picture: np.ndarray, path: str) -> None:
  """Writes a uint8 ``[H, W, C]`` picture as PNG (written whole, then renamed into place)."""
  from PIL import Image

  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  picture = picture[..., 0] if picture.shape[-1] == 1 else picture
  tmp = path + ".tmp"
  Image.fromarray(picture).save(tmp, format="PNG")
  os.replace(tmp, path)
