"""Who is calling: accounts, people, their passwords and sessions, API tokens, device log-in."""
