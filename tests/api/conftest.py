from tests.subscription_fakes import fixed_clock  # noqa: F401
