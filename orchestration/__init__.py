"""Shared core of Hey.sh: queues, payloads, configuration, workflows and the CLI."""
