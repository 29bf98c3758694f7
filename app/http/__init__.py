"""Request plumbing shared by every blueprint: auth, tenancy, errors, representation."""
