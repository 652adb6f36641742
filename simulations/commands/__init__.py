"""One module per group of CLI commands; each registers on ``base.app``."""
