"""One process of the two-process data test (tests/data/test_files.py).

  python tests/data_shares_worker.py PORT PROCESS_ID SOURCE OUT_DIR

Reads batches 0-2 (global batch 8) of SOURCE through the pipeline under jax.distributed
and saves which examples this process read and what it got.
"""

import sys

import jax
import numpy as np


def main(port, process_id, path, out_dir):
  jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                             process_id=process_id)
  from jaxgan.data import pipeline, sources

  source = sources.load(path)
  read = []
  get = source.get

  def recording_get(indices):
    read.append(np.asarray(indices))
    return get(indices)

  object.__setattr__(source, "get", recording_get)
  stream = pipeline.batches(source, 8, seed=1)
  got = [next(stream)[1] for _ in range(3)]
  np.savez(f"{out_dir}/process{process_id}.npz", read=np.stack(read),
           image=np.stack([b["image"] for b in got]), label=np.stack([b["label"] for b in got]))
  jax.distributed.shutdown()


if __name__ == "__main__":
  main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
