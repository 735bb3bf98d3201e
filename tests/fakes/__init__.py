"""Local stand-ins for outside APIs (Telegram Bot API, Zalo OA API): real wire format, every call recorded."""
