"""The delegator: plans a job per node and dispatches it (IP chaining; ICN later)."""
