"""Metrics behind PAVE's tables: COCO caption metrics, (refined) exact match, grouped accuracy.

All functions return fractions in [0, 1] (CIDEr can exceed 1); :func:`pave.evaluation.score`
multiplies by 100 as the paper's tables do.
"""

from __future__ import annotations

import functools
import re
import shutil
from collections.abc import Mapping, Sequence

#: Caption metrics reported for AVSD and ScanQA, in the paper's column order.
CAPTION_METRICS = ("CIDEr", "BLEU-4", "METEOR", "ROUGE-L")


class MissingDependencyError(RuntimeError):
    """A metric needs a package or program that is not installed; the message says which."""


def caption_metrics(
    references: Mapping[str, Sequence[str]], predictions: Mapping[str, str]
) -> dict[str, float]:
    """Corpus-level CIDEr (CIDEr-D), BLEU-4, METEOR and ROUGE-L over the ids of ``predictions``.

    The coco-caption protocol: every string goes through pycocoevalcap's PTBTokenizer (Stanford
    PTB tokenisation, lower-casing, punctuation removed), then each scorer sees all references of
    an id against its single prediction. Needs ``pycocoevalcap`` and a Java runtime (the
    tokenizer and METEOR are Java programs).
    """
    missing = [key for key in predictions if not references.get(key)]
    if missing:
        raise ValueError(f"no reference for {len(missing)} prediction id(s), e.g. {missing[0]!r}")
    if not predictions:
        raise ValueError("no predictions to score")
    bleu, meteor, rouge, cider, tokenizer = _coco_scorers()
    gts = tokenizer.tokenize({key: [{"caption": ref} for ref in references[key]] for key in predictions})
    res = tokenizer.tokenize({key: [{"caption": text}] for key, text in predictions.items()})
    bleu_scores, _ = bleu.compute_score(gts, res, verbose=0)
    return {
        "CIDEr": cider.compute_score(gts, res)[0],
        "BLEU-4": bleu_scores[3],
        "METEOR": meteor.compute_score(gts, res)[0],
        "ROUGE-L": rouge.compute_score(gts, res)[0],
    }


def _coco_scorers():
    try:
        import pycocoevalcap  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "caption metrics need pycocoevalcap: pip install 'pave-patches[eval]' (or pip install pycocoevalcap)"
        ) from exc
    if shutil.which("java") is None:
        raise MissingDependencyError(
            "caption metrics need a Java runtime on PATH (pycocoevalcap's PTB tokenizer and METEOR are "
            "Java programs): install one, e.g. apt-get install default-jre-headless"
        )
    return _started_scorers()


@functools.cache
def _started_scorers():
    # Built once per process: METEOR keeps one Java process alive and takes seconds to start.
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    return Bleu(4), Meteor(), Rouge(), Cider(), PTBTokenizer()


# ---------------------------------------------------------------------------------------------
# Exact match for ScanQA / SQA3D, as LLaVA-3D's evaluators compute it (answer cleaning from LEO)

_TYPOS = {
    "letf": "left",
    "let": "left",
    "tehre": "there",
    "rigth": "right",
    "rght": "right",
    "behine": "behind",
    "tv": "TV",
    "chai": "chair",
    "wasing": "washing",
    "waslked": "walked",
    "oclock": "o'clock",
}
_NUMBERS = {
    "0": "zero",
    "none": "zero",
    **{
        str(n): word
        for n, word in enumerate(
            "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
            "sixteen seventeen eighteen nineteen twenty".split(),
            start=1,
        )
    },
    "23": "twenty-three",
}
_TYPO_WORD = re.compile(r"\b(" + "|".join(_TYPOS) + r")\b")
_NUMBER_WORD = re.compile(r"\b(" + "|".join(sorted(_NUMBERS, key=len, reverse=True)) + r")\b")


def clean_answer(text: str) -> str:
    """Normalise an answer the way LLaVA-3D's ScanQA/SQA3D evaluators do (LEO's ``clean_answer``).

    In order: lower-case; trim and squeeze spaces; drop every character that is not an ASCII
    letter, digit, comma, apostrophe, whitespace, hyphen or colon; fix a few typos (note that
    ``let`` becomes ``left`` and ``tv`` becomes ``TV``); spell out 0-20, 23 and ``none`` (zero);
    drop one trailing digit from a word (``mat2``); drop ``a``/``an``/``the`` before a word; and
    ``backwards`` becomes ``backward``.
    """
    text = text.lower()
    text = re.sub(r" +$", "", text)
    text = re.sub(r"^ +", "", text)
    text = re.sub(r" {2,}", " ", text)
    text = re.sub(r"\. {2,}", ". ", text)
    text = re.sub(r"[^a-zA-Z0-9,'\s\-:]+", "", text)
    text = _TYPO_WORD.sub(lambda m: _TYPOS[m.group(1)], text)
    text = re.sub(r"\bo'[ ]+clock\b", "o'clock", text)
    text = _NUMBER_WORD.sub(lambda m: _NUMBERS[m.group(1)], text)
    text = re.sub(r"\b([a-zA-Z]+)([0-9])\b", r"\1", text)
    # One pass per article, in this order, as the reference does ("the a cup" -> "cup").
    for article in ("a", "an", "the"):
        text = re.sub(rf"\b{article}\b ([a-zA-Z]+)", r"\1", text)
    return re.sub(r"\bbackwards\b", "backward", text)


def exact_match(prediction: str, references: Sequence[str]) -> tuple[bool, bool]:
    """EM@1 and refined EM of one prediction, both strings cleaned with :func:`clean_answer` first.

    EM: the prediction equals a reference. Refined EM: EM, or, with all whitespace removed, the
    prediction is a substring of a reference or a reference of the prediction (so an empty
    prediction always gets refined credit, as in the reference implementation).
    """
    pred = clean_answer(prediction)
    refs = [clean_answer(r) for r in references]
    if pred in refs:
        return True, True
    squeezed = "".join(pred.split())
    for ref in refs:
        ref_squeezed = "".join(ref.split())
        if squeezed in ref_squeezed or ref_squeezed in squeezed:
            return False, True
    return False, False


# ---------------------------------------------------------------------------------------------
# Accuracy, overall and per group


def grouped_accuracy(
    correct: Sequence[bool | float],
    groups: Sequence[Mapping[str, str]],
    name: str = "accuracy",
    macro: Sequence[str] = (),
) -> dict[str, float]:
    """Mean of ``correct`` overall and per value of every group dimension (pooled, i.e. micro).

    Keys: ``name``; ``"<name>/<dimension>=<value>"`` for each dimension of ``groups`` (values in
    order of first appearance); ``"<name>/mean over <dimension>"`` (the unweighted mean of that
    dimension's per-value accuracies) for each dimension in ``macro``.
    """
    if len(correct) != len(groups):
        raise ValueError(f"{len(correct)} results but {len(groups)} group labels")
    if not correct:
        return {}
    buckets: dict[str, dict[str, list[float]]] = {}
    for value, labels in zip(correct, groups, strict=True):
        for dimension, label in labels.items():
            buckets.setdefault(dimension, {}).setdefault(label, []).append(float(value))
    result = {name: sum(map(float, correct)) / len(correct)}
    for dimension, per_label in buckets.items():
        for label, values in per_label.items():
            result[f"{name}/{dimension}={label}"] = sum(values) / len(values)
    for dimension in macro:
        if dimension in buckets:
            means = [sum(v) / len(v) for v in buckets[dimension].values()]
            result[f"{name}/mean over {dimension}"] = sum(means) / len(means)
    return result
