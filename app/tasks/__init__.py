"""RQ job functions: ids in, a service call, the outcome recorded in the database by that service."""
