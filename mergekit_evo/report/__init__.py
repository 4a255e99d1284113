"""Reports read back from a study: metrics.json, trials.csv, report.md, the end-of-run table."""

from mergekit_evo.report.markdown import markdown_report
from mergekit_evo.report.metrics import build_metrics, improvement
from mergekit_evo.report.summary import summary_table
from mergekit_evo.report.trials_csv import trial_rows, trials_csv

__all__ = [
    "build_metrics",
    "improvement",
    "markdown_report",
    "summary_table",
    "trial_rows",
    "trials_csv",
]
