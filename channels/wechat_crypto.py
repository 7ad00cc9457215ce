"""WeChat Official Account safe mode (安全模式): the message encryption of WeChat's published WXBizMsgCrypt scheme.

* key: ``base64decode(EncodingAESKey + "=")`` (43 characters -> 32 bytes); AES-256-CBC, IV = the key's first 16
  bytes; PKCS#7 padding to a multiple of 32 bytes (WeChat's block size for the padding, not AES's 16);
* plaintext: 16 random bytes + the message length (4 bytes, big-endian) + the message (UTF-8 XML) + the AppID;
* ``msg_signature`` = sha1 of the sorted, concatenated token, timestamp, nonce and the ``Encrypt`` text;
* an encrypted passive reply is ``<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>``.

Checked against WeChat's published sample values (tests/channels/test_wechat_crypto.py).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32


class CryptoError(ValueError):
    """Not a message of this account (bad base64, padding, length or AppID)."""


class WeChatCrypto:
    def __init__(self, token: str, encoding_aes_key: str, app_id: str) -> None:
        if len(encoding_aes_key) != 43:
            raise ValueError("WECHAT_ENCODING_AES_KEY must be the 43 characters of the account's EncodingAESKey")
        try:
            self.key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error as exc:
            raise ValueError("WECHAT_ENCODING_AES_KEY is not base64") from exc
        self.token = token
        self.app_id = app_id

    def signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        joined = "".join(sorted([self.token, timestamp, nonce, encrypt]))
        return hashlib.sha1(joined.encode()).hexdigest()  # noqa: S324 - WeChat's scheme

    def signed(self, given: str | None, timestamp: str, nonce: str, encrypt: str) -> bool:
        expected = self.signature(timestamp, nonce, encrypt)
        return given is not None and given != "" and hmac.compare_digest(given.encode(), expected.encode())

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def decrypt(self, encrypt: str) -> bytes:
        """The XML inside ``Encrypt``; CryptoError unless it is a well-formed message for this AppID."""
        try:
            data = base64.b64decode(encrypt, validate=True)
        except binascii.Error as exc:
            raise CryptoError("Encrypt is not base64") from exc
        if not data or len(data) % 16:
            raise CryptoError("Encrypt is not a whole number of AES blocks")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise CryptoError("bad padding")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise CryptoError("too short")
        (length,) = struct.unpack(">I", plain[16:20])
        message, app_id = plain[20:20 + length], plain[20 + length:]
        if len(message) != length or not hmac.compare_digest(app_id, self.app_id.encode()):
            raise CryptoError("not a message for this AppID")
        return message

    def encrypt(self, message: str, random16: bytes | None = None) -> str:
        body = message.encode()
        text = (random16 or os.urandom(16)) + struct.pack(">I", len(body)) + body + self.app_id.encode()
        pad = BLOCK - len(text) % BLOCK
        text += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(text) + encryptor.finalize()).decode()

    def envelope(self, message: str, timestamp: str, nonce: str) -> str:
        """An encrypted passive reply."""
        encrypt = self.encrypt(message)
        return (f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
                f"<MsgSignature><![CDATA[{self.signature(timestamp, nonce, encrypt)}]]></MsgSignature>"
                f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>")
