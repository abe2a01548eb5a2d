"""The generic `qa` task: a plain file of your own questions, loaded, checked and scored."""

import json

import pytest

from pave.data.datasets import AnnotationError, load_samples
from pave.evaluation import score


def write(path, records):
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def test_free_form_multiple_choice_and_conversation(tmp_path):
    path = write(
        tmp_path / "mine.json",
        {
            "questions": [
                {"video": "a.mp4", "question": "What colour?", "answer": "Red"},
                {"id": 7, "video": "b.mp4", "question": "Which one?", "choices": ["cat", "dog"], "answer": "B"},
                {
                    "video": "c.mp4",
                    "question": "And then?",
                    "answer": "It left.",
                    "conversation": [{"question": "Who came?", "answer": "A man."}],
                    "side": {"audio": "c.wav", "exo": ["c1.mp4", "c2.mp4"]},
                },
            ]
        },
    )
    free, choice, dialog = load_samples("qa", [path])
    assert (free.id, free.metric, free.answers, free.prompt) == ("mine-0", "exact_match", ("Red",), "What colour?")
    assert (choice.id, choice.answer_letter, choice.answers) == ("7", "B", ("dog",))
    assert dialog.history == (("Who came?", "A man."),)
    assert dialog.side_channels == {"audio": ("c.wav",), "video": ("c.mp4",), "exo": ("c1.mp4", "c2.mp4")}


def test_scores_each_kind_by_its_protocol(tmp_path):
    records = [
        {"id": "m1", "video": "a.mp4", "question": "Q?", "choices": ["x", "y", "z"], "answer": "y"},
        {"id": "m2", "video": "a.mp4", "question": "Q?", "choices": ["x", "y", "z"], "answer": "z"},
        {"id": "e1", "video": "a.mp4", "question": "Q?", "answer": "the red ball"},
        {"id": "c1", "video": "a.mp4", "question": "Q?", "answer": "a man walks in", "metric": "caption"},
    ]
    samples = load_samples("qa", [write(tmp_path / "q.json", records)])
    metrics = score("qa", samples, {"m1": "B.", "m2": "(A)", "e1": "red", "c1": "a man walks in"})["metrics"]
    assert metrics["accuracy"] == 50.0
    assert metrics["EM@1"] == 0.0 and metrics["EM@1 refined"] == 100.0
    assert {"CIDEr", "BLEU-4", "METEOR"} <= set(metrics) and metrics["ROUGE-L"] == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("record", "field", "problem"),
    [
        ({"video": "a.mp4"}, "question", "missing"),
        ({"question": "Q?"}, "video", "missing"),
        ({"video": "a.mp4", "question": "Q?", "choices": ["x", "y"], "answer": "w"}, "answer", "not one of the candidates"),
        ({"video": "a.mp4", "question": "Q?", "metric": "bleu"}, "metric", "expected one of"),
        ({"video": "a.mp4", "question": "Q?", "choices": ["x", "y"], "answer": "x", "metric": "caption"}, "metric", "the choices decide"),
        ({"video": "a.mp4", "question": "Q?", "answer": 3}, "answer", "expected a string or a list"),
    ],
)
def test_bad_records_name_the_field(tmp_path, record, field, problem):
    path = write(tmp_path / "bad.json", [record])
    with pytest.raises(AnnotationError, match=rf"bad.json, record 0, field '{field}': .*{problem}"):
        load_samples("qa", [path])


def test_jsonl_line_that_is_not_json(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"video": "a.mp4", "question": "Q?"}\n{oops\n')
    with pytest.raises(AnnotationError, match="line 2 is not valid JSON"):
        load_samples("qa", [path])
