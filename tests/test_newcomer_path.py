"""A newcomer's first command on a machine without Redis: `redalert up` brings its own, and the demo
shows the seed thread's alerts. The "machine without Redis" is a fresh network namespace, where
nothing listens on 127.0.0.1:6379 (needs unprivileged user namespaces; skipped where unavailable).
"""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _namespaces_work(), reason="needs `unshare -rn` to simulate a machine without Redis"
)

DRIVER = textwrap.dedent(
    """
    set -e
    ip link set lo up 2>/dev/null || true
    "$BIN/redalert" up > "$OUT/up.log" 2>&1 &
    UP=$!
    HEALTH="import httpx; httpx.get('http://127.0.0.1:8080/healthz')"
    for i in $(seq 1 100); do
      "$BIN/python" -c "$HEALTH" 2>/dev/null && break
      sleep 0.2
    done
    "$BIN/redalert" demo --delay 0 > "$OUT/demo.log" 2>&1
    kill -INT $UP
    wait $UP
    """
)


def test_up_starts_an_embedded_redis_and_the_demo_tells_the_story(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDALERT_")} | {
        "BIN": str(BIN),
        "OUT": str(tmp_path),
        "REDALERT_DATA_DIR": str(tmp_path / "data"),
        "REDALERT_HTTP_PORT": "8080",
    }
    run = subprocess.run(
        ["unshare", "-rn", "bash", "-c", DRIVER], env=env, cwd=tmp_path, timeout=120
    )
    up = (tmp_path / "up.log").read_text()
    demo = (tmp_path / "demo.log").read_text()
    assert run.returncode == 0, up + demo
    assert "started an embedded valkey-server" in up
    assert "[RED ALERT]" in up
    assert "[ALL CLEAR]" in up
    assert "[RESOLVED]" in up
    assert "resolved, 14 posts" in demo
    assert "redalert stopped" in up
    # Its data persisted with AOF, so the next `redalert up` finds the incident again.
    assert any((tmp_path / "data").rglob("*.aof*"))
