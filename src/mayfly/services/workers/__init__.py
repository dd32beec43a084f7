"""Workers: uploads, versions, deployments, what the data plane asks, crons, tails, quarantine."""
