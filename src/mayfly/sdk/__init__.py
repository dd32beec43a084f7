"""A typed client for the Mayfly API (on which the CLI and the MCP server are built)."""
