"""What Workers keep: KV namespaces, static assets, and the per-account quotas over them."""
