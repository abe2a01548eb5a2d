import pytest

from pave.cli import COMMANDS, build_parser, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: pave" in capsys.readouterr().out


def test_every_command_has_a_handler():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert set(subparsers.choices) == set(COMMANDS)
    for name, sub in subparsers.choices.items():
        assert callable(sub.get_default("func")), name


def test_public_api_imports_lazily():
    import subprocess
    import sys

    code = "import sys, pave; assert 'transformers' not in sys.modules; pave.PatchConfig; pave.PatchedModel"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_help_imports_neither_torch_nor_transformers():
    """`pave --help` and every subcommand's parser stay fast: no torch before a command runs."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom pave.cli import build_parser\nbuild_parser()\n"
        "loaded = [m for m in ('torch', 'transformers') if m in sys.modules]\nassert not loaded, loaded"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
