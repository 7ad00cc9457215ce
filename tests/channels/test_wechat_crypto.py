"""WeChat safe mode: channels/wechat_crypto.py against WeChat's published sample values, and encrypted callbacks
through the gateway (the fake platform encrypts with its own implementation)."""
from __future__ import annotations

import secrets

import pytest

from channels.settings import ChannelSettings
from channels.wechat_crypto import CryptoError, WeChatCrypto
from conversations import keys
from tests.channels.conftest import gateway
from tests.fakes.wechat_api import FakeWeChat

# WeChat's published sample (WXBizMsgCrypt for Official Accounts, 2014): EncodingAESKey, token, AppID, a callback
# and its msg_signature; and the Java sample's fixed-random encryption of "我是中文abcd123".
SAMPLE_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SAMPLE_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9Fr"
    "XpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WG"
    "zjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIB"
    "YYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=")
JAVA_ENCRYPTED = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
AES_KEY = "Zm9vYmFyYmF6cXV4MDEyMzQ1Njc4OWFiY2RlZmdoaWp"  # 43 characters of the test account


def test_published_sample_signature_and_decryption() -> None:
    crypto = WeChatCrypto("spamtest", SAMPLE_KEY, "wx2c2769f8efd9abc2")
    assert crypto.signature("1409735669", "1320562132", SAMPLE_ENCRYPT) == "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
    xml = crypto.decrypt(SAMPLE_ENCRYPT).decode()
    assert "<Content><![CDATA[abcdteT]]></Content>" in xml and "<MsgId>6054768590064713728</MsgId>" in xml
    with pytest.raises(CryptoError):  # the same message is not one for another account
        WeChatCrypto("spamtest", SAMPLE_KEY, "wx0000000000000000").decrypt(SAMPLE_ENCRYPT)


def test_published_sample_encryption() -> None:
    crypto = WeChatCrypto("pamtest", SAMPLE_KEY, "wxb11529c136998cb6")
    assert crypto.encrypt("我是中文abcd123", random16=b"aaaabbbbccccdddd") == JAVA_ENCRYPTED
    assert crypto.decrypt(JAVA_ENCRYPTED).decode() == "我是中文abcd123"


@pytest.mark.parametrize("bad", ["not base64 !", "AAAA", SAMPLE_ENCRYPT[:-8] + "AAAAAAA="])
def test_garbage_does_not_decrypt(bad) -> None:
    with pytest.raises(CryptoError):
        WeChatCrypto("spamtest", SAMPLE_KEY, "wx2c2769f8efd9abc2").decrypt(bad)


@pytest.fixture
def fake() -> FakeWeChat:
    return FakeWeChat()


@pytest.fixture
async def wx(redis_url: str, fake: FakeWeChat):
    cs = ChannelSettings(wechat_app_id=fake.app_id, wechat_app_secret=fake.app_secret, wechat_token=fake.token,
                         wechat_encoding_aes_key=AES_KEY, wechat_passive_window_s=0.5, outbox_poll_s=0.05)
    async with gateway(redis_url, cs, {"wechat": fake.app()}) as http:
        yield http


async def test_encrypted_callback_gets_an_encrypted_passive_reply(wx, fake) -> None:
    user = "o6_" + secrets.token_hex(8)
    query, body = fake.encrypted(AES_KEY, fake.text_xml(user, "hello safe mode"), user)
    r = await wx.post("/api/channels/wechat", params=query, content=body)
    assert r.status_code == 200, r.text
    reply = fake.open_reply(AES_KEY, r.content)
    assert reply["ToUserName"] == user and reply["Content"].startswith("echo:hello safe mode")
    assert wx.bot.calls[-1]["text"] == "hello safe mode"


@pytest.mark.parametrize("case, status", [("missing", 401), ("wrong", 403), ("tampered", 400)])
async def test_bad_encrypted_callbacks_are_refused_and_nothing_is_stored(wx, fake, case, status) -> None:
    user = "o6_" + secrets.token_hex(8)
    query, body = fake.encrypted(AES_KEY, fake.text_xml(user, "hello"), user)
    if case == "missing":
        del query["msg_signature"]
    elif case == "wrong":
        query["msg_signature"] = "0" * 40
    else:  # re-encrypted for another AppID, correctly signed: the signature passes, the AppID check does not
        other = FakeWeChat(app_id="wx0000000000000000", token=fake.token)
        query, body = other.encrypted(AES_KEY, fake.text_xml(user, "hello"), user)
    r = await wx.post("/api/channels/wechat", params=query, content=body)
    assert r.status_code == status
    assert await wx.app.state.redis.get(keys.channel_user("wechat", user)) is None and wx.bot.calls == []
