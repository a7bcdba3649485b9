r"""Where a collapsed generator lies on the diversity scale, and a healthy one: the
calibration of ``jaxgan.evaluators.classifier.COLLAPSE_THRESHOLD``.

  python benchmarks/collapse_calibration.py
  python benchmarks/collapse_calibration.py --samples=a.npy:cond --samples=b.npy

Scores, with the evaluation classifier of the offline Fashion-MNIST (the loop's), sets of
2,000 images (the CPU evaluation's size):

* real training images (five disjoint draws): what an ideal generator scores;
* k distinct real images per class, each repeated to 200 (k = 1, 2, 4, ..., 64): a generator
  that has collapsed to k modes per class; and the same with each copy drawn fainter or at
  another contrast (a collapsed generator's rows often repeat one shape in several
  brightnesses);
* real images blurred, at random brightnesses, and mixed with their class mean (half way and
  further): diverse sets that are not collapsed, and sets with less variety, for the region
  between;
* ``--samples`` files written by ``experiments/mnist.py --sample_out`` (``:cond``: image i is
  of class i % 10, as a conditional run exports them; else classes are predicted).

For each: the mean and the lowest class diversity ratio (``diversity_ratios``) and the
classes under the threshold.
"""

from __future__ import annotations

import argparse

import numpy as np

from jaxgan.data import sources
from jaxgan.evaluators import classifier as classifier_lib

N = 2000
PER_CLASS = N // 10


def _row(name: str, evaluation: dict) -> str:
  collapsed = evaluation.get("collapsed", [])
  return (f"| {name} | {evaluation['diversity']:.3f} | {evaluation['diversity_min']:.3f} | "
          f"{evaluation['fd']:.2f} | {', '.join(map(str, collapsed)) or '-'} |")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--samples", action="append", default=[],
                      help="FILE.npy[:cond] of uint8 [N, 28, 28, 1] samples")
  args = parser.parse_args()
  train = sources.load_idx(sources.DEBIAN_FASHION_MNIST, "train")
  test = sources.load_idx(sources.DEBIAN_FASHION_MNIST, "test")
  evaluator = classifier_lib.Evaluator(train, test, num_samples=N, progress=False)
  images = sources.to_model_range(train.images)
  labels = np.asarray(train.labels)
  rng = np.random.default_rng(1)
  print(f"threshold {classifier_lib.COLLAPSE_THRESHOLD:g}\n")
  print("| images (2,000) | diversity (mean) | lowest class | FD | collapsed classes |")
  print("|---|---|---|---|---|")
  order = rng.permutation(len(images))
  for draw in range(5):
    index = order[draw * N:(draw + 1) * N]
    print(_row(f"real, draw {draw + 1}", evaluator(images[index], labels[index])))
  for k in (1, 2, 4, 8, 16, 32, 64):
    index = np.concatenate([np.resize(rng.choice(np.flatnonzero(labels == c), k, False),
                                      PER_CLASS) for c in range(10)])
    print(_row(f"{k} real image(s) per class, repeated", evaluator(images[index],
                                                                   labels[index])))
    if k <= 4:
      fainter = (images[index] + 1) * rng.uniform(0.3, 1.0, (len(index), 1, 1, 1)) - 1
      print(_row(f"{k} per class, each copy fainter (x 0.3-1)", evaluator(fainter,
                                                                         labels[index])))
      contrast = np.clip(images[index] * rng.uniform(0.5, 1.5, (len(index), 1, 1, 1)), -1, 1)
      print(_row(f"{k} per class, each copy at another contrast (x 0.5-1.5)",
                 evaluator(contrast, labels[index])))
  index = order[:N]
  picked, picked_labels = images[index], labels[index]
  blurred = (picked + np.roll(picked, 1, 1) + np.roll(picked, -1, 1) + np.roll(picked, 1, 2)
             + np.roll(picked, -1, 2)) / 5
  print(_row("real, blurred (5-point)", evaluator(blurred, picked_labels)))
  fainter = (picked + 1) * rng.uniform(0.3, 1.0, (N, 1, 1, 1)) - 1
  print(_row("real, each fainter (x 0.3-1)", evaluator(fainter, picked_labels)))
  means = np.stack([images[labels == c].mean(0) for c in range(10)])
  for share in (0.5, 0.7):
    mixed = (1 - share) * picked + share * means[picked_labels]
    print(_row(f"real, {share:g} of the way to the class mean", evaluator(mixed,
                                                                          picked_labels)))
  for spec in args.samples:
    path, _, kind = spec.partition(":")
    samples = sources.to_model_range(np.load(path))[:N]
    given = np.arange(len(samples)) % 10 if kind == "cond" else None
    print(_row(path, evaluator(samples, given)))


if __name__ == "__main__":
  main()
