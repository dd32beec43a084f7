"""The data plane: supervised workerd shards that run tenants' Workers. Never imports storage."""
