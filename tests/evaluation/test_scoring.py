"""Predictions JSONL reading/writing and the per-task scoring protocols on hand-computed cases."""

import json
import shutil
from dataclasses import replace

import pytest

from pave.data.datasets import Sample
from pave.evaluation import PredictionsError, caption_metrics, read_predictions, score, write_predictions


def sample(sample_id, task, **fields):
    return Sample(
        id=sample_id, task=task, source=f"test.json#{sample_id}", question="q", prompt="q", **fields
    )


def choice(sample_id, benchmark, letter, **groups):
    return sample(
        sample_id,
        benchmark,
        answers=("x",),
        options=("w", "x", "y", "z"),
        answer_letter=letter,
        groups=groups,
    )


# --- predictions files


def test_predictions_round_trip_and_append(tmp_path):
    path = tmp_path / "preds.jsonl"
    write_predictions(path, {"a": "B", "b": "ünïcode"})
    write_predictions(path, {"c": ""}, append=True)
    assert read_predictions(path) == {"a": "B", "b": "ünïcode", "c": ""}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"id": "b", "prediction": "x"', "line 2: not valid JSON"),
        ('["b", "x"]', "line 2: expected an object"),
        ('{"id": "b"}', "line 2: missing field 'prediction'"),
        ('{"prediction": "x"}', "line 2: missing field 'id'"),
        ('{"id": 7.5, "prediction": "x"}', "line 2: field 'id' must be a string"),
        ('{"id": true, "prediction": "x"}', "line 2: field 'id' must be a string"),
        ('{"id": "a", "prediction": "x"}', "line 2: id 'a' already appeared on line 1"),
    ],
)
def test_bad_prediction_lines_are_reported_with_file_and_line(tmp_path, line, problem):
    path = tmp_path / "preds.jsonl"
    path.write_text('{"id": "a", "prediction": "A"}\n' + line + "\n")
    with pytest.raises(PredictionsError) as exc:
        read_predictions(path)
    assert str(exc.value).startswith(f"{path}, {problem}")


# --- protocols


def test_integer_ids_match_their_string_form(tmp_path):
    """Official files number their questions; a predictions file may keep the number."""
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": 90001, "prediction": "A"}\n{"id": "90002", "prediction": "B"}\n')
    assert read_predictions(path) == {"90001": "A", "90002": "B"}


def test_counts_missing_and_unknown_predictions():
    samples = [choice(str(i), "videomme", "B", duration="short") for i in range(4)]
    result = score("videomme", samples, {"0": "B", "1": "The answer is C", "stray": "A"})
    assert result["counts"] == {"samples": 4, "scored": 2, "missing": 2, "unknown": 1, "without_reference": 0}
    assert result["metrics"]["accuracy"] == pytest.approx(50.0)


def test_videomme_accuracy_per_duration():
    samples = [
        choice("1", "videomme", "A", duration="short"),
        choice("2", "videomme", "B", duration="short"),
        choice("3", "videomme", "C", duration="long"),
    ]
    metrics = score("videomme", samples, {"1": "A.", "2": "The best answer is B", "3": "Answer: C"})[
        "metrics"
    ]
    assert metrics == pytest.approx(
        {"accuracy": 200 / 3, "accuracy/duration=short": 100.0, "accuracy/duration=long": 0.0}
    )


def test_mvbench_leaves_empty_answers_out_and_averages_tasks():
    samples = [
        choice("t1/0", "mvbench", "A", task="t1"),
        choice("t1/1", "mvbench", "B", task="t1"),
        choice("t2/0", "mvbench", "C", task="t2"),
    ]
    metrics = score("mvbench", samples, {"t1/0": "(A) w", "t1/1": "", "t2/0": "D. z"})["metrics"]
    assert metrics == pytest.approx(
        {
            "accuracy": 50.0,
            "accuracy/task=t1": 100.0,
            "accuracy/task=t2": 0.0,
            "accuracy/mean over task": 50.0,
        }
    )


def test_a_question_without_an_answer_letter_is_always_wrong():
    sample = replace(choice("n/0", "mlvu", "A", task="needle"), answer_letter=None)
    assert score("mlvu", [sample], {"n/0": "no letter here"})["metrics"]["accuracy"] == 0.0


def test_mlvu_reports_micro_and_task_mean():
    samples = [choice(f"p/{i}", "mlvu", "A", task="plotQA") for i in range(3)] + [
        choice("n/0", "mlvu", "A", task="needle")
    ]
    metrics = score("mlvu", samples, {"p/0": "A", "p/1": "A) x", "p/2": "B", "n/0": "B"})["metrics"]
    assert metrics["accuracy"] == pytest.approx(50.0)
    assert metrics["accuracy/mean over task"] == pytest.approx((200 / 3 + 0) / 2)


def test_music_avqa_substring_rule_and_modality_groups():
    samples = [
        sample("1@0", "music_avqa", answers=("two",), groups={"modality": "Audio", "type": "Audio/Counting"}),
        sample(
            "1@1", "music_avqa", answers=("yes",), groups={"modality": "Visual", "type": "Visual/Location"}
        ),
        sample(
            "2@2",
            "music_avqa",
            answers=("acoustic_guitar",),
            groups={"modality": "Audio-Visual", "type": "Audio-Visual/Existential"},
        ),
    ]
    metrics = score("music_avqa", samples, {"1@0": "There are Two.", "1@1": "No", "2@2": "acoustic guitar"})[
        "metrics"
    ]
    assert metrics["accuracy"] == pytest.approx(100 / 3)
    assert metrics["accuracy/modality=Audio"] == 100.0
    assert metrics["accuracy/modality=Visual"] == 0.0
    assert metrics["accuracy/type=Audio-Visual/Existential"] == 0.0


def test_sqa3d_exact_match_per_question_type():
    samples = [
        sample("1", "sqa3d", answers=("left",), groups={"type": "Which"}),
        sample("2", "sqa3d", answers=("two",), groups={"type": "How"}),
        sample("3", "sqa3d", answers=("brown table",), groups={"type": "What"}),
    ]
    metrics = score("sqa3d", samples, {"1": "Left.", "2": "three", "3": "the table"})["metrics"]
    assert metrics["EM@1"] == pytest.approx(100 / 3)
    assert metrics["EM@1 refined"] == pytest.approx(200 / 3)
    assert (
        metrics["EM@1/type=Which"],
        metrics["EM@1 refined/type=What"],
        metrics["EM@1 refined/type=How"],
    ) == (100.0, 100.0, 0.0)


def test_egoexo_proficiency_label_accuracy():
    levels = ("Novice", "Early Expert", "Intermediate Expert", "Late Expert")
    samples = [
        sample(
            "t1",
            "egoexo_proficiency",
            answers=("Late Expert",),
            options=levels,
            groups={"scenario": "Cooking"},
        ),
        sample(
            "t2", "egoexo_proficiency", answers=("Novice",), options=levels, groups={"scenario": "Soccer"}
        ),
    ]
    metrics = score("egoexo_proficiency", samples, {"t1": "late expert.", "t2": "Early Expert"})["metrics"]
    assert metrics == {"accuracy": 50.0, "accuracy/scenario=Cooking": 100.0, "accuracy/scenario=Soccer": 0.0}


def test_samples_without_reference_are_counted_not_scored():
    samples = [choice("1", "avqa", "A", question_type="Which"), sample("2", "avqa")]
    result = score("avqa", samples, {"1": "A", "2": "B"})
    assert result["counts"]["without_reference"] == 1
    assert result["metrics"]["accuracy"] == 100.0


def test_training_set_and_unknown_task_are_refused():
    with pytest.raises(ValueError, match="llava_video is training data"):
        score("llava_video", [], {})
    with pytest.raises(ValueError, match="unknown task"):
        score("kinetics", [], {})


@pytest.mark.skipif(shutil.which("java") is None, reason="caption metrics need java on PATH (pycocoevalcap)")
def test_scanqa_combines_exact_match_and_caption_metrics_on_cleaned_text():
    samples = [
        sample("q0", "scanqa", answers=("brown wooden table", "table"), scene_id="scene0000_00"),
        sample("q1", "scanqa", answers=("on the left side of the bed",), scene_id="scene0000_00"),
    ]
    result = score("scanqa", samples, {"q0": "Wooden table.", "q1": "On the left side of bed"})
    metrics = result["metrics"]
    assert (metrics["EM@1"], metrics["EM@1 refined"]) == (50.0, 100.0)
    # Caption metrics see the cleaned strings (punctuation, case and articles gone).
    cleaned = caption_metrics(
        {"q0": ["brown wooden table", "table"], "q1": ["on left side of bed"]},
        {"q0": "wooden table", "q1": "on left side of bed"},
    )
    assert {name: metrics[name] for name in cleaned} == pytest.approx(
        {k: 100 * v for k, v in cleaned.items()}
    )
    assert json.loads(json.dumps(result)) == result
