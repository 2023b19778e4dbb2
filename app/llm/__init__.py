"""Language-model calls: typed structured output, an explicit timeout, usage recorded."""
