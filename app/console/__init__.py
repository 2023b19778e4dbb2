"""The web console at ``/ui``: a single page built from ``console/`` (npm, esbuild) into
``static/``, served with the API's own origin and keys. It knows no feature: it calls the same
HTTP API as every other client."""
