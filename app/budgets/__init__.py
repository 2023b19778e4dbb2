"""The API Performance Budget loop (seed: api-performance-budget-loop): a target for one SLI,
one iteration per run, each judged against the one before."""
