"""`pave eval` on the tiny model: predictions, metrics with cost, resume after a partial run."""

import json

import pytest
import torch

from pave.cli import main
from pave.models.patched import PatchedModel


def test_eval_writes_predictions_and_metrics_and_resumes(tiny_model_dir, synthetic_bench, tmp_path, capsys):
    model = PatchedModel.from_base(str(tiny_model_dir))
    model.add_patch("audio", model.patch_config(side_dim=256, side_channel="audio", hidden_dim=16, num_heads=2))
    with torch.no_grad():
        model.patches["audio"].output_norm.weight.normal_()
    patch = model.save_pretrained(tmp_path / "patch")
    out = tmp_path / "eval"
    args = [
        "eval", "--task", "music_avqa", "--annotations", str(synthetic_bench["test"]),
        "--media-root", str(synthetic_bench["root"]), "--patch", str(patch),
        "--features", f"audio={synthetic_bench['audio']}", "--out", str(out),
        "--frames", "4", "--max-new-tokens", "3", "--batch-size", "5",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "accuracy/modality=Audio" in printed and "Prefill TFLOPs" in printed
    lines = (out / "predictions.jsonl").read_text().splitlines()
    expected = len(json.loads(synthetic_bench["test"].read_text()))
    assert len(lines) == expected
    report = json.loads((out / "metrics.json").read_text())
    assert report["counts"]["scored"] == expected
    assert report["cost"]["flops_patch"] > 0 and report["cost"]["params_trainable"] > 0
    # The task's protocol is recorded, and what this run does differently is said.
    protocol = report["protocol"]
    assert protocol["source"].startswith("authors' eval_pave_music_avqa.py") and protocol["max_new_tokens"] == 1024
    assert protocol["used"] == {"system_prompt": "You are a helpful assistant.", "max_new_tokens": 3, "num_frames": 4}
    assert [d.split(":")[0] for d in protocol["deviations"]] == ["max_new_tokens", "num_frames"]
    assert "Settings that differ from it: max_new_tokens: 3 (the protocol's is 1024)" in printed

    # A run killed half-way resumes: only the missing answers are generated.
    (out / "predictions.jsonl").write_text("\n".join(lines[:4]) + "\n")
    assert main(args) == 0
    resumed = (out / "predictions.jsonl").read_text().splitlines()
    assert resumed[:4] == lines[:4] and sorted(resumed) == sorted(lines)


def test_eval_names_a_missing_feature_store(tiny_model_dir, synthetic_bench, tmp_path, caplog, capsys):
    model = PatchedModel.from_base(str(tiny_model_dir))
    model.add_patch("audio", model.patch_config(side_dim=256, side_channel="audio"))
    patch = model.save_pretrained(tmp_path / "patch")
    args = [
        "eval", "--task", "music_avqa", "--annotations", str(synthetic_bench["test"]),
        "--media-root", str(synthetic_bench["root"]), "--patch", str(patch), "--out", str(tmp_path / "e"),
    ]
    assert main(args) == 1
    assert "side channel(s) ['audio']" in caplog.text and "Traceback" not in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"side channel\(s\) \['audio'\]"):
        main(["-v", *args])  # -v keeps the traceback
