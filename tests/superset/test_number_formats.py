"""How the browser tests format an expected number the way the page does (superset_checks): Superset's SMART_NUMBER
and `,.2f` formats (d3-format, rounding as JavaScript does: a tie away from zero on the double's exact value) and
the percentages ECharts gives a pie's slices. Service-free."""
from __future__ import annotations

import pytest

from superset_checks import echarts_percents, grouped_fixed, percent, smart_number


@pytest.mark.parametrize(("value", "shown"), [
    (0, "0"), (1, "1"), (3, "3"), (999, "999"), (1000, "1k"), (1234, "1.23k"), (7021, "7.02k"),
    (32412, "32.4k"), (32450, "32.5k"),     # 3.245e4 is exact: JavaScript rounds the tie up, Python to even
    (999999, "1M"), (1_234_567, "1.23M"), (1.5e9, "1.5B"), (2**40, "1.1T"),
    (125.0625, "125.06"), (15.525, "15.53"), (2.675, "2.67"),  # the doubles nearest 15.525 and 2.675
    (0.5, "0.5"), (0.0012, "0.0012"), (0.00012, "120\u00b5"),
])
def test_smart_number_shows_what_supersets_adaptive_formatter_shows(value, shown):
    assert smart_number(value) == shown


def test_grouped_fixed_separates_thousands_and_keeps_two_decimals():
    assert grouped_fixed(259205.4812) == "259,205.48"
    assert grouped_fixed(69.875) == "69.88" and grouped_fixed(3) == "3.00"


def test_pie_percentages_add_up_to_100_by_largest_remainder():
    assert echarts_percents([1, 1, 1]) == [33.34, 33.33, 33.33]
    assert sum(echarts_percents([1210, 689, 540, 175, 125, 101, 99])) == pytest.approx(100)
    assert [percent(share / 100) for share in echarts_percents([34.38, 65.62])] == ["34.38%", "65.62%"]
