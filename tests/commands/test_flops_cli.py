"""``pave flops``: the CLI over :func:`pave.flops.account`."""

import json

from pave.cli import main


def test_json_output(capsys):
    argv = [
        "flops",
        "--base",
        "llava-onevision-0.5b",
        "--method",
        "interleave",
        "--side-channel",
        "3d",
        "--json",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert round(result["tflops_llm"], 2) == 71.41
    assert result["tflops_total"] == result["tflops_llm"] + result["tflops_patch"]
    assert result["params_total"] > result["params_trainable"] > 0


def test_table_output(capsys):
    argv = ["flops", "--base", "llava-onevision-7b", "--method", "pave", "--side-channel", "audio"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "TFLOPs total" in out and "98.63" in out and "170.5M" in out


def test_options_reach_the_accounting(capsys):
    argv = [
        "flops",
        "--base",
        "llava-onevision-0.5b",
        "--method",
        "ft",
        "--frames",
        "8",
        "--text-tokens",
        "10",
    ]
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["llm_tokens"] == 8 * 196 + 10


def test_a_missing_side_channel_is_an_error(caplog):
    assert main(["flops", "--base", "llava-onevision-0.5b", "--method", "pave"]) == 1
    assert "needs a side channel" in caplog.text


def test_features_size_the_side_channel_as_a_recipe_trains_on_it(synthetic_bench, capsys):
    """The synthetic store's audio items are 256-d (the built-in encoder), not ImageBind's 1024."""
    base = ["flops", "--base", "llava-onevision-0.5b", "--method", "pave", "--json"]
    assert main([*base, "--features", str(synthetic_bench["audio"])]) == 0
    ours = json.loads(capsys.readouterr().out)
    assert main([*base, "--side-channel", "audio"]) == 0
    papers = json.loads(capsys.readouterr().out)
    assert papers["params_trainable"] - ours["params_trainable"] == (1024 - 256) * 512  # the input map
    assert ours["side_channel"] == "custom"
    assert main([*base, "--features", str(synthetic_bench["root"] / "nowhere")]) == 1
