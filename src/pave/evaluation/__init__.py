"""Evaluation: benchmark metrics, multiple-choice answer extraction, and scoring of predictions.

:func:`score` applies a benchmark's own protocol to ``{sample id: prediction}``; samples come from
:func:`pave.data.datasets.load_samples`, predictions from a JSON Lines file
(:func:`read_predictions` / :func:`write_predictions`).
"""

from pave.evaluation.answers import extract_letter, extract_letter_mlvu, extract_letter_mvbench, match_label
from pave.evaluation.metrics import (
    CAPTION_METRICS,
    MissingDependencyError,
    caption_metrics,
    clean_answer,
    exact_match,
    grouped_accuracy,
)
from pave.evaluation.scoring import (
    SCORABLE_TASKS,
    PredictionsError,
    format_report,
    read_predictions,
    score,
    write_predictions,
)

__all__ = [
    "CAPTION_METRICS",
    "SCORABLE_TASKS",
    "MissingDependencyError",
    "PredictionsError",
    "format_report",
    "caption_metrics",
    "clean_answer",
    "exact_match",
    "extract_letter",
    "extract_letter_mlvu",
    "extract_letter_mvbench",
    "grouped_accuracy",
    "match_label",
    "read_predictions",
    "score",
    "write_predictions",
]
