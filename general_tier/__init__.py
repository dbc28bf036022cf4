"""General queue: validation, notifications and other light coordination work."""
