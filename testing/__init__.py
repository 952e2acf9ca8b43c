"""Testing tools shipped with Lathe: the fuzzer (`python -m lathe.testing.fuzz`)."""
