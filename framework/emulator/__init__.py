"""A local emulator of the Gemini, Anthropic and OpenAI wire protocols, for benchmarking without network or cost.

It serves the unmodified official SDKs on loopback, answers prompts from a labelled dataset (counts, yes/no, choices,
text, JSON: whatever the labels hold, through a seeded error model; recognising resized, re-encoded images by
perceptual hash), reports token usage by the documented formulas, and
imitates latency, capacity queueing, rate limits, faults and batch turnaround from per-model YAML profiles.
Every response carries ``x-visionbench-simulated: 1``.

    async with Emulator(dataset="data/eval-images", time_scale=0.01) as emu:
        client = genai.Client(api_key="x", http_options=types.HttpOptions(base_url=emu.base_url))
"""

from visionbench.emulator.profile_schema import DEFAULT_PROFILES, EmulatorProfiles, ModelProfile, load_profiles
from visionbench.emulator.server import Emulator, serve_forever
from visionbench.emulator.state import ModelStats
from visionbench.provider import SIMULATED_HEADER

__all__ = [
    "DEFAULT_PROFILES",
    "SIMULATED_HEADER",
    "Emulator",
    "EmulatorProfiles",
    "ModelProfile",
    "ModelStats",
    "load_profiles",
    "serve_forever",
]
