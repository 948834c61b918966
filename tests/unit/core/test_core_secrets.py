"""Secrets at rest: the key checks that SecretBox makes itself (cryptography is imported on first use)
agree with Fernet's, and a generated key is a Fernet key."""

from __future__ import annotations

import base64
import stat

import pytest
from cryptography.fernet import Fernet

from taipan.errors import TaipanError
from taipan.storage.secrets import SecretBox, load_key, secret_box


def test_a_generated_key_is_a_fernet_key_kept_owner_only(tmp_path):
    box = secret_box(tmp_path)
    key = (tmp_path / "secret.key").read_bytes().strip()
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600
    assert load_key(tmp_path) == key
    sealed = box.seal("user:pa55")
    assert Fernet(key).decrypt(sealed.encode()).decode() == "user:pa55"
    assert SecretBox(key.decode()).open(Fernet(key).encrypt(b"other").decode()) == "other"


@pytest.mark.parametrize("key", ["", "short", "not base64 at all!!", base64.urlsafe_b64encode(b"x" * 31).decode(),
                                 base64.urlsafe_b64encode(b"x" * 33).decode(), "é" * 44])
def test_a_bad_key_is_refused_when_the_box_is_made_as_fernet_refuses_it(key):
    with pytest.raises((ValueError, TypeError)):
        Fernet(key)
    with pytest.raises(TaipanError) as err:
        SecretBox(key)
    assert err.value.code == "invalid_setting" and "TAIPAN_SECRETS__KEY" in err.value.hint


def test_another_key_cannot_open_a_secret(tmp_path):
    sealed = secret_box(tmp_path / "a").seal("token")
    with pytest.raises(TaipanError) as err:
        secret_box(tmp_path / "b").open(sealed)
    assert err.value.code == "secret_unreadable"
