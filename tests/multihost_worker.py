"""One process of the two-process test (tests/test_parallel.py); also imported by it.

  python tests/multihost_worker.py PORT PROCESS_ID OUT_DIR
"""

import sys

import jax
import numpy as np
import optax

STEPS = 3
GLOBAL_BATCH = 16


def run(mesh, local_share):
  """Trains the MLP pair for STEPS steps with shard_map; returns (state_g, state_d, metrics)."""
  import jaxgan
  from jaxgan import models, parallel

  G = models.MLPGenerator(image_shape=(4, 4, 1), hidden=(32,))
  D = models.MLPDiscriminator(hidden=(32,))
  tx = optax.adam(1e-3, b1=0.5)
  sg, sd = jaxgan.create_states(jax.random.key(0), G, D, tx, tx, latent_dim=8,
                                image_shape=(4, 4, 1))
  step = parallel.shard_map_step(
      jaxgan.make_train_step(G, D, "non_saturating", gp_weight=1.0, axis_name=parallel.AXIS), mesh)
  x = np.asarray(jax.random.uniform(jax.random.key(1), (STEPS, GLOBAL_BATCH, 4, 4, 1),
                                    minval=-1, maxval=1))
  for i in range(STEPS):
    batch = parallel.shard_batch({"image": x[i, local_share]}, mesh)
    sg, sd, metrics = step(sg, sd, batch, jax.random.key(3))
  return sg, sd, metrics


def flatten(tree):
  """Replicated arrays -> {path: numpy} from this process's first replica."""
  return {jax.tree_util.keystr(p): np.asarray(x.addressable_data(0))
          for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def main(port, process_id, out_dir):
  jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                             process_id=process_id)
  from jaxgan import parallel

  assert jax.device_count() == 8 and jax.local_device_count() == 4
  half = GLOBAL_BATCH // 2
  result = run(parallel.data_mesh(), slice(process_id * half, (process_id + 1) * half))
  np.savez(f"{out_dir}/process{process_id}.npz", **flatten(result))
  jax.distributed.shutdown()


if __name__ == "__main__":
  main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
