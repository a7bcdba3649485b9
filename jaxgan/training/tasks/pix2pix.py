"""pix2pix as a task of the loop (paired tasks made from an image dataset)."""

from __future__ import annotations

import numpy as np

from jaxgan.data import pairs as pairs_lib
from jaxgan.data import sources
from jaxgan.evaluators import classifier as classifier_lib
from jaxgan.evaluators import measures as measures_lib
from jaxgan.steps import pix2pix as pix2pix_step
from jaxgan.training.config import (
  TRANSLATION_MAY_CHANGE,
  TRANSLATION_MUST_MATCH,
)
from jaxgan.training.logs import notice
from jaxgan.training.preemption import StopRequest
from jaxgan.training.tasks.base import Task
from jaxgan.training.tasks.translation import (
  classifier_fd,
  display_images,
  eval_subset,
  load_data,
  make_classifier,
  make_discriminator,
  make_generator,
  optimizers,
  picture_rows,
  psnr,
  run_facts,
  test_split,
  translate_batched,
)


class Pix2PixTask(Task):
  """pix2pix on paired data: its data, networks, states, step, pictures and measures."""

  must_match, may_change = TRANSLATION_MUST_MATCH, TRANSLATION_MAY_CHANGE

  def __init__(self, config, stop: StopRequest):
    self.config = config
    self.train_images = load_data(config, notice)
    stop.check()
    kw = {"factor": config.sr_factor, "hole": config.hole}
    self.pairs = pairs_lib.make_pairs(self.train_images, config.task, **kw)
    self.test_images = test_split(self.train_images, notice)
    self.test_pairs = pairs_lib.make_pairs(self.test_images, config.task, **kw)
    self.source_shape, self.image_shape = self.pairs.source_shape, self.pairs.image_shape
    self.G = make_generator(config, self.image_shape[-1], max(self.image_shape[:2]))
    self.D = make_discriminator(config)
    self.tx_g, self.tx_d = optimizers(config)
    self.facts = run_facts(self.pairs.description, source_shape=self.source_shape,
                           image_shape=self.image_shape)
    self.shown = np.linspace(0, len(self.test_pairs) - 1,
                             config.grid_size).round().astype(int)
    self.subset = eval_subset(len(self.test_pairs), config)
    self.measures: dict = {}  # the classifier and the test statistics, made once

  def make_step(self, axis_name):
    return pix2pix_step.make_pix2pix_step(self.G, self.D, self.config.loss,
                                          l1_weight=self.config.l1_weight, axis_name=axis_name)

  def init_states(self, key):
    return pix2pix_step.create_pix2pix_states(key, self.G, self.D, self.tx_g, self.tx_d,
                                              source_shape=self.source_shape,
                                              image_shape=self.image_shape)

  def batches(self, start_step):
    return pairs_lib.paired_batches(self.pairs, self.config.batch_size, self.config.seed,
                                    start_step)

  def grid(self, state_g, key):
    del key  # inference is deterministic
    source = self.test_pairs.source[self.shown]
    output = translate_batched(self.G, state_g, source)
    return picture_rows(display_images(sources.to_model_range(source), self.image_shape[-1]),
                        output, sources.to_model_range(self.test_pairs.images[self.shown])), 3

  @property
  def evaluates(self):
    return self.train_images.labels is not None

  def _measures(self, check) -> dict:
    """Once per run: the classifier, the test statistics, the floor and the baseline."""
    if not self.measures:
      train, subset = self.train_images, self.subset
      model, params = make_classifier(train, check)
      _, test_features = classifier_lib.classify(
          model, params, sources.to_model_range(self.test_images.images))
      stats = measures_lib.gaussian_stats(test_features)
      floor = np.random.default_rng(0).permutation(len(train))[:len(subset)]
      self.measures.update(model=model, params=params, stats=stats, fd_floor=classifier_fd(
          model, params, sources.to_model_range(train.images[np.sort(floor)]), stats))
      if self.config.task == "super_resolution":
        factor = self.config.sr_factor
        small = pairs_lib.low_resolution(self.test_pairs.images[subset], factor)
        self.measures["bicubic"] = pairs_lib.bicubic_upsample(small, factor)
    return self.measures

  def evaluate(self, state_g, key, check, final):
    del key, final
    m = self._measures(check)
    check()
    target = sources.to_model_range(self.test_pairs.images[self.subset])
    out = translate_batched(self.G, state_g, self.test_pairs.source[self.subset])
    check()
    result = {"l1": float(np.mean(np.abs(out - target))), "psnr": psnr(out, target),
              "fd": classifier_fd(m["model"], m["params"], out, m["stats"]),
              "fd_floor": m["fd_floor"]}
    if "bicubic" in m:
      bicubic = m["bicubic"]
      result.update(bicubic_l1=float(np.mean(np.abs(bicubic - target))),
                    bicubic_psnr=psnr(bicubic, target),
                    bicubic_fd=classifier_fd(m["model"], m["params"], bicubic, m["stats"]))
    return result

  def summary(self, step, ev):
    lines = (f"jaxgan: pix2pix ({self.config.task}) at step {step}, on {len(self.subset):,} "
             f"test pairs of {self.test_pairs.description}:\n"
             f"  L1 {ev['l1']:.4f}, PSNR {ev['psnr']:.2f} dB, Frechet distance {ev['fd']:.2f} "
             f"(real train vs test images: {ev['fd_floor']:.2f}, the floor)")
    if "bicubic_psnr" in ev:
      verdict = "above" if ev["psnr"] > ev["bicubic_psnr"] else "NOT above"
      lines += (f"\n  bicubic upscaling: L1 {ev['bicubic_l1']:.4f}, PSNR "
                f"{ev['bicubic_psnr']:.2f} dB, Frechet distance {ev['bicubic_fd']:.2f} "
                f"(the generator's PSNR is {verdict} bicubic's)")
    return lines
