"""Server-side pictures of a migration: the timeline and the charts, as SVG text.

Used by the dashboard (``web/pages.py``) and by the report (``migratrack report``); no I/O here:
callers hand in the read models and the events they read.
"""

from migratrack.render.series import Point, Series, SeriesBuilder, downsample
from migratrack.render.svg import line_chart, timeline

__all__ = ["Point", "Series", "SeriesBuilder", "downsample", "line_chart", "timeline"]
