"""Rules every registered engine must keep, checked offline (no rig): a new engine cannot forget them.

The live behaviour behind each rule is tested against the real clients in the rig tests; these check the
invocations every engine builds, so a new engine is held to the same contract before it meets a server.
"""

from __future__ import annotations

import pytest

from dbupdater.engines import Engine, registry
from dbupdater.model.command import Command
from dbupdater.model.secret import Secret
from dbupdater.model.specs import DatabaseSpec

PASSWORD = "p@ss\"w'o#r\\d;$(id)"


def spec(engine: Engine) -> DatabaseSpec:
    return DatabaseSpec(engine.name, "db.example", 1234, "app", "shop", Secret(PASSWORD))


@pytest.fixture(params=sorted(registry.engines()))
def engine(request) -> Engine:  # type: ignore[no-untyped-def]
    return registry.get(request.param)


def invocations(engine: Engine) -> list[Command]:
    db = spec(engine)
    shared = engine.shares_session(False)
    return [
        engine.command(db, "/tmp/x/00001-a.sql", "/tmp/x/login1.cred"),
        engine.command(db, "/tmp/x/00001-a.sql", "/tmp/x/login1.cred", before="SELECT 1;" if shared else ""),
        engine.ledger_command(db, "/tmp/x/login1.cred"),
    ]


def test_every_session_asks_for_utf8(engine: Engine) -> None:
    """Whatever the runner's locale or the server's defaults, every session (script and ledger) pins the
    dialect's UTF-8 character set, and the dialect can read the session's actual one back."""
    charset = engine.dialect.session_charset
    assert charset.lower().replace("-", "") in ("utf8", "utf8mb4", "al32utf8", "65001")
    assert engine.dialect.session_charset_sql
    for command in invocations(engine):
        assert any(charset in arg for arg in [*command.argv, *(value for _, value in command.env)]), command


def test_no_password_in_any_argv_or_environment(engine: Engine) -> None:
    for command in invocations(engine):
        assert not any(PASSWORD in arg for arg in command.argv), command
        assert not any(PASSWORD in value for _, value in command.env), command


def test_a_password_from_the_environment_comes_from_the_credentials_file(engine: Engine) -> None:
    """An engine whose client reads its password from a variable (sqlcmd's SQLCMDPASSWORD) sets it on the
    runner from the 0600 file, for the script's and the ledger's invocation alike, never as an `env` value."""
    from dbupdater.engines.base import Delivery

    if engine.credentials_via is not Delivery.ENV_FROM_FILE:
        pytest.skip(f"{engine.display} reads its credentials another way")
    for command in invocations(engine):
        assert [path for _, path in command.env_files] == ["/tmp/x/login1.cred"], command
        assert not {name for name, _ in command.env} & {name for name, _ in command.env_files}, command
