"""RQ jobs (`builds`) and queue plumbing (`queue`). Jobs take ids and write results to the database."""
