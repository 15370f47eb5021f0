"""Counter-based random streams keyed by (seed, key, copy, op index).

Every random choice for copy ``c`` of example ``k`` comes from a Philox4x64
stream whose key is (seed, stable hash of k) and whose counter starts at
(0, 0, c, op_index). Nothing depends on process, worker, order or time, so a
retried or re-ordered element gets the same draws.

Values are derived from the raw 64-bit words with fixed formulas (not NumPy's
``Generator`` methods, whose streams NumPy may change between releases), so
the parameters are stable across NumPy versions as well.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

MASK64 = (1 << 64) - 1
_TWO_POW_53 = float(1 << 53)


def stable_hash64(text: str) -> int:
    """A 64-bit hash of ``text`` that is the same in every process and Python version.

    Python's ``hash()`` is salted per process, so it must never decide anything here.
    """
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


class Rng:
    """One op's random stream for one (seed, key, copy)."""

    __slots__ = ("_bits",)

    def __init__(self, seed: int, key: str, copy: int, op_index: int) -> None:
        if not 0 <= seed <= MASK64:
            raise ValueError(f"seed must be in [0, 2**64), got {seed}")
        self._bits = np.random.Philox(
            key=np.array([seed, stable_hash64(key)], dtype=np.uint64),
            counter=np.array([0, 0, copy, op_index], dtype=np.uint64),
        )

    def raw(self) -> int:
        """The next raw 64-bit word."""
        return int(self._bits.random_raw())

    def random(self) -> float:
        """Uniform in [0, 1) with 53 bits of precision."""
        return (self.raw() >> 11) / _TWO_POW_53

    def uniform(self, low: float, high: float) -> float:
        """Uniform in [low, high]; returns ``low`` exactly when the range is empty."""
        if high <= low:
            return float(low)
        return float(low + (high - low) * self.random())

    def log_uniform(self, low: float, high: float) -> float:
        """Uniform in log space between two positive bounds."""
        return math.exp(self.uniform(math.log(low), math.log(high)))

    def integer(self, low: int, high: int) -> int:
        """Uniform integer in [low, high], both inclusive."""
        if high <= low:
            return int(low)
        span = high - low + 1
        return int(low + min(int(self.random() * span), span - 1))

    def bernoulli(self, p: float) -> bool:
        """True with probability ``p``."""
        if p >= 1.0:
            return True
        if p <= 0.0:
            return False
        return self.random() < p

    def tf_seed(self) -> list[int]:
        """A seed pair for ``tf.random.stateless_*`` ops, drawn from this stream."""
        return [self.raw() & 0x7FFFFFFF, self.raw() & 0x7FFFFFFF]
