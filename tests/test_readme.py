"""The README documents every setting, and its two first commands are the ones CI runs."""

from pathlib import Path

from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented():
    missing = [
        f"REDALERT_{name.upper()}"
        for name in Settings.model_fields
        if f"`REDALERT_{name.upper()}`" not in README
    ]
    assert missing == []


def test_ci_runs_the_readme_test_command():
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    assert "python3 dev.py up" in first_block
    assert "python3 dev.py test" in first_block
    assert "dev.py test" in (ROOT / ".ci" / "run").read_text()


def test_every_file_the_readme_names_ships():
    import re

    named = set(re.findall(r"\b(?:config|examples|deploy|bench|tests/data)/[\w./-]*\w", README))
    named -= {p for p in named if p.endswith(".previous")}  # backups commands leave behind
    assert named, "the pattern no longer finds the README's files"
    assert sorted(p for p in named if not (ROOT / p).exists()) == []


def test_every_cli_option_has_help():
    import argparse

    from services.cli.main import parser

    missing: list[str] = []

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(parser(), "redalert")
    assert missing == []
