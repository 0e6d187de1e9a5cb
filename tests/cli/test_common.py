import argparse

from langtts.cli import build_parser
from langtts.cli.common import add_command, arguments


def _handler(args: argparse.Namespace) -> int:
    """check a thing: 95% of it

    Check the thing, all of it,
    twice."""
    return 0


def test_a_command_takes_its_help_and_description_from_the_handler_docstring() -> None:
    parser = argparse.ArgumentParser(prog="p")
    commands = parser.add_subparsers(dest="command")
    sub = add_command(commands, "check", _handler)
    assert "check a thing: 95% of it" in parser.format_help()  # a literal %, not a format
    assert "Check the thing, all of it, twice." in sub.format_help()
    assert parser.parse_args(["check"]).handler is _handler


def test_every_command_has_help_and_a_description() -> None:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    helps = {action.dest: action.help for action in commands._choices_actions}
    for name, sub in commands.choices.items():
        assert helps[name] and sub.description, name


def test_arguments_are_the_named_values() -> None:
    args = argparse.Namespace(a=1, b=None, c="x")
    assert arguments(args, "a", "b") == {"a": 1, "b": None}
