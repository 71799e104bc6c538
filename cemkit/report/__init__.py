"""Reports: Altair chart builders, self-contained HTML pages, papermill notebook runs."""
