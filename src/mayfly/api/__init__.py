"""The Cloudflare-compatible v4 API under /client/v4, and the internal API for the data plane."""
