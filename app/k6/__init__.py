"""The k6 adapter, free of any feature: start k6 as a subprocess (argv only, output streamed,
always reaped, timeouts enforced), ``k6 inspect`` a script, and read k6's summaries. Plans
(inspect, dry runs) and runs (execution) both use it; it imports neither."""
