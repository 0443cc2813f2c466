"""The static results site (reports/site/): tables, metrics, loss curves, samples, audio."""

from midilm.report.site.build import build_site

__all__ = ["build_site"]
