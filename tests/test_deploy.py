"""What can be checked about deployment without a Docker engine: the compose file and the image."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from services.cli.main import parser
from services.ingest.app import create_app
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
REDALERT = ("ingest", "classify", "notify")


def test_compose_file_follows_the_compose_specification():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "docker-compose.yml"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_redis_persists_with_aof_and_reports_health():
    redis = SERVICES["redis"]
    assert redis["image"].startswith("redis:7")
    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert redis["healthcheck"]["test"][-1] == "ping"


@pytest.mark.parametrize("name", REDALERT)
def test_each_service_runs_a_real_command_after_redis_is_healthy(name):
    service = SERVICES[name]
    command = service["command"]
    assert command[0] == "redalert"
    args = parser().parse_args(command[1:])  # exits (fails the test) on an unknown command
    assert getattr(args, "service", None) == name
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert service["restart"] in ("always", "unless-stopped", "on-failure")
    assert service["build"] == "."
    assert "healthcheck" in service
    health = service["healthcheck"]["test"]
    if health[1] == "redalert":
        parser().parse_args(health[2:])


@pytest.mark.parametrize("name", REDALERT)
def test_services_set_only_settings_that_exist(name):
    fields = {f"REDALERT_{f.upper()}" for f in Settings.model_fields}
    env = SERVICES[name]["environment"]
    assert env["REDALERT_REDIS_URL"] == "redis://redis:6379/0"
    assert set(env) <= fields


def test_ingest_is_published_and_checked_on_readyz():
    ingest = SERVICES["ingest"]
    assert ingest["environment"]["REDALERT_HTTP_HOST"] == "0.0.0.0"
    assert any(p.endswith(":8080") for p in ingest["ports"])
    probe = " ".join(ingest["healthcheck"]["test"])
    path = re.search(r"http://127\.0\.0\.1:8080(/\w+)", probe).group(1)
    routes = set(create_app(Settings(_env_file=None)).openapi()["paths"])
    assert path in routes


def test_dockerfile_copies_what_exists_and_runs_redalert():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (\S+)", dockerfile, re.M):
        assert (ROOT / source).exists(), source
    cmd = re.search(r"^CMD (\[.*\])", dockerfile, re.M).group(1)
    args = yaml.safe_load(cmd)
    assert args[0] == "redalert"
    parser().parse_args(args[1:])
