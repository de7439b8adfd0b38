"""``payq serve``'s own settings: console users (hashes, never passwords), trusted proxies, the docs pages; each bad value named."""

from __future__ import annotations

from typing import Any

import pytest

from config.settings import InvalidSettings, load_settings
from payq.serve.console.users import Role, Users

HASH = "$2b$04$" + "K" * 53


def settings_from(**values: Any) -> Any:
    return load_settings(_env_file=None, **values)


@pytest.mark.parametrize(("users", "problem"), [
    ({"ana": {"role": "operator", "hash": "hunter2"}}, "PAYQ_CONSOLE_USERS (ana.hash): must be a bcrypt hash"),
    ({"ana": {"role": "admin", "hash": HASH}}, "PAYQ_CONSOLE_USERS (ana.role): input should be 'viewer' or 'operator'"),
    ({"ana": {"hash": HASH}}, "PAYQ_CONSOLE_USERS (ana.role): field required"),
    ({"a:b": {"role": "viewer", "hash": HASH}}, "PAYQ_CONSOLE_USERS: user names must be 1 to 64 of"),
    ({"ana": {"role": "viewer", "hash": HASH, "password": "x"}}, "PAYQ_CONSOLE_USERS (ana.password): extra inputs are not permitted"),
])
def test_a_console_user_needs_a_role_and_a_bcrypt_hash_and_the_password_is_never_shown(users: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidSettings) as refused:
        settings_from(console_users=users)

    assert any(p.startswith(problem) for p in refused.value.problems), refused.value.problems
    assert "hunter2" not in str(refused.value)


def test_the_basic_auth_user_is_one_more_operator_and_may_not_share_a_name() -> None:
    settings = settings_from(console_users={"vera": {"role": "viewer", "hash": HASH}}, console_basic_auth="ops:pw")
    users = Users.from_settings(settings)

    ops = users.verify("ops", "pw", 0.0)
    assert ops is not None and users.role_of(ops) is Role.OPERATOR
    with pytest.raises(InvalidSettings, match="PAYQ_CONSOLE_BASIC_AUTH's user 'vera' is in PAYQ_CONSOLE_USERS too"):
        settings_from(console_users={"vera": {"role": "viewer", "hash": HASH}}, console_basic_auth="vera:pw")
    assert not Users.from_settings(settings_from())


def test_a_verified_password_is_remembered_for_a_while_and_a_wrong_one_never() -> None:
    import bcrypt

    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4)).decode()
    users = Users.from_settings(settings_from(console_users={"ana": {"role": "operator", "hash": hashed}}))

    assert users.verify("ana", "right", 1000.0) is not None
    assert users.verify("ana", "wrong", 1000.0) is None
    assert users.verify("nobody", "right", 1000.0) is None
    assert users.verify("ana", "right", 1000.0 + 299) is not None


@pytest.mark.parametrize(("value", "ok"), [
    ("127.0.0.1", True), ("10.0.0.0/8, 127.0.0.1", True), ("::1", True), ("*", True),
    ("proxy.internal", False), ("10.0.0.0/33", False), ("127.0.0.1,", False),
])
def test_trusted_proxies_are_addresses_or_networks(value: str, ok: bool) -> None:
    if ok:
        assert settings_from(serve_forwarded_allow_ips=value).serve_forwarded_allow_ips == value
    else:
        with pytest.raises(InvalidSettings, match="PAYQ_SERVE_FORWARDED_ALLOW_IPS: must be IP addresses or networks"):
            settings_from(serve_forwarded_allow_ips=value)


def test_by_default_no_proxy_is_trusted_no_docs_page_is_served_and_the_console_is_off() -> None:
    settings = settings_from()

    assert (settings.serve_forwarded_allow_ips, settings.serve_docs, settings.console_users) == (None, False, {})
