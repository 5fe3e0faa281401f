"""Facts about the real services: token counts, rate limits, model lifecycles, prices."""
