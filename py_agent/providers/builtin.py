"""Registers the providers that ship with py-agent."""

from __future__ import annotations

from .registry import register
from .scripted import ScriptedProvider

register("scripted", lambda name, replies=(), **options: ScriptedProvider(replies, model=f"scripted:{name}", **options))
