"""Building blocks every service uses: time, keys, audit entries, names, strict JSON, limits,
metrics, list cursors, rows found by name."""
