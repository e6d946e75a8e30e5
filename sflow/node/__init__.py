"""The worker node: the daemon, its task state machine, and function execution (native or Docker)."""
