"""Atomic all-or-nothing counters on a ``limits`` storage.

A turn holds several counters at once (windows: requests or tokens in a moving minute,
the ``limits`` moving-window layout; budgets: a total per calendar period). ``acquire``
checks every counter and takes them all, or none; ``adjust`` settles budgets afterwards.

- ``memory://``: the moving-window primitives of ``limits``' MemoryStorage
  (``get_moving_window``, ``acquire_entry``) and its counters, under one lock.
- ``redis://``: one Lua script per call (one round trip), on the keys and list layout of
  ``limits``' moving windows, so its own readers see what the script wrote.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from limits import RateLimitItem
from limits.storage import MovingWindowSupport, RedisStorage, Storage

_ACQUIRE = """
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local b = 1 + (i - 1) * 4
  local kind, limit = ARGV[b + 1], tonumber(ARGV[b + 2])
  local expiry, amount = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  if kind == 'w' then
    if amount > limit then return {i, ''} end
    local entry = redis.call('lindex', key, limit - amount)
    if entry and tonumber(entry) >= now - expiry then return {i, entry} end
  else
    local used = tonumber(redis.call('get', key) or '0')
    if used + amount > limit then return {i, ''} end
  end
end
for i, key in ipairs(KEYS) do
  local b = 1 + (i - 1) * 4
  local kind, limit = ARGV[b + 1], tonumber(ARGV[b + 2])
  local expiry, amount = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  if kind == 'w' then
    local entries = {}
    for j = 1, amount do entries[j] = ARGV[1] end
    for j = 1, #entries, 5000 do
      redis.call('lpush', key, unpack(entries, j, math.min(j + 4999, #entries)))
    end
    redis.call('ltrim', key, 0, limit - 1)
    redis.call('expire', key, expiry)
  elseif amount ~= 0 then
    redis.call('incrby', key, amount)
    if redis.call('ttl', key) < 0 then redis.call('expire', key, expiry) end
  end
end
return {0, ''}
"""

_ADJUST = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('incrby', key, tonumber(ARGV[2 * i - 1]))
  if redis.call('ttl', key) < 0 then redis.call('expire', key, tonumber(ARGV[2 * i])) end
end
return out
"""


@dataclass(frozen=True)
class Counter:
    """One counter a turn holds: a moving window of ``expiry`` seconds, or a period
    budget (``expiry``: how long its total is kept)."""

    kind: Literal["window", "budget"]
    key: str
    limit: int
    expiry: int

    @classmethod
    def window(cls, item: RateLimitItem, *identifiers: str) -> Counter:
        """A moving window on the ``limits`` key of ``item``."""
        return cls("window", item.key_for(*identifiers), item.amount, item.get_expiry())


@dataclass(frozen=True)
class Refused:
    """``acquire`` refused: ``index`` of the first full counter, ``retry_at`` (epoch
    seconds) when the window frees enough, if known."""

    index: int
    retry_at: float | None


class Counters:
    def __init__(self, storage: Storage) -> None:
        if not isinstance(storage, MovingWindowSupport):
            raise TypeError(f"{type(storage).__name__} has no moving windows")
        self.storage = storage
        self._windows: MovingWindowSupport = storage
        self._redis = storage if isinstance(storage, RedisStorage) else None
        if self._redis is not None:
            conn = self._redis.get_connection()
            self._acquire = conn.register_script(_ACQUIRE.encode())
            self._adjust = conn.register_script(_ADJUST.encode())
        self._lock = threading.Lock()

    def acquire(self, counters: Sequence[Counter], amounts: Sequence[int]) -> Refused | None:
        """Take ``amounts`` from every counter, or from none and say which is full."""
        if not counters:
            return None
        if self._redis is None:
            with self._lock:
                return self._acquire_memory(counters, amounts)
        args: list[str | int] = [repr(time.time())]
        for c, amount in zip(counters, amounts, strict=True):
            args += ["w" if c.kind == "window" else "b", c.limit, c.expiry, amount]
        keys = [self._redis.prefixed_key(c.key) for c in counters]
        index, entry = self._acquire(keys=keys, args=args)
        if not index:
            return None
        c = counters[index - 1]
        return Refused(index - 1, float(entry) + c.expiry if entry else None)

    def _acquire_memory(self, counters: Sequence[Counter], amounts: Sequence[int]
                        ) -> Refused | None:
        for i, (c, amount) in enumerate(zip(counters, amounts, strict=True)):
            if c.kind == "window":
                if amount > c.limit:
                    return Refused(i, None)
                start, count = self._windows.get_moving_window(c.key, c.limit, c.expiry)
                if count > c.limit - amount:
                    return Refused(i, start + c.expiry)
            elif self.storage.get(c.key) + amount > c.limit:
                return Refused(i, None)
        for c, amount in zip(counters, amounts, strict=True):
            if c.kind == "window":
                self._windows.acquire_entry(c.key, c.limit, c.expiry, amount)
            elif amount:
                self.storage.incr(c.key, c.expiry, amount)
        return None

    def adjust(self, counters: Sequence[Counter], deltas: Sequence[int]) -> list[int]:
        """Add ``deltas`` (negative to give back) to budget counters; their new totals."""
        if not counters:
            return []
        if self._redis is None:
            with self._lock:
                return [self.storage.incr(c.key, c.expiry, d) if d else self.storage.get(c.key)
                        for c, d in zip(counters, deltas, strict=True)]
        args: list[int] = []
        for c, d in zip(counters, deltas, strict=True):
            args += [d, c.expiry]
        keys = [self._redis.prefixed_key(c.key) for c in counters]
        return [int(v) for v in self._adjust(keys=keys, args=args)]

    def used(self, c: Counter) -> int:
        """What a counter holds now (a window: its entries in the last period)."""
        if c.kind == "window":
            return self._windows.get_moving_window(c.key, c.limit, c.expiry)[1]
        return self.storage.get(c.key)
