"""A small shop API to load-test: fast endpoints, and one slow the way real ones are."""
