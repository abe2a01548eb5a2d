"""Training recipes: their schema (:mod:`pave.recipes.schema`, YAML onto dataclasses) and the
ones shipped with pave, one YAML file per paper experiment and model size.

``pave train NAME`` takes a bundled recipe by name (e.g. ``music_avqa_7b``) or any YAML path.
Inference reads the recipe saved beside a patch too (its frames and system message), which is
why the schema lives here and not in :mod:`pave.training`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pave.recipes.schema import Recipe, RecipeError, TrainSection, load_recipe

__all__ = ["Recipe", "RecipeError", "TrainSection", "find", "load_recipe", "names"]


def names() -> list[str]:
    """Names of the bundled recipes."""
    return sorted(p.name[: -len(".yaml")] for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml"))


def find(name_or_path: str) -> Path:
    """A recipe file: an existing path as given, else the bundled recipe of that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = resources.files(__name__) / f"{name_or_path}.yaml"
    if bundled.is_file():
        return Path(str(bundled))
    raise FileNotFoundError(
        f"{name_or_path}: no such recipe file, and no bundled recipe of that name; bundled: {', '.join(names())}"
    )
