"""Plans, quotas, usage and the LLM token ledger (issue 15): what an organization may use, enforced where the
work happens. tiers: the plans as data; usage: what an org used, read from its builds and rows; quotas: the
checks that refuse with QUOTA_EXCEEDED; ledger: the token transactions; plans: plan changes."""
