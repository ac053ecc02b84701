"""``local-mlops ui``: the local web dashboard over the same state as the CLI."""
