"""CycleGAN as a task of the loop (two classes of one dataset, or TFDS ``cycle_gan/*``)."""

from __future__ import annotations

import numpy as np

from jaxgan.data import pairs as pairs_lib
from jaxgan.data import sources
from jaxgan.evaluators import classifier as classifier_lib
from jaxgan.evaluators import measures as measures_lib
from jaxgan.steps import cyclegan as cyclegan_step
from jaxgan.steps import pix2pix as pix2pix_step
from jaxgan.training.config import (
  TRANSLATION_MAY_CHANGE,
  TRANSLATION_MUST_MATCH,
)
from jaxgan.training.logs import notice
from jaxgan.training.preemption import StopRequest
from jaxgan.training.tasks.base import Task
from jaxgan.training.tasks.translation import (
  FASHION_NAMES,
  classifier_fd,
  display_images,
  eval_subset,
  load_data,
  make_classifier,
  make_discriminator,
  make_generator,
  optimizers,
  picture_rows,
  run_facts,
  test_split,
  translate_batched,
)


class CycleGANTask(Task):
  """CycleGAN on two unpaired domains: its data, networks, states, step, pictures and
  measures."""

  must_match, may_change = TRANSLATION_MUST_MATCH, TRANSLATION_MAY_CHANGE

  def __init__(self, config, stop: StopRequest):
    self.config = config
    self.train_images = None  # a labelled dataset's, whose classifier measures the run
    if config.dataset.startswith("cycle_gan/"):
      self.domains, self.test = (
          pairs_lib.load_cycle_gan(config.dataset, split, size=config.image_size,
                                   data_dir=config.data_dir) for split in ("train", "test"))
    else:
      train = self.train_images = load_data(config, notice)
      stop.check()
      names = None
      if train.num_classes == 10 and "ashion" in train.description:
        names = (FASHION_NAMES[config.domain_a], FASHION_NAMES[config.domain_b])
      self.domains = pairs_lib.class_domains(train, config.domain_a, config.domain_b, names)
      self.test = pairs_lib.class_domains(test_split(train, notice), config.domain_a,
                                          config.domain_b, names)
    self.shape_a, self.shape_b = self.domains.shape_a, self.domains.shape_b
    size = max(*self.shape_a[:2], *self.shape_b[:2])
    self.G = {"ab": make_generator(config, self.shape_b[-1], size),
              "ba": make_generator(config, self.shape_a[-1], size)}
    self.D = {"a": make_discriminator(config), "b": make_discriminator(config)}
    self.tx_g, self.tx_d = optimizers(config)
    keeps = self.make_step(None).step_state_init(self.shape_a, self.shape_b)
    self.facts = run_facts(self.domains.description, shape_a=self.shape_a,
                           shape_b=self.shape_b)
    self.facts["step_state"] = {"g": [], "d": sorted({*keeps[0], *keeps[1]})}
    half = max(1, config.grid_size // 2)
    self.shown = {name: np.linspace(0, len(split) - 1, half).round().astype(int)
                  for name, split in (("a", self.test.a), ("b", self.test.b))}
    self.subset = {"a": eval_subset(len(self.test.a), config),
                   "b": eval_subset(len(self.test.b), config)}
    self.measures: dict = {}  # the classifier and each domain's statistics, made once

  def make_step(self, axis_name):
    c, G, D = self.config, self.G, self.D
    return cyclegan_step.make_cyclegan_step(
        G["ab"], G["ba"], D["a"], D["b"], c.loss, cycle_weight=c.cycle_weight,
        identity_weight=c.identity_weight, pool_size=c.pool_size, axis_name=axis_name)

  def init_states(self, key):
    G, D = self.G, self.D
    states = cyclegan_step.create_cyclegan_states(key, G["ab"], G["ba"], D["a"], D["b"],
                                                  self.tx_g, self.tx_d, shape_a=self.shape_a,
                                                  shape_b=self.shape_b)
    return self.make_step(None).prepare_states(*states)

  def batches(self, start_step):
    return pairs_lib.unpaired_batches(self.domains, self.config.batch_size, self.config.seed,
                                      start_step)

  def _there_and_back(self, state_g, images, forward: str, back: str):
    """``(x, G_forward(x), G_back(G_forward(x)))`` for uint8 ``images``, in [-1, 1]."""
    y = translate_batched(self.G[forward], state_g[forward], images)
    z = np.asarray(pix2pix_step.translate(self.G[back], state_g[back], y))
    return sources.to_model_range(images), y, z

  def grid(self, state_g, key):
    del key
    rows = [picture_rows(*self._there_and_back(state_g, split.images[self.shown[name]],
                                               forward, back))
            for name, split, forward, back in (("a", self.test.a, "ab", "ba"),
                                               ("b", self.test.b, "ba", "ab"))]
    channels = max(self.shape_a[-1], self.shape_b[-1])
    return np.concatenate([display_images(r, channels) for r in rows]), 3

  @property
  def evaluates(self):
    return True  # the cycle L1s always; the classifier's measures on a labelled dataset

  def _measures(self, check) -> dict:
    """Once per run: the classifier, each domain's test statistics and its floor."""
    if not self.measures:
      model, params = make_classifier(self.train_images, check)
      self.measures.update(model=model, params=params)
      for name, split, train_split in (("a", self.test.a, self.domains.a),
                                       ("b", self.test.b, self.domains.b)):
        _, feats = classifier_lib.classify(model, params, sources.to_model_range(split.images))
        stats = measures_lib.gaussian_stats(feats)
        n = len(self.subset[name])
        floor = np.sort(np.random.default_rng(0).permutation(len(train_split))[:n])
        self.measures[f"stats_{name}"] = stats
        self.measures[f"fd_floor_{name}"] = classifier_fd(
            model, params, sources.to_model_range(train_split.images[floor]), stats)
    return self.measures

  def evaluate(self, state_g, key, check, final):
    del key, final
    labelled = self.train_images is not None
    m = self._measures(check) if labelled else {}
    result = {}
    for src, dst, split, cls in (("a", "b", self.test.a, self.config.domain_b),
                                 ("b", "a", self.test.b, self.config.domain_a)):
      check()
      forward = src + dst
      x, y, z = self._there_and_back(state_g, split.images[self.subset[src]], forward,
                                     dst + src)
      result[f"cycle_{src}"] = float(np.mean(np.abs(z - x)))
      if labelled:
        translated, _ = classifier_lib.classify(m["model"], m["params"], y)
        untranslated, _ = classifier_lib.classify(m["model"], m["params"], x)
        result[f"{forward}_target"] = float(np.mean(translated == cls))
        result[f"{forward}_floor"] = float(np.mean(untranslated == cls))
        result[f"{forward}_fd"] = classifier_fd(m["model"], m["params"], y, m[f"stats_{dst}"])
        result[f"{forward}_fd_floor"] = m[f"fd_floor_{dst}"]
    return result

  def summary(self, step, ev):
    lines = [f"jaxgan: CycleGAN at step {step} on {len(self.subset['a']):,} + "
             f"{len(self.subset['b']):,} test images of {self.test.description}:"]
    for src, dst in (("a", "b"), ("b", "a")):
      key = src + dst
      line = f"  {src.upper()} -> {dst.upper()}:"
      if f"{key}_target" in ev:
        line += (f" {100 * ev[f'{key}_target']:.1f}% classified as {dst.upper()} "
                 f"(untranslated: {100 * ev[f'{key}_floor']:.1f}%), Frechet distance to "
                 f"{dst.upper()} {ev[f'{key}_fd']:.2f} (real: {ev[f'{key}_fd_floor']:.2f}),")
      line += f" cycle L1 {ev[f'cycle_{src}']:.4f}"
      lines.append(line)
    return "\n".join(lines)

  def postfix(self, metrics):
    return {**super().postfix(metrics),
            "cycle": f"{metrics['cycle_a'] + metrics['cycle_b']:.3f}"}
