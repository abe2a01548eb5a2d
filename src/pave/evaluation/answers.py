"""Reading a choice out of a free-form model answer, rule for rule as the reference evaluators do.

Scores are only comparable with published ones when the same extraction rule is used, quirks
included, so each function below reproduces one reference evaluator and says which.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# lmms-eval's list of answer phrases. Two entries in its source lack a separating comma, so
# Python concatenates them: "The best option is" and "Best option:" alone are never removed.
_ANSWER_PHRASES = (
    "The best answer is",
    "The correct answer is",
    "The answer is",
    "The answer",
    "The best option isThe correct option is",
    "Best answer:Best option:",
)


def extract_letter(text: str, letters: str = "ABCD") -> str | None:
    """The option letter by lmms-eval's rule for VideoMME (also its MLVU task, up to early 2025).

    Strip the text and delete the answer phrases above; if more than ten words remain and none
    of ``letters`` occurs, there is no answer; otherwise the answer is the **first** capital
    letter of ``letters`` anywhere in the text ("Based on the video, B" gives ``"B"``).
    """
    text = text.strip()
    for phrase in _ANSWER_PHRASES:
        text = text.replace(phrase, "")
    match = re.search(f"[{re.escape(letters)}]", text)
    if match is None:
        return None  # covers the "more than ten words and no letter" case too
    return match.group(0)


_MVBENCH_OPTION = re.compile(r"^([A-E])\.\s*(.+)$", re.IGNORECASE)
_MVBENCH_PUNCTUATION = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)
_COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(,)(\d)")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")


def extract_letter_mvbench(text: str) -> str | None:
    """The option letter (A-E) by lmms-eval's MVBench rule (``mcq_acc``, late 2024).

    A text of the form ``"B. something"`` gives its letter. Otherwise the text is normalised as
    in VQA scoring (newlines and tabs to spaces, punctuation removed or turned into spaces,
    periods not before a digit removed, quotes and brackets stripped, lower-cased) and the
    first stand-alone letter a-e is taken, case-insensitively, so an article "a" reads as A.
    """
    match = _MVBENCH_OPTION.match(text.strip())
    if match:
        return match.group(1).upper()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    text = _vqa_punctuation(text)
    text = text.strip("'").strip('"').strip(")").strip("(").strip().lower()
    match = re.search(r"\b([a-e])\b", text)
    return match.group(1).upper() if match else None


def _vqa_punctuation(text: str) -> str:
    out = text
    for mark in _MVBENCH_PUNCTUATION:
        # The test looks at the original text, not at ``out``, exactly as the reference does.
        if mark + " " in text or " " + mark in text or _COMMA_BETWEEN_DIGITS.search(text):
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    # The reference passes re.UNICODE where re.sub expects ``count``: at most 32 periods go.
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=32)


def extract_letter_mlvu(text: str, letters: str = "ABCD") -> str | None:
    """The option letter by the official MLVU evaluation script (``choice_bench.py``).

    Its prompt ends with ``Best option: (``, so the model is expected to write ``"B) ..."``: the
    character just before the first ``)`` is the answer; a text without ``)`` must be the letter
    itself (surrounding whitespace ignored).
    """
    if ")" in text:
        cut = text.index(")")
        candidate = text[cut - 1 : cut] if cut else ""
    else:
        candidate = text.strip()
    return candidate if len(candidate) == 1 and candidate in letters else None


def match_label(text: str, labels: Sequence[str]) -> str | None:
    """The class label a free-form answer names, for classification posed as QA (Ego-Exo4D).

    Case and surrounding punctuation are ignored. An answer equal to a label gives it; otherwise
    the answer must name exactly one label as whole words ("I'd say Late Expert."), else None.
    PAVE's own scorer for this task is not published; this is the plain reading of it.
    """
    answer = " ".join(text.casefold().split()).strip(" .!,;:\"'")
    named = []
    for label in labels:
        wanted = " ".join(label.casefold().split())
        if answer == wanted:
            return label
        if re.search(rf"\b{re.escape(wanted)}\b", answer):
            named.append(label)
    return named[0] if len(named) == 1 else None
