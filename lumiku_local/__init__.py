"""Lumiku Local: the Avatar Creator as one local program."""

__version__ = "0.1.0"

import os as _os

# Hugging Face's telemetry (and, in huggingface_hub 2.x, a registry fetch on the first request)
# would reach the network even when loading a model from the local cache: a local studio opts
# out. Set before huggingface_hub is imported anywhere; a user's own setting wins.
_os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
