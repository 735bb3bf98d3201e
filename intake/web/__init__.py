"""The aiohttp server: API, webhooks, stream, and (later) the console and the board."""
