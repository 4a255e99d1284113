"""Reports read back from a study: ``metrics.json`` and ``trials.csv``."""

from mergekit_evo.report.metrics import build_metrics, improvement
from mergekit_evo.report.trials_csv import trial_rows, trials_csv

__all__ = ["build_metrics", "improvement", "trial_rows", "trials_csv"]
