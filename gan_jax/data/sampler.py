"""Which examples make up each batch, as a pure function of (seed, position).

The data is seen as an endless stream of epochs, each a permutation of the
examples drawn from (seed, epoch). Position p of the stream is example
perm_{p // N}[p % N]. Iteration t of training reads positions
[t * n, (t + 1) * n) with n = d_steps * batch_size, so a resumed run reads
exactly the batches an uninterrupted run would, with no iterator state.
"""

import numpy as np

_STREAM_ID = 0x64617461  # separates the data permutation from other seeded streams


class EpochSampler:
  """Example indices for any slice of the (seed)-determined stream of epochs."""

  def __init__(self, num_examples: int, seed: int):
    if num_examples <= 0:
      raise ValueError(f"need at least one example, got {num_examples}")
    self.num_examples = num_examples
    self.seed = seed
    self._cache = {}

  def permutation(self, epoch: int) -> np.ndarray:
    """The order of the examples in `epoch`."""
    if epoch not in self._cache:
      if len(self._cache) >= 2:  # batches span at most two neighbouring epochs
        self._cache.pop(min(self._cache))
      rng = np.random.default_rng([self.seed, _STREAM_ID, epoch])
      self._cache[epoch] = rng.permutation(self.num_examples)
    return self._cache[epoch]

  def indices(self, start: int, count: int) -> np.ndarray:
    """Example indices at stream positions [start, start + count)."""
    positions = np.arange(start, start + count, dtype=np.int64)
    epochs, offsets = np.divmod(positions, self.num_examples)
    out = np.empty(count, np.int64)
    for epoch in np.unique(epochs):
      sel = epochs == epoch
      out[sel] = self.permutation(int(epoch))[offsets[sel]]
    return out
