"""The provider emulator: the three providers' APIs on one local aiohttp server, with fault injection and a
control API, for the tests, the demo, docker compose and the benchmarks (docs/emulator.md)."""
