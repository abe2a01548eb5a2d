"""Metrics against hand-computed values, and caption metrics against pycocoevalcap called directly."""

import shutil
import sys

import pytest

from pave.evaluation import (
    MissingDependencyError,
    caption_metrics,
    clean_answer,
    exact_match,
    grouped_accuracy,
)

needs_java = pytest.mark.skipif(
    shutil.which("java") is None,
    reason="pycocoevalcap's PTB tokenizer and METEOR are Java programs and java is not on PATH",
)


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("The TV.", "TV"),
        ("  Let   side  ", "left side"),
        ("2 chairs", "two chairs"),
        ("None", "zero"),
        ("23", "twenty-three"),
        ("mat2", "mat"),
        ("a brown chair.", "brown chair"),
        ("the a cup", "cup"),
        ("Walking backwards!", "walking backward"),
        ("3 o' clock", "three o'clock"),
        ("café / bar", "caf  bar"),
        ("Right?", "right"),
        ("under the desk, near a lamp", "under desk, near lamp"),
    ],
)
def test_clean_answer(raw, cleaned):
    assert clean_answer(raw) == cleaned


@pytest.mark.parametrize(
    ("prediction", "references", "expected"),
    [
        ("Table.", ["brown wooden table", "table"], (True, True)),
        ("two", ["2"], (True, True)),
        ("wooden table", ["brown wooden table"], (False, True)),
        ("brown wooden table in the corner", ["brown wooden table"], (False, True)),
        ("browntable", ["brown table"], (False, True)),
        ("brown table", ["brown wooden table"], (False, False)),
        ("", ["chair"], (False, True)),
    ],
)
def test_exact_match(prediction, references, expected):
    assert exact_match(prediction, references) == expected


def test_grouped_accuracy_micro_and_macro():
    correct = [True, False, True, True, False]
    groups = [{"task": "a"}, {"task": "a"}, {"task": "a"}, {"task": "b"}, {"task": "c"}]
    result = grouped_accuracy(correct, groups, macro=["task"])
    assert result == pytest.approx(
        {
            "accuracy": 3 / 5,
            "accuracy/task=a": 2 / 3,
            "accuracy/task=b": 1.0,
            "accuracy/task=c": 0.0,
            "accuracy/mean over task": (2 / 3 + 1 + 0) / 3,
        }
    )
    assert list(result)[1:4] == ["accuracy/task=a", "accuracy/task=b", "accuracy/task=c"]


REFERENCES = {
    "v1": ["a man is walking out of the room", "he leaves the room"],
    "v2": ["no , there is no speech ."],
    "v3": ["she puts the towel on the bed"],
}
PREDICTIONS = {
    "v1": "A man walks out of the room.",
    "v2": "No, nobody speaks.",
    "v3": "she puts a towel on a bed",
}


@needs_java
def test_caption_metrics_equal_pycocoevalcap_called_directly():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    from pave.evaluation.metrics import _started_scorers

    # A second METEOR Java process would take many seconds to start: use the one already running.
    meteor = _started_scorers()[1]
    assert isinstance(meteor, Meteor)
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": r} for r in refs] for k, refs in REFERENCES.items()})
    res = tokenizer.tokenize({k: [{"caption": p}] for k, p in PREDICTIONS.items()})
    expected = {
        "CIDEr": Cider().compute_score(gts, res)[0],
        "BLEU-4": Bleu(4).compute_score(gts, res, verbose=0)[0][3],
        "METEOR": meteor.compute_score(gts, res)[0],
        "ROUGE-L": Rouge().compute_score(gts, res)[0],
    }
    assert caption_metrics(REFERENCES, PREDICTIONS) == pytest.approx(expected)


@needs_java
def test_caption_metrics_are_perfect_for_identical_text():
    refs = {"a": ["the cat sat on the warm mat today"], "b": ["a dog ran across the green park"]}
    preds = {k: v[0] for k, v in refs.items()}
    result = caption_metrics(refs, preds)
    assert result["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert result["ROUGE-L"] == pytest.approx(1.0)
    assert result["METEOR"] == pytest.approx(1.0)


def test_caption_metrics_need_a_reference_per_prediction():
    with pytest.raises(ValueError, match="no reference for 1 prediction"):
        caption_metrics({"a": ["x"]}, {"a": "x", "b": "y"})


def test_caption_metrics_name_what_to_install(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(MissingDependencyError, match="Java runtime"):
        caption_metrics({"a": ["x"]}, {"a": "x"})
    monkeypatch.setitem(sys.modules, "pycocoevalcap", None)
    with pytest.raises(MissingDependencyError, match="pip install pycocoevalcap"):
        caption_metrics({"a": ["x"]}, {"a": "x"})
