#!/usr/bin/env python3
"""Set up and run redalert with nothing but Python 3.11+.

    python3 dev.py up      # create .venv, install, run redalert (ingest + classify + notify)
    python3 dev.py test    # create .venv, install with test tools, lint and run the tests
    python3 dev.py bench   # run the benchmarks in bench/

The virtual environment is rebuilt when pyproject.toml changes.
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"


def ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py may be run by an older python3)
        sys.exit(f"redalert needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    stamp = VENV / ".installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print("dev.py: creating .venv", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("dev.py: installing redalert and its dependencies into .venv", file=sys.stderr)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f".{extras}"], check=True, cwd=ROOT)
    stamp.write_text(wanted)


def run(*cmd: str) -> int:
    return subprocess.call(cmd, cwd=ROOT)


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "help"
    rest = sys.argv[2:]
    if command == "up":
        ensure_venv("")
        return run(str(BIN / "redalert"), "up", *rest)
    if command == "test":
        ensure_venv("[dev]")
        ruff = str(BIN / "ruff")
        lint = run(ruff, "check", ".") or run(ruff, "format", "--check", ".")
        if lint:
            return lint
        return run(str(PYTHON), "-m", "pytest", *rest)
    if command == "bench":
        ensure_venv("[dev]")
        code = 0
        for script in sorted((ROOT / "bench").glob("*.py")):
            code |= run(str(PYTHON), str(script), *rest)
        return code
    print(__doc__)
    return 0 if command in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main())
