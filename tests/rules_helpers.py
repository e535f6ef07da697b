"""What the rules tests share: the shipped rules, a one-cue rules file, and an API client."""

import httpx

from shared.settings import PROJECT_ROOT, Settings

SHIPPED = (PROJECT_ROOT / "config" / "rules.yaml").read_text()
KETTLE = """\
cues:
  - id: kettle
    severity: red_alert
    weight: 2
    phrases: [kettle]
"""


def api(settings: Settings, token: str | None = None) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{settings.http_port}", headers=headers, timeout=10
    )
