"""What every stage shares: user errors, atomic writes and JSON, the console, interrupts, preflight checks, statistics."""
