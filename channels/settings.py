"""Settings of the messaging channels (one section per platform), read from the environment.

A channel whose credentials are not all set is off: its routes answer 404 and no worker runs for it. What a merchant
configures on each platform's side is described in docs/CHANNELS.md.
"""
from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ChannelSettings(BaseSettings):
    """Environment variables of the messaging channels (all optional; every channel is off by default).

    | variable | default | meaning |
    |---|---|---|
    | OUTBOX_ATTEMPTS | 8 | failed sends of one outbox batch before it becomes a dead letter |
    | OUTBOX_BACKOFF_S | 1.0 | first retry delay of a failed batch; doubles per attempt |
    | OUTBOX_BACKOFF_MAX_S | 300 | longest retry delay |
    | OUTBOX_POLL_S | 0.2 | how often the outbox workers and the relay look for work when idle |
    | OUTBOX_DEAD_MAXLEN | 10000 | the dead-letter stream keeps at most about this many batches |
    | CHANNEL_RELAY_MAX_CONVERSATIONS | 5000 | the relay watches at most this many recently active conversations |
    | CHANNEL_LIMIT_MESSAGES | 60/minute;2000/day | messages per platform user; beyond: kept, not answered, one notice |
    | CHANNEL_LIMIT_PHOTOS | 10/minute;60/day | photos per platform user; beyond: not fetched, the customer is told |
    | TELEGRAM_BOT_TOKEN | (empty = off) | the bot's token from @BotFather |
    | TELEGRAM_WEBHOOK_SECRET | (empty = off) | setWebhook `secret_token`, echoed in `X-Telegram-Bot-Api-Secret-Token` |
    | TELEGRAM_API_BASE | https://api.telegram.org | Bot API base URL (a local Bot API server or the test fake) |
    | TELEGRAM_RATE_LIMIT | 30/second | outbound messages to Telegram (all chats of this bot) |
    | TELEGRAM_TIMEOUT_S | 10 | timeout of one Bot API call |
    | WHATSAPP_ACCESS_TOKEN | (empty = off) | Cloud API access token (a system user's permanent token) |
    | WHATSAPP_APP_SECRET | (empty = off) | the Meta app's secret: key of `X-Hub-Signature-256` |
    | WHATSAPP_VERIFY_TOKEN | (empty = off) | verify token of the webhook settings (`hub.verify_token`) |
    | WHATSAPP_PHONE_NUMBER_ID | (empty = off) | the business number's id (sends go to `/{id}/messages`) |
    | WHATSAPP_API_BASE | https://graph.facebook.com/v21.0 | Graph API base URL with version (or the test fake) |
    | WHATSAPP_TEMPLATE_NAME | (empty) | template sent when the 24-hour window is closed (empty: none; dead letter) |
    | WHATSAPP_TEMPLATE_LANGUAGE | en | language code of that template |
    | WHATSAPP_RATE_LIMIT | 60/second | outbound messages to the Cloud API |
    | WHATSAPP_TIMEOUT_S | 10 | timeout of one Cloud API call |
    | WHATSAPP_MEDIA_HOSTS | fbsbx.com | hosts (and subdomains, comma-separated) a photo's https download may name |
    | WECHAT_APP_ID | (empty = off) | Official Account AppID |
    | WECHAT_APP_SECRET | (empty = off) | Official Account AppSecret (access_token for the customer-service API) |
    | WECHAT_TOKEN | (empty = off) | the Token typed into the server configuration (signature of every callback) |
    | WECHAT_ENCODING_AES_KEY | (empty = plaintext) | EncodingAESKey (43 chars): safe / compatible mode |
    | WECHAT_API_BASE | https://api.weixin.qq.com | API base URL (or the test fake) |
    | WECHAT_PASSIVE_WINDOW_S | 4.0 | passive answer if ready this fast, else `success` + customer-service API |
    | WECHAT_REPLAY_WINDOW_S | 300 | a callback signed further from now is refused; a signature carries one body |
    | WECHAT_RATE_LIMIT | 20/second | outbound customer-service messages |
    | WECHAT_TIMEOUT_S | 10 | timeout of one WeChat API call |
    | WECOM_CORP_ID | (empty = off) | WeCom corp id (企业ID): callbacks are encrypted for it |
    | WECOM_SECRET | (empty = off) | the Secret of 微信客服 (API access token) |
    | WECOM_TOKEN | (empty = off) | callback Token (msg_signature) |
    | WECOM_ENCODING_AES_KEY | (empty = off) | callback EncodingAESKey (43 characters) |
    | WECOM_API_BASE | https://qyapi.weixin.qq.com | API base URL (or the test fake) |
    | WECOM_RATE_LIMIT | 20/second | outbound kf/send_msg calls |
    | WECOM_TIMEOUT_S | 10 | timeout of one WeCom API call |
    | SIGNED_WEBHOOK_SECRET | (empty = off) | key (>= 16 chars) of the webhook's HMAC-SHA256, both ways |
    | SIGNED_WEBHOOK_CALLBACK_URL | (empty = off) | the store app's URL that receives the replies (POST JSON, signed) |
    | SIGNED_WEBHOOK_REPLAY_WINDOW_S | 300 | a signed request older or newer than this (by its timestamp) is refused |
    | SIGNED_WEBHOOK_RATE_LIMIT | 50/second | outbound callbacks to the store app |
    | SIGNED_WEBHOOK_TIMEOUT_S | 10 | timeout of one callback |
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    outbox_attempts: int = Field(default=8, ge=1)
    outbox_backoff_s: float = Field(default=1.0, ge=0)
    outbox_backoff_max_s: float = Field(default=300.0, ge=0)
    outbox_poll_s: float = Field(default=0.2, gt=0)
    outbox_dead_maxlen: int = Field(default=10_000, ge=10)
    channel_relay_max_conversations: int = Field(default=5_000, ge=1)
    channel_limit_messages: str = "60/minute;2000/day"
    channel_limit_photos: str = "10/minute;60/day"

    telegram_bot_token: str = ""
    telegram_webhook_secret: str = Field(default="", pattern=r"^[A-Za-z0-9_-]{0,256}$")
    telegram_api_base: str = "https://api.telegram.org"
    telegram_rate_limit: str = "30/second"
    telegram_timeout_s: float = Field(default=10.0, gt=0)

    whatsapp_access_token: str = ""
    whatsapp_app_secret: str = ""
    whatsapp_verify_token: str = ""
    whatsapp_phone_number_id: str = ""
    whatsapp_api_base: str = "https://graph.facebook.com/v21.0"
    whatsapp_template_name: str = ""
    whatsapp_template_language: str = "en"
    whatsapp_rate_limit: str = "60/second"
    whatsapp_timeout_s: float = Field(default=10.0, gt=0)
    whatsapp_media_hosts: str = Field(default="fbsbx.com", pattern=r"^[A-Za-z0-9.,\s-]*$")

    wechat_app_id: str = ""
    wechat_app_secret: str = ""
    wechat_token: str = ""
    wechat_encoding_aes_key: str = Field(default="", pattern=r"^([A-Za-z0-9+/]{43})?$")
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_passive_window_s: float = Field(default=4.0, gt=0, lt=5)
    wechat_replay_window_s: int = Field(default=300, ge=30)
    wechat_rate_limit: str = "20/second"
    wechat_timeout_s: float = Field(default=10.0, gt=0)

    wecom_corp_id: str = ""
    wecom_secret: str = ""
    wecom_token: str = ""
    wecom_encoding_aes_key: str = Field(default="", pattern=r"^([A-Za-z0-9+/]{43})?$")
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    wecom_rate_limit: str = "20/second"
    wecom_timeout_s: float = Field(default=10.0, gt=0)

    signed_webhook_secret: str = ""
    signed_webhook_callback_url: str = ""
    signed_webhook_replay_window_s: int = Field(default=300, ge=5)
    signed_webhook_rate_limit: str = "50/second"
    signed_webhook_timeout_s: float = Field(default=10.0, gt=0)

    def user_limits(self) -> dict[str, str]:
        """Per platform user limits by name (conversations/protect.py: Throttle; channels/messaging.py)."""
        return {"channel_message": self.channel_limit_messages, "channel_photo": self.channel_limit_photos}

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_bot_token and self.telegram_webhook_secret)

    @property
    def whatsapp_enabled(self) -> bool:
        return bool(self.whatsapp_access_token and self.whatsapp_app_secret and self.whatsapp_verify_token
                    and self.whatsapp_phone_number_id)

    @property
    def wechat_enabled(self) -> bool:
        return bool(self.wechat_app_id and self.wechat_app_secret and self.wechat_token)

    @property
    def wecom_enabled(self) -> bool:
        return bool(self.wecom_corp_id and self.wecom_secret and self.wecom_token and self.wecom_encoding_aes_key)

    @property
    def signed_webhook_enabled(self) -> bool:
        return len(self.signed_webhook_secret) >= 16 and bool(self.signed_webhook_callback_url)


@lru_cache
def get_channel_settings() -> ChannelSettings:
    return ChannelSettings()
