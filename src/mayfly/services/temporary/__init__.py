"""Temporary accounts from birth to claim or death: proof of work, provisioning, events, claims, the reaper."""
