"""``pave score`` and ``pave ids`` end to end through ``pave.cli.main``."""

import json
import shutil

import pytest

from pave.cli import main

MLVU_RECORDS = [
    {
        "video": f"movie_{i}.mp4",
        "duration": 300,
        "question": f"Question {i}?",
        "candidates": ["Red", "Blue", "Black", "White"],
        "answer": answer,
        "question_type": task,
    }
    for i, (answer, task) in enumerate([("Blue", "plotQA"), ("Red", "plotQA"), ("White", "plotQA")])
]


@pytest.fixture
def mlvu_files(tmp_path):
    annotations = tmp_path / "1_plotQA.json"
    annotations.write_text(json.dumps(MLVU_RECORDS))
    needle = tmp_path / "2_needle.json"
    needle.write_text(json.dumps([{**MLVU_RECORDS[0], "question_type": "findNeedle"}]))
    predictions = tmp_path / "preds.jsonl"
    lines = [
        {"id": "1_plotQA/0", "prediction": "B) Blue"},
        {"id": "1_plotQA/1", "prediction": "The answer is A."},
        {"id": "1_plotQA/2", "prediction": "C"},
        {"id": "2_needle/0", "prediction": "B"},
    ]
    predictions.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return annotations, needle, predictions


def test_ids_prints_one_id_per_line(mlvu_files, capsys):
    annotations, needle, _ = mlvu_files
    assert main(["ids", "--task", "mlvu", "--annotations", str(annotations), str(needle)]) == 0
    assert capsys.readouterr().out.splitlines() == ["1_plotQA/0", "1_plotQA/1", "1_plotQA/2", "2_needle/0"]


def test_score_prints_a_markdown_table(mlvu_files, capsys):
    annotations, needle, predictions = mlvu_files
    argv = [
        "score",
        "--task",
        "mlvu",
        "--annotations",
        str(annotations),
        str(needle),
        "--predictions",
        str(predictions),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["| mlvu | value |", "| --- | ---: |"]
    assert "| accuracy | 75.00 |" in out
    assert "| accuracy/task=plotQA | 66.67 |" in out
    assert "| accuracy/mean over task | 83.33 |" in out
    assert out[-1].startswith("4 of 4 samples scored; 0 without a prediction")


def test_score_json_and_out_file(mlvu_files, tmp_path, capsys):
    annotations, _, predictions = mlvu_files
    out_file = tmp_path / "metrics.json"
    argv = [
        "score",
        "--task",
        "mlvu",
        "--annotations",
        str(annotations),
        "--predictions",
        str(predictions),
        "--json",
    ]
    assert main([*argv, "--out", str(out_file)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out_file.read_text())
    # Predictions for the needle file, which was not loaded, are unknown ids.
    assert printed["counts"] == {
        "samples": 3,
        "scored": 3,
        "missing": 0,
        "unknown": 1,
        "without_reference": 0,
    }
    assert printed["metrics"]["accuracy"] == pytest.approx(200 / 3)


def test_score_reports_bad_input_without_a_traceback(mlvu_files, tmp_path, caplog):
    annotations, _, _ = mlvu_files
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "1_plotQA/0"}\n')
    argv = ["score", "--task", "mlvu", "--annotations", str(annotations), "--predictions", str(broken)]
    assert main(argv) == 1
    assert f"{broken}, line 1: missing field 'prediction'" in caplog.text
    annotations.write_text(json.dumps([{**MLVU_RECORDS[0], "candidates": "Red"}]))
    assert main(["ids", "--task", "mlvu", "--annotations", str(annotations)]) == 1
    assert "record 0, field 'candidates'" in caplog.text


@pytest.mark.skipif(
    shutil.which("java") is None, reason="AVSD's caption metrics need java on PATH (pycocoevalcap)"
)
def test_score_avsd_captions(tmp_path, capsys):
    dialogs = [
        {
            "image_id": "Q7ZK1",
            "dialog": [{"question": "what happens ?", "answer": "a man walks out of the room ."}],
        },
        {"image_id": "ZZ9P0", "dialog": [{"question": "any sound ?", "answer": "no , it is silent ."}]},
    ]
    annotations = tmp_path / "mock_test_set4DSTC10-AVSD_from_DSTC7_singref.json"
    annotations.write_text(json.dumps({"dialogs": dialogs}))
    predictions = tmp_path / "preds.jsonl"
    predictions.write_text(
        '{"id": "Q7ZK1", "prediction": "A man walks out of the room."}\n{"id": "ZZ9P0", "prediction": "No, it is silent."}\n'
    )
    argv = [
        "score",
        "--task",
        "avsd",
        "--annotations",
        str(annotations),
        "--predictions",
        str(predictions),
        "--json",
    ]
    assert main(argv) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    assert list(metrics) == ["CIDEr", "BLEU-4", "METEOR", "ROUGE-L"]
    assert metrics["ROUGE-L"] == pytest.approx(100.0)
