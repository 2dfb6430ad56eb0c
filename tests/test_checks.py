"""The one value checker: numbers, ranges, whole numbers, choices, and the words it uses."""
from __future__ import annotations

import re

import numpy as np
import pytest

from xlcollab.core import checks
from xlcollab.core.checks import CheckError


@pytest.mark.parametrize("value", [1, 2.5, -3, np.float64(0.1), np.int32(4)])
def test_numbers_pass(value):
    assert checks.number(value, "x") == float(value)


@pytest.mark.parametrize("value, found", [(None, "blank"), ("  ", "blank"), ("=A1*2", "a formula (=A1*2)"),
                                          ("abc", "'abc'"), (True, "True"), (np.bool_(False), "np.False_"),
                                          (float("nan"), "nan"), (float("inf"), "inf")])
def test_non_numbers_refused_saying_what_was_found(value, found):
    with pytest.raises(CheckError, match="^" + re.escape(f"the lr must be a number, found {found}") + "$"):
        checks.number(value, "the lr")


def test_ranges_open_and_closed():
    assert checks.number(0.0, "b", lo=0, hi=1, hi_open=True) == 0.0
    with pytest.raises(CheckError, match=r"b must be a number in \[0, 1\), found 1"):
        checks.number(1, "b", lo=0, hi=1, hi_open=True)
    with pytest.raises(CheckError, match=r"lr must be a number > 0, found 0"):
        checks.number(0, "lr", lo=0, lo_open=True)
    with pytest.raises(CheckError, match=r"wd must be a number >= 0, found -1"):
        checks.number(-1, "wd", lo=0)
    with pytest.raises(CheckError, match=r"r must be a number <= 5, found 5.5"):
        checks.number(5.5, "r", hi=5)


def test_whole_numbers():
    assert checks.whole(3.0, "epochs", lo=1) == 3
    with pytest.raises(CheckError, match=r"epochs must be a whole number >= 1, found 0.5"):
        checks.whole(0.5, "epochs", lo=1)
    with pytest.raises(CheckError, match=r"n must be a whole number in \[1, 10\], found 11"):
        checks.whole(11, "n", lo=1, hi=10)


def test_choice():
    assert checks.choice("on", "squash", ("on", "off")) == "on"
    with pytest.raises(CheckError, match=r"squash must be one of on, off, found 'On '"):
        checks.choice("On ", "squash", ("on", "off"))


def test_a_check_error_is_an_xlcollab_error_and_a_value_error():
    from xlcollab.errors import XlcollabError
    assert issubclass(CheckError, XlcollabError) and issubclass(CheckError, ValueError)
