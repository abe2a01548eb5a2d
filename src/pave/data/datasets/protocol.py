"""How a benchmark's questions are put to the model: one :class:`TaskProtocol` per task.

Each benchmark module defines ``PROTOCOL``, the single place its prompt text, system message,
generation length and frame count come from, with the source they were taken from. Loaders build
every sample's prompt with :meth:`TaskProtocol.prompt` (training uses the same text), ``pave eval``
takes its defaults from it, and ``metrics.json`` records it with every setting of the run that
differs from it, so a number is comparable with the paper's or says why not.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pave.data.datasets.base import LETTERS, TASKS


@dataclass(frozen=True)
class TaskProtocol:
    """A task's prompt and generation settings.

    Attributes:
        template: the user's text, with ``{question}`` and (multiple choice) ``{options}``.
        choice_template: for a task with both kinds of question (the generic ``qa`` task), the
            template of the multiple-choice ones.
        option: one option as ``{letter}`` and ``{text}`` fill it; options are joined with
            ``option_separator``.
        system_prompt: the system message; None: the base model's own (LLaVA-OneVision's "You
            are a helpful assistant.", which is also the authors' conversation template's).
        max_new_tokens: generation length (greedy decoding).
        num_frames: key frames per video.
        source: where the settings come from.
    """

    template: str = "{question}"
    choice_template: str | None = None
    option: str = "{letter}. {text}"
    option_separator: str = "\n"
    system_prompt: str | None = None
    max_new_tokens: int = 1024
    num_frames: int = 32
    source: str = ""

    def prompt(self, question: str, options: Sequence[str] = ()) -> str:
        """The user's text for one question (without the video placeholder)."""
        lines = self.option_separator.join(
            self.option.format(letter=LETTERS[i], text=text) for i, text in enumerate(options)
        )
        template = self.choice_template if options and self.choice_template else self.template
        return template.format(question=question, options=lines)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def deviations(self, used: dict[str, Any], base_system_prompt: str) -> list[str]:
        """The ``used`` settings (``system_prompt``, ``max_new_tokens``, ``num_frames``) that are
        not the protocol's, one line each; ``base_system_prompt`` is what None stands for."""
        expected = self.to_dict() | {
            "system_prompt": base_system_prompt if self.system_prompt is None else self.system_prompt
        }
        return [
            f"{name}: {value!r} (the protocol's is {expected[name]!r})"
            for name, value in used.items()
            if value != expected[name]
        ]


def get_protocol(task: str) -> TaskProtocol:
    """A task's ``PROTOCOL`` (see :data:`~pave.data.datasets.base.TASKS`)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of: {', '.join(TASKS)}")
    return importlib.import_module(f"pave.data.datasets.{task}").PROTOCOL
