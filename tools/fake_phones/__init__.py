"""Fake "phone" pages for the local demo: try the Telegram, WhatsApp and WeChat channels in a browser.

``FAKE_PHONES=1 make run`` (see ``demo.py``) starts one server on 127.0.0.1 that plays the platforms for the gateway:
it serves the fake platform APIs of ``tests/fakes/`` (the gateway's ``*_API_BASE`` point at them) and, per enabled
channel, a phone-like page. What the newcomer types there is delivered to the gateway's real webhook exactly as the
platform would (signed / encrypted by the fakes' own code); the bot's replies - passive replies and the outbound API
calls the fake APIs accepted - are shown with the buttons in the platform's form. Local demo only: the server
refuses a non-loopback address, a non-loopback gateway and channel settings that point at a real platform.
"""
