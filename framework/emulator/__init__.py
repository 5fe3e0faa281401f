"""A local emulator of the Gemini and Anthropic wire protocols."""
