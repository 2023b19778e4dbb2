"""``POST /gate``: the CLI's gate over HTTP, for CI — one run per build, judged once, safe to
retry with an idempotency key."""
