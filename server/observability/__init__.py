"""What an operator sees: Prometheus metrics, one log line per request, the operators' HTTP port."""
