"""Mayfly: a self-hosted, Cloudflare-Workers-compatible platform built for coding agents."""

__version__ = "0.1.0"
