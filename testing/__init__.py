"""Testing tools shipped with Lathe, for its own tests and for a backend's: the fuzzer
(`python -m lathe.testing.fuzz`), the backend conformance suite (`lathe.testing.backends`,
`lathe backends --check NAME`) and the random op cases both draw on (`op_cases`)."""
