"""Atomic all-or-nothing counters on a ``limits`` storage.

A turn holds several counters at once. Windows count requests in a moving minute (the
``limits`` moving-window layout, one entry per request); token windows weigh one entry
per turn with its token count, so their cost grows with turns, not tokens; budgets hold
a total per calendar period. ``acquire`` checks every counter and takes them all, or
none; ``adjust`` settles budgets afterwards.

- ``memory://``: the moving-window primitives of ``limits``' MemoryStorage
  (``get_moving_window``, ``acquire_entry``) and its counters, under one lock.
- ``redis://``: one Lua script per call (one round trip), on the keys and list layout of
  ``limits``' moving windows, so its own readers see what the script wrote.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from limits import RateLimitItem
from limits.storage import MovingWindowSupport, RedisStorage, Storage

_LIVE = """
local function live(key, now, expiry)
  local total, stamps, amounts = 0, {}, {}
  for _, e in ipairs(redis.call('lrange', key, 0, -1)) do
    local sep = string.find(e, ':', 1, true)
    local ts = tonumber(string.sub(e, 1, sep - 1))
    if ts <= now - expiry then break end
    local a = tonumber(string.sub(e, sep + 1))
    stamps[#stamps + 1], amounts[#amounts + 1], total = ts, a, total + a
  end
  return total, stamps, amounts
end
"""

_ACQUIRE = _LIVE + """
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local b = 1 + (i - 1) * 4
  local kind, limit = ARGV[b + 1], tonumber(ARGV[b + 2])
  local expiry, amount = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  if kind == 'w' then
    if amount > limit then return {i, ''} end
    local entry = redis.call('lindex', key, limit - amount)
    if entry and tonumber(entry) >= now - expiry then return {i, entry} end
  elseif kind == 't' then
    if amount > limit then return {i, ''} end
    local total, stamps, amounts = live(key, now, expiry)
    if total + amount > limit then
      for j = #stamps, 1, -1 do
        total = total - amounts[j]
        if total + amount <= limit then return {i, tostring(stamps[j])} end
      end
      return {i, ''}
    end
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
  elseif kind == 't' then
    local _, stamps = live(key, now, expiry)
    redis.call('lpush', key, ARGV[1] .. ':' .. amount)
    redis.call('ltrim', key, 0, #stamps)
    redis.call('expire', key, expiry)
  elseif amount ~= 0 then
    redis.call('incrby', key, amount)
    if redis.call('ttl', key) < 0 then redis.call('expire', key, expiry) end
  end
end
return {0, ''}
"""

_USED = _LIVE + """
return (live(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])))
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

    kind: Literal["window", "tokens", "budget"]
    key: str
    limit: int
    expiry: int

    @classmethod
    def window(cls, item: RateLimitItem, *identifiers: str) -> Counter:
        """A moving window on the ``limits`` key of ``item``."""
        return cls("window", item.key_for(*identifiers), item.amount, item.get_expiry())

    @classmethod
    def tokens(cls, item: RateLimitItem, *identifiers: str) -> Counter:
        """A moving window of token counts, one weighted entry per turn."""
        return cls("tokens", item.key_for(*identifiers), item.amount, item.get_expiry())


@dataclass(frozen=True)
class Refused:
    """``acquire`` refused: ``index`` of the first full counter, ``retry_at`` (epoch
    seconds) when the window frees enough, if known."""

    index: int
    retry_at: float | None


_LUA_KIND = {"window": "w", "tokens": "t", "budget": "b"}


class _Weighted:
    """A memory:// token window: ``(time, tokens)`` entries, oldest first, and their sum."""

    def __init__(self) -> None:
        self.entries: deque[tuple[float, int]] = deque()
        self.total = 0

    def expire(self, before: float) -> None:
        while self.entries and self.entries[0][0] <= before:
            self.total -= self.entries.popleft()[1]

    def add(self, at: float, amount: int) -> None:
        self.entries.append((at, amount))
        self.total += amount

    def free_at(self, room: int, expiry: int) -> float | None:
        """When enough entries expire for the total to fit in ``room``."""
        total = self.total
        for at, amount in self.entries:
            total -= amount
            if total <= room:
                return at + expiry
        return None


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
            self._used = conn.register_script(_USED.encode())
        self._lock = threading.Lock()
        self._weighted: dict[str, _Weighted] = {}  # memory:// token windows

    def acquire(self, counters: Sequence[Counter], amounts: Sequence[int]) -> Refused | None:
        """Take ``amounts`` from every counter, or from none and say which is full."""
        if not counters:
            return None
        if self._redis is None:
            with self._lock:
                return self._acquire_memory(counters, amounts)
        args: list[str | int] = [repr(time.time())]
        for c, amount in zip(counters, amounts, strict=True):
            args += [_LUA_KIND[c.kind], c.limit, c.expiry, amount]
        keys = [self._redis.prefixed_key(c.key) for c in counters]
        index, entry = self._acquire(keys=keys, args=args)
        if not index:
            return None
        c = counters[index - 1]
        return Refused(index - 1, float(entry) + c.expiry if entry else None)

    def _acquire_memory(self, counters: Sequence[Counter], amounts: Sequence[int]
                        ) -> Refused | None:
        now = time.time()
        for i, (c, amount) in enumerate(zip(counters, amounts, strict=True)):
            if c.kind == "tokens":
                if amount > c.limit:
                    return Refused(i, None)
                w = self._weighted_window(c, now)
                if w.total + amount > c.limit:
                    return Refused(i, w.free_at(c.limit - amount, c.expiry))
            elif c.kind == "window":
                if amount > c.limit:
                    return Refused(i, None)
                start, count = self._windows.get_moving_window(c.key, c.limit, c.expiry)
                if count > c.limit - amount:
                    return Refused(i, start + c.expiry)
            elif self.storage.get(c.key) + amount > c.limit:
                return Refused(i, None)
        for c, amount in zip(counters, amounts, strict=True):
            if c.kind == "tokens":
                self._weighted_window(c, now).add(now, amount)
            elif c.kind == "window":
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

    def _weighted_window(self, c: Counter, now: float) -> _Weighted:
        w = self._weighted.setdefault(c.key, _Weighted())
        w.expire(now - c.expiry)
        return w

    def used(self, c: Counter) -> int:
        """What a counter holds now (a window: its entries in the last period)."""
        if c.kind == "tokens":
            if self._redis is None:
                with self._lock:
                    return self._weighted_window(c, time.time()).total
            key = self._redis.prefixed_key(c.key)
            return int(self._used(keys=[key], args=[repr(time.time()), c.expiry]))
        if c.kind == "window":
            return self._windows.get_moving_window(c.key, c.limit, c.expiry)[1]
        return self.storage.get(c.key)
