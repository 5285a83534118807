"""The dashboard's charts: each with its figures as a table a screen reader can read."""

from __future__ import annotations

import re

from dashboard.charts import Series, bar_chart, line_chart


def test_a_chart_carries_its_figures_as_a_table():
    labels = ["02 Nov", "09 Nov"]
    for chart in (line_chart("Time in review", labels, [Series("median", [1.5, None], "blue")], unit="h"),
                  bar_chart("Actions", labels, [Series("on time", [3, 0], "green"), Series("late", [1, 2], "red")])):
        table = re.search(r'<details class="chart-data">.*?<table.*?</table>', str(chart), re.S).group()
        rows = re.findall(r"<tr>(.*?)</tr>", table)
        assert len(rows) == 1 + len(labels)
        assert '<th scope="row">02 Nov</th>' in rows[1]
    assert re.findall(r"<td>(.*?)</td>", str(line_chart("T", labels, [Series("median", [1.5, None], "blue")], "h"))) \
        == ["1.5h", ""]
