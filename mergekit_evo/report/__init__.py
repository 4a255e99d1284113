"""Reports read back from a study: ``metrics.json``, ``trials.csv`` and ``report.md``."""

from mergekit_evo.report.markdown import markdown_report
from mergekit_evo.report.metrics import build_metrics, improvement
from mergekit_evo.report.trials_csv import trial_rows, trials_csv

__all__ = ["build_metrics", "improvement", "markdown_report", "trial_rows", "trials_csv"]
