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
