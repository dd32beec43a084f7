"""The `mayfly` command: one module per noun."""
