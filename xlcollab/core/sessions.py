"""Session effects: the ratings a user gives in one sitting share a shift that no taste model explains (a mood, a
scale used that evening). Koren's timeSVD++ (2009) learns it as a bias per user and day; here a sitting is a run
of the user's training ratings each less than `gap` seconds after the one before, which cross-validation preferred
to calendar days (README: "Session effects").

After any model is fitted, each sitting's bias is the shrunk mean of its training residuals,
sum(residual) / (count + shrink); a rating to predict gets the bias of the sitting whose training ratings lie
nearest in time, if one lies within `gap` of it, and nothing otherwise. Only training timestamps define the
sittings: a held-out rating's time places it, its value never takes part. A prediction without a time (recommend,
the Excel model functions) gets no shift; within one sitting the shift is the same for every movie, so rankings
for a sitting never change.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Sessions:
    """Each sitting's user code, first and last training time (seconds) and bias, sorted by (user, first time)."""

    users: np.ndarray  # int64
    starts: np.ndarray  # int64 seconds
    ends: np.ndarray  # int64 seconds
    bias: np.ndarray  # float32
    gap: int  # seconds

    def __len__(self) -> int:
        return len(self.bias)

    def shift(self, users: np.ndarray, times: np.ndarray) -> np.ndarray:
        """The bias of the sitting nearest each (user, time) within `gap`, 0 where none is (float32)."""
        users, times = np.asarray(users, dtype=np.int64), np.asarray(times, dtype=np.int64)
        out = np.zeros(len(users), dtype=np.float32)
        if len(self) == 0 or len(users) == 0:
            return out
        # the sitting of the same user starting at or before t, and the one after it: the nearer within gap wins
        before = _search(self.users, self.starts, users, times) - 1
        best, best_gap = np.full(len(users), -1), np.full(len(users), np.inf)
        for cand in (before, before + 1):
            ok = (cand >= 0) & (cand < len(self))
            c = np.clip(cand, 0, len(self) - 1)
            dist = np.maximum(np.maximum(self.starts[c] - times, times - self.ends[c]), 0).astype(np.float64)
            dist[~ok | (self.users[c] != users)] = np.inf
            nearer = dist < best_gap
            best, best_gap = np.where(nearer, c, best), np.where(nearer, dist, best_gap)
        hit = best_gap <= self.gap
        out[hit] = self.bias[best[hit]]
        return out


def _keys(*pairs: tuple[np.ndarray, np.ndarray]) -> list[np.ndarray]:
    """One int64 key per (user, time) of each (users, times) pair of arrays, ordered by user then time alike across
    them: user * span + time, or user * n + the time's rank among all the times where that would not fit in 63 bits
    (times in nanoseconds, say)."""
    times = [t for _, t in pairs]
    t0 = min(int(t.min()) for t in times)
    span = max(int(t.max()) for t in times) - t0 + 1
    if span * (max(int(u.max()) for u, _ in pairs) + 1) < 2 ** 62:
        return [u * span + (t - t0) for u, t in pairs]
    grid = np.unique(np.concatenate(times))
    return [u * len(grid) + np.searchsorted(grid, t) for u, t in pairs]


def _search(sorted_users: np.ndarray, sorted_starts: np.ndarray, users: np.ndarray, times: np.ndarray) -> np.ndarray:
    """np.searchsorted(side='right') of (user, time) pairs among sittings sorted by (user, start), the pairs searched
    in key order (numpy's search walks on from the last hit) and the answers put back in the pairs' order."""
    keys, wanted = _keys((sorted_users, sorted_starts), (users, times))
    order = np.argsort(wanted, kind="stable")
    out = np.empty(len(wanted), dtype=np.int64)
    out[order] = np.searchsorted(keys, wanted[order], side="right")
    return out


def fit(users: np.ndarray, times: np.ndarray, residuals: np.ndarray, *, gap: float, shrink: float) -> Sessions:
    """The sittings of the training ratings (users, times in seconds) and their shrunk mean residuals."""
    users, times = np.asarray(users, dtype=np.int64), np.asarray(times, dtype=np.int64)
    residuals = np.asarray(residuals, dtype=np.float32)
    gap_s = int(round(gap))
    order = np.argsort(_keys((users, times))[0], kind="stable") if len(users) else np.zeros(0, dtype=np.int64)
    u, t, r = users[order], times[order], residuals[order]
    new = np.r_[True, (u[1:] != u[:-1]) | (np.diff(t) > gap_s)] if len(u) else np.zeros(0, dtype=bool)
    first = np.flatnonzero(new)
    last = np.r_[first[1:], len(u)] - 1
    count = last - first + 1
    total = np.add.reduceat(r, first, dtype=np.float64) if len(first) else np.zeros(0)
    return Sessions(u[first], t[first], t[last], (total / (count + shrink)).astype(np.float32), gap_s)
