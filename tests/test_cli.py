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
