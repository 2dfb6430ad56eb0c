"""The epochs rule (settings.auto_epochs): what the default becomes for a training set of each size."""
from __future__ import annotations

import math

import pytest

from xlcollab.core import budget
from xlcollab.core.fit import CollabFit
from xlcollab.core.settings import AUTO_STEPS, MAX_EPOCHS, MIN_EPOCHS, auto_epochs, check_fit
from xlcollab.errors import SettingsError
from tests.test_evaluate import small_ratings


@pytest.mark.parametrize("n_train, want", [(80_668, 7), (53_779, 8), (32_158, 12), (21_000, 19), (5_000, 30),
                                           (800_000, 7)])
def test_rule_values(n_train, want):
    assert auto_epochs(n_train, 1024) == want
    per_epoch = math.ceil(n_train / 1024)
    assert want == max(MIN_EPOCHS, min(MAX_EPOCHS, round(AUTO_STEPS / per_epoch)))
    assert auto_epochs(n_train, None) == MIN_EPOCHS  # full batch


def test_fit_resolves_the_rule_and_bmf_its_own():
    ratings = small_ratings(40, 30)  # ~480 training ratings: one step an epoch -> at most 30 epochs
    est = CollabFit(n_factors=2, progress=False).fit(ratings)
    assert est.settings_["epochs"] == MAX_EPOCHS == len(est.trace_)
    assert CollabFit(epochs=3).fit(ratings).settings_["epochs"] == 3
    assert check_fit({"model": "bmf"})["epochs"] == 150 and check_fit({"model": "bmf"})["n_factors"] == 6
    assert check_fit({})["epochs"] is None and check_fit({})["n_factors"] == 64


def test_budget_counts_the_epochs_the_rule_gives(monkeypatch):
    monkeypatch.setenv("XLCOLLAB_MAX_HOURS", "1e-9")
    with pytest.raises(SettingsError, match="^30 epochs over 8,000 training ratings"):
        budget.check_fit(10_000, 100, 100, check_fit({}))
