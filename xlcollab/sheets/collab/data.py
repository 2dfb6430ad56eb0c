"""The ratings the collab_filter tabs hold: the most active users x the most-rated movies of a ratings set."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xlcollab.core.checks import CheckError, whole
from xlcollab.errors import DataError, SettingsError
from xlcollab.sheets.collab.layout import N_MOVIES, N_USERS, RATING_RANGE


@dataclass
class Data:
    """The crosstab's ratings in both shapes (grid with NaN where not rated; long rows), with ids and titles."""
    user_ids: list
    movie_ids: list
    titles: list[str]
    grid: np.ndarray
    source: str

    @property
    def long(self) -> list[tuple]:
        """(userId, movieId, rating) for every rated cell, row by row."""
        return [(self.user_ids[i], self.movie_ids[j], float(self.grid[i, j]))
                for i in range(len(self.user_ids)) for j in range(len(self.movie_ids)) if not np.isnan(self.grid[i, j])]


def load_data(ratings: str | Path | None = None, *, n_users: int = N_USERS, n_movies: int = N_MOVIES) -> Data:
    """The `n_users` most active users x the `n_movies` most-rated movies of `ratings` (any file `load_ratings`
    reads; None: the embedded ml-latest-small). Ratings must be on MovieLens' scale, as the tabs' y range is."""
    from xlcollab.core.data import crosstab, load_ratings

    try:
        n_users, n_movies = whole(n_users, "--users", lo=1), whole(n_movies, "--movies", lo=1)
    except CheckError as exc:
        raise SettingsError(str(exc)) from None
    loaded = load_ratings(ratings)
    lo, hi = RATING_RANGE
    outside = loaded.frame[(loaded.frame["rating"] < lo) | (loaded.frame["rating"] > hi)]
    if len(outside):
        raise DataError(f"{loaded.source}: the collab tabs take ratings from {lo:g} to {hi:g} (their sigmoid range is "
                        f"0 to 5.5), found {outside['rating'].iloc[0]:g}")
    table = crosstab(loaded, max(n_users, n_movies))  # both lists ordered by count: the first n of each are the top n
    titles = list(table.attrs["titles"])[:n_movies]
    table = table.iloc[:n_users, :n_movies]
    if table.shape[0] < 2 or table.shape[1] < 2 or int(table.notna().to_numpy().sum()) < 2:
        raise DataError(f"{loaded.source}: {table.shape[0]} users x {table.shape[1]} movies with "
                        f"{int(table.notna().to_numpy().sum())} ratings are too few for the collab tabs")
    source = "MovieLens" if ratings is None else Path(str(ratings)).name
    return Data([_plain(u) for u in table.index], [_plain(m) for m in table.columns], titles, table.to_numpy(), source)


def _plain(v):
    """numpy ids as Python numbers (openpyxl writes them as cells); text ids as they are."""
    return v.item() if hasattr(v, "item") else v
