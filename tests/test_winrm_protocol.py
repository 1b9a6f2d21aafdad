"""The WinRM transport at the protocol boundary: WS-Management exchanges with a WinRM endpoint on 127.0.0.1.

No Windows server runs here. The endpoint (tests/winrm_endpoint.py, shared with the transport contract)
answers as Windows' WinRM service does, envelope for envelope in the shape of [MS-WSMV]. What a command prints is
recorded real output: the CLIXML stderr samples of ../shared/clients/samples (skipped, saying so, where
that folder is absent). What PowerShell would do with the scripts (write the uploaded file, print its
checksum) is played by the endpoint: this tests the controller's side of the protocol, not PowerShell.

Plain HTTP with basic auth for the protocol itself; HTTPS with a self-signed certificate to show that the
certificate is refused by default and accepted with --winrm-ca-bundle.
"""

from __future__ import annotations

import argparse
import base64
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("pypsrp")

from dbupdater.model.command import Command, Ending, RemoteFile
from dbupdater.model.errors import ExitCode
from dbupdater.model.secret import Secret
from dbupdater.model.specs import RunnerSpec
from dbupdater.transports import TransportError, registry
from dbupdater.transports.winrm import WinRMOptions
from dbupdater.transports.winrm.connection import WinRMTransport

from .winrm_endpoint import (
    NS,
    PASSWORD,
    PRIVATE_DIR,
    Endpoint,
    Run,
    answering,
    over_http,
    powershell_files,
    self_signed,
    serving,
)

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "clients" / "samples"


def sample(name: str) -> bytes:
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(f"{path} is not there (the shared client samples sit beside the project checkout)")
    lines = [line for line in path.read_text(encoding="utf-8").split("\n") if not line.startswith("# ")]
    return "\r\n".join(line for line in lines if line).encode() + b"\r\n"


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[Endpoint, int]]]:
    with serving() as start:
        yield start


def collect(transport: WinRMTransport, command: Command) -> tuple[Ending, int | None, list[str], list[str]]:
    out: list[str] = []
    err: list[str] = []
    result = transport.run(command, lambda stream, line: (out if stream == "stdout" else err).append(line))
    return result.ending, result.code, out, err


def test_progress_only_stderr_with_exit_0_is_a_clean_success(serve) -> None:  # type: ignore[no-untyped-def]
    endpoint, port = serve(answering(b"Changed database context to 'shop'.\r\n",
                                     sample("winrm-clixml-progress-only-stderr.txt"), 0))
    transport = over_http(port)
    try:
        ending, code, out, err = collect(transport, Command(("sqlcmd", "-S", "db1", "-d", "shop")))
    finally:
        transport.close()
    assert (ending, code, out, err) == (Ending.EXITED, 0, ["Changed database context to 'shop'."], [])
    create = next(root for action, root in endpoint.requests if action == "Create")
    options = {node.get("Name"): node.text for node in create.iterfind("s:Header/wsman:OptionSet/wsman:Option", NS)}
    assert options["WINRS_CODEPAGE"] == "65001"  # UTF-8 in and out
    run = next(iter(endpoint.runs.values()))
    assert "$start.FileName = 'sqlcmd'" in run.script and "exit $process.ExitCode" in run.script
    assert run.signals == ["Terminate"]  # the finished command is released on the server
    assert endpoint.deleted and set(endpoint.deleted) <= endpoint.shells  # shells deleted on close


def test_error_record_reaches_the_judge_with_the_exit_code(serve) -> None:  # type: ignore[no-untyped-def]
    stderr = sample("winrm-clixml-error-stderr-and-pywinrm-cleaned.txt").split(b"\r\nfake : ")[0] + b"\r\n"
    _, port = serve(answering(b"", stderr, 1))
    transport = over_http(port)
    try:
        ending, code, _, err = collect(transport, Command(("fake", "cmdlet")))
    finally:
        transport.close()
    assert (ending, code) == (Ending.EXITED, 1)
    assert err[0].startswith("fake : The term 'fake' is not recognized as the name of a cmdlet")
    assert "    + FullyQualifiedErrorId : CommandNotFoundException" in err
    assert not any("CLIXML" in line or "<Obj" in line for line in err)


def test_client_missing_and_exit_codes(serve) -> None:  # type: ignore[no-untyped-def]
    _, port = serve(answering(b"", b"dbupdater: cannot start sqlcmd: The system cannot find the file specified\r\n",
                              9009))
    transport = over_http(port)
    try:
        ending, _, _, err = collect(transport, Command(("sqlcmd",)))
    finally:
        transport.close()
    assert ending is Ending.CLIENT_MISSING and "cannot find the file" in err[0]


def test_files_go_in_chunks_with_a_checksum_and_come_back(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    endpoint, port = serve(answering(b"", b"", 0))
    transport = over_http(port)
    try:
        directory = transport.make_private_dir()
        assert directory == PRIVATE_DIR
        payload = bytes(range(256)) * 4096  # 1 MiB of every byte value
        source = tmp_path / "script.sql"
        source.write_bytes(payload)
        remote = transport.shell.join(directory, "1-script.sql")
        sends = endpoint.count("Send")
        transport.put(source, remote)
        assert endpoint.files[remote] == payload
        assert endpoint.count("Send") - sends > 5  # streamed in envelopes, never one message
        back = tmp_path / "back.sql"
        transport.get(remote, back)
        assert back.read_bytes() == payload and back.stat().st_mode & 0o777 == 0o600
        transport.put_bytes(b"secret\n", transport.shell.join(directory, "1.cred"))
        transport.remove(directory)
    finally:
        transport.close()


def test_a_checksum_mismatch_is_refused(serve) -> None:  # type: ignore[no-untyped-def]
    def behave(endpoint: Endpoint, run: Run) -> tuple[bytes, bytes, int | None]:
        if "[IO.File]::Create(" in run.script:
            return b"sha256:" + b"0" * 64 + b"\r\n", b"", 0
        return powershell_files(endpoint, run) or (b"", b"", 0)

    _, port = serve(behave)
    transport = over_http(port)
    try:
        with pytest.raises(TransportError, match="other bytes than were sent"):
            transport.put_bytes(b"data", PRIVATE_DIR + "\\x")
    finally:
        transport.close()


def test_a_long_command_runs_from_a_file_never_inline(serve) -> None:  # type: ignore[no-untyped-def]
    endpoint, port = serve(answering(b"ok\r\n", b"", 0))
    transport = over_http(port)
    long_query = "SELECT '" + "x" * 9000 + "'"
    try:
        with pytest.raises(TransportError, match="private directory"):
            collect(transport, Command(("sqlcmd", "-Q", long_query)))
        transport.make_private_dir()
        ending, code, out, _ = collect(transport, Command(("sqlcmd", "-Q", long_query)))
    finally:
        transport.close()
    assert (ending, code, out) == (Ending.EXITED, 0, ["ok"])
    for action, root in endpoint.requests:
        if action == "Command":
            assert sum(len(node.text or "") + 1 for node in root.iterfind(".//rsp:Arguments", NS)) < 8191
    bootstrap = [run.script for run in endpoint.runs.values() if "[ScriptBlock]::Create" in run.script]
    assert len(bootstrap) == 1
    saved = re.search(r"ReadAllText\('([^']+)'\)", bootstrap[0])
    assert saved and saved.group(1).endswith(".ps1")
    assert saved.group(1) not in endpoint.files  # removed after the run


def test_stdin_parts_reach_the_command(serve) -> None:  # type: ignore[no-untyped-def]
    endpoint, port = serve(answering(b"", b"", 0))
    transport = over_http(port)
    try:
        collect(transport, Command(("sqlcmd",), stdin=(RemoteFile("C:\\t\\a.sql"), b"\x00prelude\xff")))
    finally:
        transport.close()
    run = next(iter(endpoint.runs.values()))
    assert base64.b64decode(bytes(run.stdin).strip()) == b"\x00prelude\xff"
    assert "OpenRead('C:\\t\\a.sql')" in run.script


def test_interrupt_sends_ctrl_c_to_the_running_command(serve) -> None:  # type: ignore[no-untyped-def]
    endpoint, port = serve(answering(b"", b"", None))  # runs until a ctrl_c Signal
    transport = over_http(port)
    try:
        command = Command(("sqlcmd", "-i", "C:\\t\\long.sql"))
        results: list[tuple[Ending, int | None, list[str], list[str]]] = []
        worker = threading.Thread(target=lambda: results.append(collect(transport, command)))
        worker.start()
        threading.Event().wait(1.0)  # quiet: the endpoint answers Receive with the operation-timeout fault
        assert worker.is_alive()
        transport.interrupt(Command(("other",)))  # another command: not this one
        threading.Event().wait(0.5)
        assert worker.is_alive()
        transport.interrupt(command)
        worker.join(10)
    finally:
        transport.close()
    assert results and results[0][0] is Ending.SIGNALLED
    run = next(iter(endpoint.runs.values()))
    assert run.signals[0] == "ctrl_c" and "Terminate" in run.signals


def test_rejected_credentials_are_unreachable_and_never_print_the_password(serve) -> None:  # type: ignore[no-untyped-def]
    from pypsrp.wsman import WSMan

    _, port = serve(answering(b"", b"", 0))
    Secret(PASSWORD)
    with pytest.raises(TransportError) as caught:
        WinRMTransport("deploy@127.0.0.1", lambda: WSMan("127.0.0.1", port=port, username="deploy",
                                                          password="wrong", ssl=False, auth="basic",
                                                          encryption="never"))
    assert "credentials were rejected" in str(caught.value)
    assert caught.value.exit_code is ExitCode.UNREACHABLE
    assert "wrong" not in str(caught.value)


# -- HTTPS: the certificate is validated by default --------------------------------------------------------

def kind_options(*argv: str) -> WinRMOptions:
    parser = argparse.ArgumentParser()
    kind = registry.get("winrm")
    kind.add_arguments(parser.add_argument_group("runner connections"))
    return kind.options(parser.parse_args(["--winrm-auth", "basic", *argv]))  # type: ignore[no-any-return]


def test_https_certificate_refused_by_default_accepted_with_the_ca_bundle(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    _, port = serve(answering(b"hello\r\n", b"", 0), context)
    spec = RunnerSpec("winrm", "127.0.0.1", port, "deploy", Secret(PASSWORD))
    kind = registry.get("winrm")
    with pytest.raises(TransportError, match=r"certificate is not trusted.*--winrm-ca-bundle") as refused:
        kind.open(spec, kind_options())
    assert PASSWORD not in str(refused.value)
    transport = kind.open(spec, kind_options("--winrm-ca-bundle", str(cert)))
    try:
        assert collect(transport, Command(("hostname",)))[:3] == (Ending.EXITED, 0, ["hello"])  # type: ignore[arg-type]
    finally:
        transport.close()
    insecure = kind.open(spec, kind_options("--winrm-insecure"))  # only when asked for by name
    insecure.close()


def test_kind_options_and_manifest_port() -> None:
    kind = registry.get("winrm")
    assert kind.supported and kind.default_port == 5986
    assert kind_options() == WinRMOptions(auth="basic")
    from dbupdater.model.errors import UsageError

    with pytest.raises(UsageError, match="contradict"):
        kind_options("--winrm-insecure", "--winrm-ca-bundle", __file__)
