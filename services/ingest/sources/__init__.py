"""Sources: where posts come from without anyone pushing them by hand.

- `spec` — what a source is (rss, mastodon, webhook), as the API, the CLI and the sources file
  declare it; validated, with its secrets kept out of every answer.
- `rss`, `mastodon` — each kind's pure parsing (a feed or a page of statuses -> Posts) and the
  requests it makes (conditional GET, since_id paging).
- `fetch`, `schedule` — one HTTP request with its limits and failures; when to poll next.
- `store` — sources, cursors, status and leases in Redis.
- `poller` — the loop every ingest replica runs: poll the sources that are due, one replica per
  source at a time (a lease), publish new posts exactly once, keep the cursor, back off on errors.
"""
