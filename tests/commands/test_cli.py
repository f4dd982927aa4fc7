"""commands/cli.py: the per-command thread policy (which commands are long work) lives in the CLI layer."""

from maa.commands.cli import LONG_COMMANDS, app, is_long_running


def test_long_running_commands():
    assert is_long_running(["train-ldm", "m.jsonl", "-o", "run"]) and is_long_running(["mel", "clips"])
    assert not is_long_running(["generate", "a dog", "-o", "x.wav"]) and not is_long_running(["--version"])


def test_long_commands_are_commands():
    names = {c.name for c in app.registered_commands}
    assert set(LONG_COMMANDS) <= names, set(LONG_COMMANDS) - names
