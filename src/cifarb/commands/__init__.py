"""One module per CLI sub-command. Keep top-level imports to the standard library (see cifarb.cli)."""
