"""`mayfly mcp`: Mayfly's tools for agents over the Model Context Protocol (official `mcp` SDK).

Built on `mayfly.sdk` and `mayfly.project`; imports nothing server-side (an import-linter
contract checks it). stdio for a local agent (server.py), streamable HTTP at /mcp for remote ones
(http.py).
"""
