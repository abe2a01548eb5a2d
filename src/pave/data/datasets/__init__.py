"""Loaders for the benchmarks PAVE reports on: official annotation files in, :class:`Sample` out.

``load_samples(task, paths)`` reads a benchmark's files; ``missing_media(samples, root)`` lists
the media a run would lack. One module per benchmark documents its files, media layout and ids.
"""

from pave.data.datasets.base import (
    TASKS,
    AnnotationError,
    MissingMedia,
    Sample,
    get_loader,
    load_samples,
    missing_media,
)

__all__ = [
    "TASKS",
    "AnnotationError",
    "MissingMedia",
    "Sample",
    "get_loader",
    "load_samples",
    "missing_media",
]
