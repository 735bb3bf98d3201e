"""The pure domain: no database, no network, no asyncio, no clock (time is an argument)."""
