"""The 8-Gaussian ring of the original GAN paper: data, the mode measure, training and the picture
(the example behind experiments/ring.py; the library does not import it).

Used since the unrolled-GAN paper (Metz et al., 2017) and VEEGAN (Srivastava et al., 2017)
to show mode collapse: 8 modes on a circle of radius 2, each with standard deviation 0.02.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.errors import ConfigError


def ring_centres(num_modes: int = 8, radius: float = 2.0) -> np.ndarray:
  """The mode centres, ``[num_modes, 2]``, the first on the positive x axis."""
  angles = 2 * np.pi * np.arange(num_modes) / num_modes
  return radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)


def sample_ring(key: jax.Array, num: int, num_modes: int = 8, radius: float = 2.0,
                std: float = 0.02) -> jax.Array:
  """``num`` points ``[num, 2]`` from the ring mixture, modes chosen uniformly."""
  k_mode, k_noise = jax.random.split(key)
  centres = jnp.asarray(ring_centres(num_modes, radius), jnp.float32)
  modes = jax.random.randint(k_mode, (num,), 0, num_modes)
  return centres[modes] + std * jax.random.normal(k_noise, (num, 2))


@dataclasses.dataclass(frozen=True)
class ModeStats:
  """Mode coverage of a set of 2-D samples.

  Attributes:
    modes: number of modes with at least ``min_count`` high-quality samples.
    high_quality: fraction of samples within ``3 * std`` of their nearest centre.
    counts: high-quality samples per mode.
  """

  modes: int
  high_quality: float
  counts: tuple[int, ...]


def mode_stats(samples, num_modes: int = 8, radius: float = 2.0, std: float = 0.02,
               min_count: int | None = None) -> ModeStats:
  """Counts covered modes and high-quality samples (VEEGAN's measures).

  Args:
    samples: ``[N, 2]`` points.
    num_modes: modes of the target.
    radius: radius of the ring.
    std: standard deviation of each mode.
    min_count: high-quality samples a mode needs to count as covered; default 1% of the
      samples (a twelfth of a uniform share of 8 modes).

  Returns:
    A ``ModeStats``.
  """
  samples = np.asarray(samples, np.float64)
  if samples.ndim != 2 or samples.shape[1] != 2:
    raise ConfigError(f"mode_stats takes points of shape [N, 2], got {samples.shape}.")
  centres = ring_centres(num_modes, radius)
  dist = np.linalg.norm(samples[:, None, :] - centres[None], axis=-1)
  nearest = dist.argmin(axis=1)
  good = dist[np.arange(len(samples)), nearest] <= 3 * std
  counts = np.bincount(nearest[good], minlength=num_modes)
  if min_count is None:
    min_count = max(1, int(0.01 * len(samples)))
  return ModeStats(modes=int((counts >= min_count).sum()),
                   high_quality=float(good.mean()) if len(samples) else 0.0,
                   counts=tuple(int(c) for c in counts))


def ring_config():
  """The ring recipe's defaults (``experiments/ring.py`` and the test use these).

  The original GAN's MLP pair (G 256-512, D 512-256) with the non-saturating loss, an R1
  penalty with gamma 0.1, Adam 1e-3 (b1 0.5) and a generator EMA. Without R1 the same
  pair collapses onto a few modes or scatters between them (BUILD_NOTES.md has the table).
  """
  import ml_collections  # a dependency of the experiments; imported late to keep toy light

  c = ml_collections.ConfigDict()
  c.seed = 0
  c.steps = 12_000
  c.batch_size = 64
  c.latent_dim = 2
  c.g_hidden = (256, 512)
  c.d_hidden = (512, 256)
  c.loss = "non_saturating"
  c.lr = 1e-3
  c.b1 = 0.5
  c.b2 = 0.999
  c.n_critic = 1
  c.gp_weight = 0.0
  c.r1_weight = 0.1
  c.clip = ml_collections.FieldReference(None, field_type=float)
  c.ema_decay = 0.999
  c.num_samples = 2_000
  c.log_every = 1_000
  return c


def train_ring(config, progress: bool = False, log=None):
  """Trains the MLP GAN on the 8-Gaussian ring.

  Args:
    config: a ``ring_config()`` (possibly overridden).
    progress: show a tqdm progress bar.
    log: optional ``log(step, stats_dict)`` called every ``config.log_every`` steps
      with the EMA generator's mode statistics and the latest losses.

  Returns:
    ``(G, state_g, samples [num_samples, 2] from the EMA generator, ModeStats)``.
  """
  import optax
  import tqdm

  import jaxgan

  G = jaxgan.models.MLPGenerator(image_shape=(2,), hidden=tuple(config.g_hidden),
                                 output_activation=None)
  D = jaxgan.models.MLPDiscriminator(hidden=tuple(config.d_hidden))
  tx = optax.adam(config.lr, b1=config.b1, b2=config.b2)
  root = jax.random.key(config.seed)
  k_init, k_step, k_data, k_eval = jax.random.split(root, 4)
  state_g, state_d = jaxgan.create_states(k_init, G, D, tx, tx, latent_dim=config.latent_dim,
                                          image_shape=(2,))
  train_step = jaxgan.make_train_step(
      G, D, config.loss, n_critic=config.n_critic, gp_weight=config.gp_weight,
      r1_weight=config.r1_weight, clip=config.clip, ema_decay=config.ema_decay)

  def step(state_g, state_d, index):
    # The batch is a pure function of (seed, step).
    batch = {"image": sample_ring(jax.random.fold_in(k_data, index), config.batch_size)}
    return train_step(state_g, state_d, batch, k_step)

  # The steps between two logs in one compiled call (a scan: the same bits as one call per
  # step, ~20% faster on a CPU, where the small step is mostly dispatch).
  @functools.partial(jax.jit, donate_argnums=(0, 1), static_argnums=3)
  def steps(state_g, state_d, start, num):
    def body(carry, index):
      state_g, state_d, metrics = step(*carry, index)
      return (state_g, state_d), metrics

    (state_g, state_d), metrics = jax.lax.scan(body, (state_g, state_d),
                                               start + jnp.arange(num))
    return state_g, state_d, jax.tree.map(lambda m: m[-1], metrics)

  bar = tqdm.tqdm(total=config.steps, disable=not progress, desc="ring", unit="step",
                  mininterval=1.0)
  done = 0
  while done < config.steps:
    num = min(config.log_every - done % config.log_every, config.steps - done)
    state_g, state_d, metrics = steps(state_g, state_d, done, num)
    done += num
    bar.update(num)
    if done % config.log_every == 0 or done == config.steps:
      stats = mode_stats(jaxgan.generate(G, state_g, k_eval, config.num_samples))
      fetched = {k: float(v) for k, v in metrics.items()}
      bar.set_postfix(modes=stats.modes, hq=f"{stats.high_quality:.2f}",
                      d=f"{fetched['d_loss']:.3f}", g=f"{fetched['g_loss']:.3f}")
      if log is not None:
        log(done, {"modes": stats.modes, "high_quality": stats.high_quality, **fetched})
  bar.close()
  samples = jaxgan.generate(G, state_g, k_eval, config.num_samples)
  return G, state_g, samples, mode_stats(samples)


def draw_ring(samples, path, num_modes: int = 8, radius: float = 2.0, std: float = 0.02,
              size: int = 512, extent: float = 3.0, title: str = "") -> None:
  """Saves a scatter plot of 2-D samples over the target's modes as a PNG (Pillow only)."""
  from PIL import Image, ImageDraw

  img = Image.new("RGB", (size, size), "white")
  draw = ImageDraw.Draw(img)

  def px(p):
    return ((p[0] + extent) / (2 * extent) * size, (extent - p[1]) / (2 * extent) * size)

  draw.line([px((-extent, 0)), px((extent, 0))], fill=(220, 220, 220))
  draw.line([px((0, -extent)), px((0, extent))], fill=(220, 220, 220))
  r_px = 3 * std / (2 * extent) * size
  for c in ring_centres(num_modes, radius):
    x, y = px(c)
    draw.ellipse([x - r_px - 6, y - r_px - 6, x + r_px + 6, y + r_px + 6], outline=(0, 160, 0),
                 width=2)
  for p in np.asarray(samples):
    x, y = px(p)
    draw.rectangle([x - 1, y - 1, x + 1, y + 1], fill=(200, 30, 30))
  if title:
    draw.text((8, 8), title, fill=(0, 0, 0))
  img.save(path)
