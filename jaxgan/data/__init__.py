"""Data: where images come from (``sources``: TFDS, IDX; ``files``: the user's folders and
arrays; ``pack``: packed sets), which examples make batch ``s`` of a run (``order``), how
batches reach the devices (``pipeline``), and paired or unpaired translation data
(``pairs``).

Batch ``s`` is a pure function of ``(seed, s, global batch size)``, so a resumed run sees
the batches an uninterrupted one would have seen, on any number of devices. Every source
is read by index when a batch asks for it.
"""

from jaxgan.data.order import ORDER, batch_indices, host_batch_indices, permute
from jaxgan.data.pipeline import Prefetch, batches
from jaxgan.data.sources import (
  DEBIAN_FASHION_MNIST,
  ArraySource,
  DataError,
  Source,
  load,
  load_idx,
  read_idx,
  sample,
  to_model_range,
)

__all__ = ["DEBIAN_FASHION_MNIST", "ORDER", "ArraySource", "DataError", "Prefetch", "Source",
           "batch_indices", "batches", "host_batch_indices", "load", "load_idx", "permute",
           "read_idx", "sample", "to_model_range"]
