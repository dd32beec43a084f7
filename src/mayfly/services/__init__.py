"""Domain services. Each owns its transactions and raises mayfly.errors on bad input."""
