"""Pictures of images: grids, uint8 conversion, upscaling for display, PNG files."""

from __future__ import annotations

import math
import os

import numpy as np

from jaxgan.errors import ConfigError


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
    raise ConfigError(f"image_grid takes images [N, H, W, C] with C = 1 or 3, got shape "
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


# The smallest side, in screen pixels, of one image in a picture written for people to look
# at: 28x28 MNIST digits are drawn 3x (84 px), 32x32 CIFAR images 3x (96 px), 64x64 2x.
MIN_IMAGE_PX = 84


def display_scale(height: int, width: int, min_px: int = MIN_IMAGE_PX) -> int:
  """The integer factor that draws an ``height x width`` image at least ``min_px`` a side."""
  if height < 1 or width < 1:
    raise ConfigError(f"display_scale takes a positive image size, got {height}x{width}.")
  return max(1, math.ceil(min_px / min(height, width)))


def upscale(picture: np.ndarray, factor: int) -> np.ndarray:
  """``[H, W, C]`` -> ``[factor * H, factor * W, C]`` by nearest neighbour (each pixel a
  ``factor x factor`` block: no blur, no invented detail)."""
  if not isinstance(factor, int) or factor < 1:
    raise ConfigError(f"upscale takes an integer factor >= 1, got {factor!r}.")
  return np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1)


def display_grid(images, columns: int | None = None, min_px: int = MIN_IMAGE_PX
                 ) -> np.ndarray:
  """``image_grid`` drawn for a screen: every image at least ``min_px`` a side.

  The grid (its padding included) is scaled by ``display_scale`` of one image, by nearest
  neighbour, so each pixel of a sample stays a sharp block. Every picture jaxgan writes
  for people (the training loop's sample grids, the experiments' rows) goes through it;
  ``image_grid`` is the exact-size array (what TensorBoard gets).
  """
  return for_display(image_grid(images, columns), np.shape(images)[1:3], min_px)


def for_display(grid: np.ndarray, image_size: tuple[int, int], min_px: int = MIN_IMAGE_PX
                ) -> np.ndarray:
  """An exact-size ``image_grid`` of images ``image_size`` (H, W), scaled for a screen."""
  return upscale(grid, display_scale(*image_size, min_px))


def save_image(picture: np.ndarray, path: str) -> None:
  """Writes a uint8 ``[H, W, C]`` picture as PNG (written whole, then renamed into place)."""
  from PIL import Image

  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  picture = picture[..., 0] if picture.shape[-1] == 1 else picture
  tmp = path + ".tmp"
  Image.fromarray(picture).save(tmp, format="PNG")
  os.replace(tmp, path)
