"""The CI guide and the README say what the command does: the exit codes are its table,
and every `pushbutton` line of their examples is one the command accepts."""

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml
from pushbutton_cli.cli import cli
from pushbutton_cli.exits import Exit, table

BASE = Path(__file__).resolve().parent.parent.parent
GUIDE = (BASE / "docs" / "ci.md").read_text()
README = (BASE / "README.md").read_text()
# What the examples' shell expands, as a job would.
EXPANDED = {
    '"$(cat VERSION)"': "1.2.3",
    '"${GITHUB_REF_NAME#v}"': "1.2.3",
    '"${CI_COMMIT_TAG#v}"': "1.2.3",
}


def _blocks(text: str) -> list[tuple[str, str]]:
    return re.findall(r"```(\w+)\n(.*?)```", text, re.S)


def _commands(text: str) -> list[str]:
    lines = []
    for _, block in _blocks(text):
        for line in block.splitlines():
            match = re.search(r"(?:^|- run: |- )pushbutton (.+)$", line.strip())
            if match:
                lines.append(match.group(1))
    return lines


COMMANDS = _commands(GUIDE) + _commands(README)


@pytest.mark.parametrize("document", ["docs/ci.md", "README.md"])
def test_the_exit_codes_are_the_commands_own_table(document):
    text = (BASE / document).read_text()

    assert table() in text
    assert [int(code) for code in Exit] == list(range(11))


@pytest.mark.parametrize("line", COMMANDS)
def test_each_example_is_a_command_pushbutton_accepts(line):
    for text, value in EXPANDED.items():
        line = line.replace(text, value)
    args = shlex.split(line, comments=True)
    group = click.Context(cli, info_name="pushbutton")
    command = cli.get_command(group, args[0])

    assert command is not None, f"no command {args[0]!r}"
    command.make_context(args[0], args[1:], parent=group)  # raises on a wrong option


def test_the_examples_cover_the_pipeline():
    verbs = {line.split()[0] for line in COMMANDS}

    assert {"deploy", "promote", "rollback", "run"} <= verbs
    assert len(COMMANDS) >= 10


def test_the_pipelines_are_valid_yaml_deploying_after_tests_and_promoting_on_tags():
    github, gitlab = (yaml.safe_load(block) for kind, block in _blocks(GUIDE) if kind == "yaml")

    jobs = github["jobs"]
    assert jobs["deploy-test"]["needs"] == "test"
    assert jobs["deploy-test"]["if"] == "github.ref == 'refs/heads/main'"
    assert jobs["promote-qa"]["if"].startswith("startsWith(github.ref, 'refs/tags/v')")
    assert github[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads the key `on` as true
    assert gitlab["stages"] == ["test", "deploy"]
    assert "CI_COMMIT_TAG" in gitlab["promote-qa"]["rules"][0]["if"]
    for job in (jobs["deploy-test"], jobs["promote-qa"]):
        assert job["env"]["PUSHBUTTON_TOKEN"] == "${{ secrets.PUSHBUTTON_TOKEN }}"


def test_no_example_puts_a_token_on_the_command_line():
    for text in (GUIDE, README):
        assert "--token" not in text
        assert not re.search(r"PUSHBUTTON_TOKEN=\S", text)
