"""The SVG charts of report.html: what they plot is the data, and bad or empty data is safe."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from batchcopy import charts

SVG = "{http://www.w3.org/2000/svg}"


def _svg(text: str) -> ET.Element:
    """The chart's <svg> element (the legend after it is HTML, not part of the drawing)."""
    end = text.index("</svg>", text.index('<svg class="chart"')) + len("</svg>")
    start = text.index('<svg class="chart"')
    return ET.fromstring(text[start:end].replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1))  # noqa: S314 - our own output


def _values(line: ET.Element, ymax: float) -> list[float]:
    """The values a polyline draws, read back through the chart's scale."""
    plot = charts.Plot()
    points = [p.split(",") for p in line.attrib["points"].split()]
    return [round(ymax * (1 - (float(y) - plot.top) / plot.inner_height), 1) for _, y in points]


def test_lines_plot_the_data_series_by_series() -> None:
    """Each series is drawn as one line through its own values, named in its title."""
    text = charts.line_chart(
        ident="t",
        title="done",
        series={"eu-west-1": [0, 2, 5, 9], "us-west-2": [1, 1, 3, 4]},
        step=1.0,
        unit="jobs",
    )
    svg = _svg(text)
    ymax = float(svg.attrib["data-ymax"])
    assert ymax == 10
    lines = {el.attrib["data-series"]: el for el in svg.iter(f"{SVG}polyline")}
    assert _values(lines["eu-west-1"], ymax) == [0, 2, 5, 9]
    assert _values(lines["us-west-2"], ymax) == [1, 1, 3, 4]
    assert "eu-west-1: last 9 jobs" in svg.find(f"{SVG}desc").text  # type: ignore[union-attr]


def test_nan_infinity_and_none_break_the_line_and_never_reach_the_svg() -> None:
    """Gaps in a rate (null, NaN, infinity) split the line; no NaN is written."""
    text = charts.line_chart(
        ident="t",
        title="rate",
        series={"rate": [1.0, None, math.nan, 2.0, math.inf, 4.0]},
        step=1.0,
        unit="req/s",
    )
    assert "nan" not in text.lower()
    assert "inf" not in text.lower()
    svg = _svg(text)
    runs = [_drawn(el, float(svg.attrib["data-ymax"])) for el in svg if "data-series" in el.attrib]
    assert runs == [[1.0], [2.0], [4.0]]  # a stretch of one value is a dot


def _drawn(element: ET.Element, ymax: float) -> list[float]:
    """The values a polyline or a dot draws."""
    if element.tag == f"{SVG}circle":
        plot = charts.Plot()
        y = float(element.attrib["cy"])
        return [round(ymax * (1 - (y - plot.top) / plot.inner_height), 1)]
    return _values(element, ymax)


def test_a_run_of_one_bucket_is_drawn_with_ticks_that_differ() -> None:
    """A run shorter than one bucket (one value per series) still shows its value, as a dot,
    and the time axis of a short run reads 0 s, 0.5 s, 1 s (not 0 s, 0 s, 1 s)."""
    text = charts.line_chart(
        ident="t", title="done", series={"eu-west-1": [86]}, step=1.0, unit="jobs"
    )
    svg = _svg(text)
    dots = [el for el in svg.iter(f"{SVG}circle") if el.attrib.get("data-series") == "eu-west-1"]
    assert [_drawn(dot, float(svg.attrib["data-ymax"])) for dot in dots] == [[86.0]]
    ticks = [el.text for el in svg.iter(f"{SVG}text") if el.text and el.text.endswith(" s")]
    assert ticks == ["0 s", "0.5 s", "1 s"]


@pytest.mark.parametrize(
    "series",
    [{}, {"eu-west-1": []}, {"eu-west-1": [None, math.nan]}],
    ids=["none", "empty", "gaps"],
)
def test_empty_data_draws_a_chart_saying_so(series: dict[str, list[float | None]]) -> None:
    """No data gives a small chart that says so, not an error or an empty axis."""
    text = charts.line_chart(ident="t", title="done", series=series, step=1.0, unit="jobs")
    assert "No data to draw." in text
    assert "<polyline" not in text


def test_long_series_are_thinned_and_keep_their_totals() -> None:
    """A day of one-second buckets draws at most MAX_POINTS points; a running total ends
    at the same total."""
    values = charts.cumulative([1.0] * 86_400)
    svg = _svg(charts.line_chart(ident="t", title="done", series={"r": values}, step=1, unit="j"))
    (line,) = svg.iter(f"{SVG}polyline")
    drawn = _values(line, float(svg.attrib["data-ymax"]))
    assert len(drawn) <= charts.MAX_POINTS
    assert drawn[-1] == pytest.approx(86_400, rel=0.01)
    assert float(svg.attrib["data-step"]) > 1  # the x axis still reads in seconds


def test_throttle_bars_count_per_bucket() -> None:
    """Throttles show as bars as tall as their count on the chart's axis."""
    svg = _svg(
        charts.line_chart(
            ident="t",
            title="rate",
            series={"rate": [4, 4, 2]},
            step=1.0,
            unit="req/s",
            bars=[0, 3, 0],
            bars_label="throttled",
        )
    )
    plot = charts.Plot()
    ymax = float(svg.attrib["data-ymax"])
    (bar,) = [el for el in svg.iter(f"{SVG}rect") if el.attrib.get("class") == "bar"]
    assert float(bar.attrib["height"]) == pytest.approx(3 / ymax * plot.inner_height, abs=0.1)


def test_status_bars_split_by_count_and_say_it_in_words() -> None:
    """A region's bar is split in proportion to its statuses, with the counts in text."""
    svg = _svg(
        charts.stacked_bars(
            ident="s",
            title="by region",
            rows={"eu-west-1": {"succeeded": 3, "failed": 1}, "empty": {}},
            order=("failed", "succeeded"),
            icons={"failed": "✖", "succeeded": "✔"},
        )
    )
    rects = {el.attrib["data-status"]: el for el in svg.iter(f"{SVG}rect")}
    widths = {s: float(el.attrib["width"]) for s, el in rects.items()}
    assert widths["succeeded"] == pytest.approx(3 * widths["failed"], abs=0.2)
    words = [el.text for el in svg.iter(f"{SVG}text")]
    assert "✖ 1 failed, ✔ 3 succeeded" in words
    assert "empty" not in words  # a row with nothing in it is left out


def test_names_are_escaped_in_every_chart() -> None:
    """A region or account name cannot become markup inside a chart."""
    name = "<script>alert(1)</script>"
    texts = [
        charts.line_chart(ident="t", title=name, series={name: [1, 2]}, step=1, unit="j"),
        charts.stacked_bars(
            ident="s", title=name, rows={name: {"failed": 1}}, order=["failed"], icons={}
        ),
        charts.bar_groups(ident="b", title=name, groups=[(name, {"p50": 1.0})], unit="s"),
    ]
    for text in texts:
        assert "<script>" not in text
        _svg(text)  # still well-formed


def test_wait_bars_show_each_measure() -> None:
    """The wait-by-size chart draws p50, p90 and max per size with their values."""
    svg = _svg(
        charts.bar_groups(
            ident="w",
            title="wait",
            groups=[("≤ 8 GB", {"p50": 41.0, "p90": 80.5, "max": 95.0}), ("≤ 64 GB", {})],
            unit="s",
        )
    )
    values = [float(el.attrib["data-value"]) for el in svg.iter(f"{SVG}rect")]
    assert values == [41.0, 80.5, 95.0]
    plot_width = charts.Plot(left=110, right=150).inner_width
    widths = [float(el.attrib["width"]) for el in svg.iter(f"{SVG}rect")]
    assert widths[2] == pytest.approx(95 / float(svg.attrib["data-xmax"]) * plot_width, abs=0.1)
