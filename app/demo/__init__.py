"""A small shop API to load-test: fast endpoints and one that an engineer would recognise as slow."""
