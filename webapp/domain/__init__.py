"""Domain logic: money (ledger), pricing, checkout and the Stripe gateway."""
