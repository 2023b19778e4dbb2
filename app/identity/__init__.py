"""API keys (created, listed and revoked from the CLI; looked up on every request) and the
audit trail of every change of state."""
