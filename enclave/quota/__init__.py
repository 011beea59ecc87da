"""Quotas: rate limits and budgets per tenant, user and API key (engine), alerts kept
in the tenant store (book), anomaly detection over the metering rows (anomaly)."""
