"""The thresholds control plane: the versioned store in Redis, its command line, the console."""
