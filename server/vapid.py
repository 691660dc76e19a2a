"""The server's VAPID key pair (RFC 8292): made once at first start, kept in the data folder.

A push service only delivers to a subscription made with the same public key (the page passes it to
pushManager.subscribe as applicationServerKey), so the pair must outlive restarts: a new one would
silently orphan every stored subscription. The key is py-vapid's; nothing here does crypto itself.
Written through key_files.write_once, like the session key, so two servers starting at once agree
on one key.
"""

from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import Vapid
from py_vapid.utils import b64urlencode

from . import key_files

VAPID_KEY_FILE = "vapid_private.pem"


def load_or_create(data_dir: str) -> Vapid:
    """The key pair kept in data_dir, made there first if it is missing."""
    path = Path(data_dir).expanduser() / VAPID_KEY_FILE
    if not path.exists():
        _create(path)
    return Vapid.from_file(str(path))


def public_key_b64(vapid: Vapid) -> str:
    """The applicationServerKey a page subscribes with: base64url of the uncompressed point."""
    point = vapid.public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return b64urlencode(point)


def _create(path: Path) -> None:
    vapid = Vapid()
    vapid.generate_keys()
    key_files.write_once(path, vapid.private_pem())
