"""Frustration detection and escalation rules: who should be handed to a human, why, and how urgently.

Pure Python + numpy (no Rasa import), so the Rasa component (Python 3.10) and the action server (3.11) share it:
``scorer`` scores one message, ``conversation`` smooths scores over a conversation, ``escalation`` applies the
rules of ``data/escalation.yml``, ``complaints`` detects repeat and group complaints in Redis.
"""
