"""Prompts, answers and frames -> model inputs for a base video LLM of any registered family.

The checkpoint's multimodal chat template renders the conversation: real LLaVA-OneVision
checkpoints, for one, keep it with the processor (``chat_template.jinja`` or ``chat_template.json``), and
their tokenizer's own template is Qwen2's text-only one, so it is read the way transformers'
``AutoProcessor`` reads it (without needing torchvision). Its single ``<video>`` placeholder is
expanded to the number of visual tokens the model will scatter there (as transformers' processor
does), and labels mask everything but the answer so only answer tokens count in the loss. Adapters
that pool the visual tokens or add tokens of their own change that number: pass the model's
:meth:`~pave.models.patched.PatchedModel.token_layout` as ``layout``.

Messages are sent as content parts (``[{"type": "text", "text": ...}]``), the form the real
template renders; a plain string system message renders as nothing under it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pave.adapters import TokenLayout
from pave.models.families import family_of
from pave.models.preprocess import VideoPreprocessor

IGNORE_INDEX = -100


class VideoChatProcessor:
    """Builds ``input_ids``, ``attention_mask``, ``labels`` and ``pixel_values_videos``.

    Args:
        tokenizer: the base model's tokenizer.
        config: the base model's config (its family, :mod:`pave.models.families`, says the rest).
        preprocessor: frame preprocessing; defaults to the vision tower's input size.
        system_prompt: system message put before every question; ``None``: the one the base was
            trained with (its family's ``system_prompt``), ``""``: none.
        layout: the video's LLM tokens (grid, newline, extra); default: the base model's own.
        chat_template: the multimodal chat template (see :func:`processor_chat_template`);
            default: the tokenizer's own.
    """

    def __init__(
        self,
        tokenizer,
        config,
        preprocessor: VideoPreprocessor | None = None,
        system_prompt: str | None = None,
        layout: TokenLayout | None = None,
        chat_template: str | None = None,
    ):
        self.tokenizer = tokenizer
        self.config = config
        family = family_of(config)
        self.layout = layout or family.token_layout(config, family.newline_positions[0])
        self.preprocessor = preprocessor or family.preprocessor(None, config)
        self.system_prompt = (family.system_prompt or "") if system_prompt is None else system_prompt
        self.chat_template = chat_template or tokenizer.chat_template
        if not self.chat_template:
            raise ValueError("the base model has no chat template (chat_template.jinja, chat_template.json or the tokenizer's)")
        self.video_token = tokenizer.convert_ids_to_tokens(config.video_token_id)
        # What the tokenizer puts before any text it encodes (LLaMA's <s>; nothing for Qwen2), as
        # transformers' processors tokenise the rendered prompt with special tokens.
        self.prefix_ids = tokenizer("", add_special_tokens=True)["input_ids"]

    @classmethod
    def from_pretrained(cls, model_id_or_path, model, system_prompt: str | None = None) -> VideoChatProcessor:
        """The processor of a :class:`~pave.models.PatchedModel` loaded from ``model_id_or_path``:
        the checkpoint's tokenizer, chat template and preprocessing facts (the tower's input size
        when it has none), and the token layout of the model's active adapters."""
        from transformers import AutoTokenizer

        from pave.models.patched import model_location

        model_id_or_path = model_location(model_id_or_path)
        preprocessor = model.family.preprocessor(model_id_or_path, model.config)
        tokenizer = AutoTokenizer.from_pretrained(model_id_or_path)
        return cls(
            tokenizer,
            model.config,
            preprocessor,
            system_prompt,
            layout=model.token_layout(),
            chat_template=processor_chat_template(model_id_or_path),
        )

    def prompt_ids(self, question: str, frames: int, history: Sequence[tuple[str, str]] = ()) -> list[int]:
        """Token ids of the conversation up to the assistant's turn, video placeholder expanded.

        ``history``: earlier (question, answer) turns, oldest first; the video goes with the
        first question, as in a multi-turn chat about one video."""
        return self.conversation_ids([*history, (question, None)], frames)[0]

    def conversation_ids(self, turns: Sequence[tuple[str, str | None]], frames: int) -> tuple[list[int], list[int]]:
        """Token ids and labels of a chat about one video: every answer is supervised.

        ``turns``: (question, answer) pairs, oldest first, the video with the first question; a
        last answer of ``None`` ends the ids at the assistant's turn (generation). Labels are the
        answer tokens and each answer's end-of-turn token, ``IGNORE_INDEX`` elsewhere.

        The template gives each turn's context: the text it adds between one answer and the next
        question's assistant turn. Every answer is followed by the end-of-turn token, also where
        the template leaves it out of earlier turns (Vicuna's, which renders "ASSISTANT: answer
        USER: ..."; the token then takes the place of the space between turns, as in Vicuna v1's
        training format): generation stops at that token, so the history shows answers as they
        were generated. Prompts with a history are built here too, so training sees every turn exactly
        as generation does after the same history.
        """
        if not turns:
            raise ValueError("a conversation needs at least one turn")
        ids: list[int] = list(self.prefix_ids)
        labels: list[int] = []
        rendered = ""  # the template's conversation so far, up to the end of the last answer
        prompt = self._render((), turns[0][0])  # ... and up to the current assistant turn
        videos = 0
        for number, (_, answer) in enumerate(turns):
            context = prompt[len(rendered) :]
            videos += context.count(self.video_token)
            for i, piece in enumerate(context.split(self.video_token)):
                if i:
                    ids += [self.config.video_token_id] * self.layout.num_tokens(frames)
                ids += self._encode(piece)
            labels += [IGNORE_INDEX] * (len(ids) - len(labels))
            if answer is None:
                break
            answered = self.answer_ids(answer)
            ids, labels = ids + answered, labels + answered
            if number + 1 < len(turns):
                following = self._render(turns[: number + 1], turns[number + 1][0])
                rendered, prompt = self._answer_end(prompt, answer, following), following
        if videos != 1:
            raise ValueError(f"the chat template must render exactly one {self.video_token} placeholder")
        return ids, labels

    def _answer_end(self, prompt: str, answer: str, following: str) -> str:
        """``following`` (the template's text once ``answer`` is history) up to where the next turn's
        context starts: past the answer and its end-of-turn token where the template writes it;
        where it does not, past the whitespace that separates turns, which that token replaces
        (Vicuna v1's ``answer</s>USER:``)."""
        if not following.startswith(prompt):
            raise ValueError("the chat template renders earlier turns differently once a turn is added")
        rest = following[len(prompt) :]
        start = 0 if rest.startswith(answer) else len(rest) - len(rest.lstrip())
        if not rest.startswith(answer, start):
            raise ValueError(
                f"the chat template does not render the answer {answer!r} right after the assistant's turn"
            )
        end = len(prompt) + start + len(answer)
        after = following[end:]
        eos = self.tokenizer.eos_token
        separator = len(after) - len(after.lstrip())
        if after.startswith(eos, separator):
            return following[: end + separator + len(eos)]
        marker = next((t for t in self.tokenizer.all_special_tokens if after.startswith(t, separator)), None)
        if marker is not None:
            raise ValueError(
                f"the chat template ends an answer with {marker!r}, not the tokenizer's end-of-turn token {eos!r}"
            )
        return following[: end + separator]

    def _render(self, history: Sequence[tuple[str, str | None]], question: str) -> str:
        """The template's text of ``history`` then ``question``, up to the assistant's turn."""
        messages = [_message("system", self.system_prompt)] if self.system_prompt else []
        for number, (asked, answered) in enumerate(history):
            messages += [_message("user", asked, video=number == 0), _message("assistant", answered)]
        messages.append(_message("user", question, video=not history))
        try:
            return self.tokenizer.apply_chat_template(
                messages, chat_template=self.chat_template, tokenize=False, add_generation_prompt=True
            )
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(
                f"the chat template does not render multimodal messages ({exc}); a LLaVA-OneVision "
                "checkpoint keeps that template in chat_template.jinja or chat_template.json"
            ) from None

    def answer_ids(self, answer: str) -> list[int]:
        """Token ids of an answer followed by the end-of-turn token."""
        return self._encode(answer) + [self.tokenizer.eos_token_id]

    def __call__(
        self,
        questions: Sequence[str],
        answers: Sequence[str] | None = None,
        frames: torch.Tensor | Sequence | None = None,
        num_frames: int | None = None,
        padding_side: str = "right",
        histories: Sequence[Sequence[tuple[str, str]]] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Batch of questions (and answers for training).

        Args:
            questions: B question texts.
            answers: B answers; when given, ``labels`` are returned and answers appended.
            frames: B uint8 frame arrays (T, H, W, 3), stacked to ``pixel_values_videos``
                (B, T, 3, S, S). Omit when the visual tokens are cached; then pass ``num_frames``.
            padding_side: ``"right"`` for training, ``"left"`` for batched generation.
            histories: B lists of earlier (question, answer) turns (dialogues); with answers,
                every turn's answer is supervised (as the authors train on AVSD).
        """
        if frames is not None:
            pixel_values = torch.stack([self.preprocessor(f) for f in frames])
            num_frames = pixel_values.shape[1]
        elif num_frames is None:
            raise ValueError("pass frames or num_frames")
        if answers is not None and len(answers) != len(questions):
            raise ValueError(f"{len(questions)} questions but {len(answers)} answers")
        if histories is not None and len(histories) != len(questions):
            raise ValueError(f"{len(questions)} questions but {len(histories)} histories")
        sequences, label_sequences = [], []
        for i, question in enumerate(questions):
            history = histories[i] if histories is not None else ()
            ids, labels = self.conversation_ids([*history, (question, answers[i] if answers is not None else None)], num_frames)
            sequences.append(ids)
            label_sequences.append(labels)
        batch = self._pad(sequences, label_sequences if answers is not None else None, padding_side)
        if frames is not None:
            batch["pixel_values_videos"] = pixel_values
        return batch

    def decode(self, ids: torch.Tensor) -> list[str]:
        return [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _pad(self, sequences, label_sequences, side: str) -> dict[str, torch.Tensor]:
        width = max(len(s) for s in sequences)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        labels = torch.full((len(sequences), width), IGNORE_INDEX, dtype=torch.long)
        for i, seq in enumerate(sequences):
            span = slice(width - len(seq), width) if side == "left" else slice(0, len(seq))
            ids[i, span] = torch.tensor(seq)
            mask[i, span] = 1
            if label_sequences is not None:
                labels[i, span] = torch.tensor(label_sequences[i])
        batch = {"input_ids": ids, "attention_mask": mask}
        if label_sequences is not None:
            batch["labels"] = labels
        return batch


def processor_chat_template(model_id_or_path) -> str | None:
    """The chat template a checkpoint keeps for its processor (``chat_template.jinja``,
    ``chat_template.json`` or ``processor_config.json``), read as ``AutoProcessor`` reads it;
    ``None`` when it has none. Of several named templates, the ``default`` one."""
    from transformers.processing_utils import ProcessorMixin

    template = ProcessorMixin.get_processor_dict(str(model_id_or_path))[0].get("chat_template")
    return template.get("default") if isinstance(template, dict) else template


def _message(role: str, text: str, video: bool = False) -> dict:
    """A chat message as content parts, with the video placeholder first when ``video``."""
    parts = [{"type": "video"}] if video else []
    return {"role": role, "content": [*parts, {"type": "text", "text": text}]}
