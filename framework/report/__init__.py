"""Reading results: terminal tables, charts, report.html, the gallery, compare, statistics."""
