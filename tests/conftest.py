"""Shared fixtures: small, deterministic slices of the embedded MovieLens data; one live LibreOffice per module."""
from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """In CI the LibreOffice oracle must be there: its tests may never turn into silent skips."""
    if os.environ.get("CI"):
        from xlcollab.book import libreoffice, unobook
        if not (libreoffice.available() and unobook.available()):
            raise pytest.UsageError("CI needs LibreOffice headless and python3-uno for the oracle tests: "
                                    + libreoffice.INSTALL_HINT)


@pytest.fixture(scope="module")
def office():
    """A headless LibreOffice started once for the test module, driven over UNO."""
    from xlcollab.book import unobook
    if not unobook.available():
        pytest.skip("LibreOffice or python3-uno not installed")
    with unobook.Office() as running:
        yield running


@pytest.fixture(scope="session")
def bundled(tmp_path_factory):
    """The bundled workbooks built once per session ({"collab": path, "graddesc": path}): copy before writing."""
    from xlcollab.sheets import collab, graddesc
    root = tmp_path_factory.mktemp("bundled")
    return {"collab": collab.build_workbook(root / "collab_filter.xlsx"),
            "graddesc": graddesc.build_workbook(root / "graddesc.xlsx")}


@pytest.fixture(scope="session")
def _embedded_ratings():
    """The embedded ml-latest-small, loaded once per session (copy before mutating: use small_ratings)."""
    from xlcollab.core.data import load_ratings
    return load_ratings()


@pytest.fixture
def small_ratings(_embedded_ratings):
    """559 ratings: every rating among the 25 most active users x the 25 most-rated movies, with titles."""
    from xlcollab.core.data import Ratings, crosstab
    full = _embedded_ratings
    table = crosstab(full, 25)
    f = full.frame
    keep = f["user"].isin(table.index) & f["item"].isin(table.columns)
    frame = f[keep].reset_index(drop=True).copy()
    titles = full.titles.loc[list(table.columns)].copy()
    return Ratings(frame, titles, "ml-latest-small (embedded): 25 most active users x 25 most-rated movies")
