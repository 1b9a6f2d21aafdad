"""The WinRM transport at the protocol boundary: WS-Management exchanges with a WinRM endpoint on 127.0.0.1.

No Windows server runs here. The endpoint below answers as Windows' WinRM service does, envelope for
envelope in the shape of [MS-WSMV] (Create shell -> ResourceCreated with the ShellId selector, Command ->
CommandId, Send, Receive -> base64 stdout/stderr Streams and CommandState Done with ExitCode, Signal,
Delete; the operation-timeout WSManFault 2150858793 while a command is quiet). What a command prints is
recorded real output: the CLIXML stderr samples of ../shared/clients/samples (skipped, saying so, where
that folder is absent). What PowerShell would do with the scripts (write the uploaded file, print its
checksum) is played by the endpoint: this tests the controller's side of the protocol, not PowerShell.

Plain HTTP with basic auth for the protocol itself; HTTPS with a self-signed certificate to show that the
certificate is refused by default and accepted with --winrm-ca-bundle.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import http.server
import re
import ssl
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
from dbupdater.transports.winrm.powershell import FETCH_BLOCK

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "clients" / "samples"
NS = {"s": "http://www.w3.org/2003/05/soap-envelope", "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
      "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
      "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"}
SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
PASSWORD = "Pa55 'w0rd' \"x\" $(no) é"  # basic auth carries latin-1 only
PRIVATE_DIR = "C:\\Users\\deploy\\AppData\\Local\\Temp\\dbupdater.5f0c"
CONTROL_C_EXIT = 0xC000013A


def sample(name: str) -> bytes:
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(f"{path} is not there (the shared client samples sit beside the project checkout)")
    lines = [line for line in path.read_text(encoding="utf-8").split("\n") if not line.startswith("# ")]
    return "\r\n".join(line for line in lines if line).encode() + b"\r\n"


def envelope(action: str, relates_to: str, body: str) -> bytes:
    return f"""<s:Envelope xml:lang="en-US" xmlns:s="{NS['s']}" xmlns:a="{NS['wsa']}" \
xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" xmlns:w="{NS['wsman']}" xmlns:rsp="{SHELL_URI}" \
xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"><s:Header><a:Action>{action}</a:Action>\
<a:MessageID>uuid:{uuid.uuid4()}</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous\
</a:To><a:RelatesTo>{relates_to}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>""".encode()


TIMEOUT_FAULT = """<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:TimedOut</s:Value>\
</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">The WS-Management service cannot complete the operation \
within the time specified in OperationTimeout.  </s:Text></s:Reason><s:Detail><f:WSManFault \
xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2150858793" Machine="win-runner">\
<f:Message>The WS-Management service cannot complete the operation within the time specified in OperationTimeout.\
  </f:Message></f:WSManFault></s:Detail></s:Fault>"""


@dataclass
class Run:
    """One command on the endpoint: its script, the stdin it was sent, and what it answers."""

    script: str
    stdin: bytearray = field(default_factory=bytearray)
    ended: threading.Event = field(default_factory=threading.Event)
    signals: list[str] = field(default_factory=list)
    answered: bool = False


Behaviour = Callable[["Endpoint", Run], tuple[bytes, bytes, int | None]]


class Endpoint:
    """A WinRM service: shells, commands, what each was sent. `behave` decides each command's answer (stdout,
    stderr, exit code; None: still running until a ctrl_c Signal)."""

    def __init__(self, behave: Behaviour) -> None:
        self.behave = behave
        self.requests: list[tuple[str, ET.Element]] = []
        self.runs: dict[str, Run] = {}
        self.shells: set[str] = set()
        self.deleted: list[str] = []
        self.files: dict[str, bytes] = {}
        self.auth: list[str] = []
        self.lock = threading.Lock()

    def answer(self, raw: bytes, authorization: str) -> tuple[int, bytes]:
        if authorization != "Basic " + base64.b64encode(f"deploy:{PASSWORD}".encode("latin-1")).decode():
            return 401, b""
        root = ET.fromstring(raw)
        action = root.findtext("s:Header/wsa:Action", namespaces=NS) or ""
        message = root.findtext("s:Header/wsa:MessageID", namespaces=NS) or ""
        with self.lock:
            self.requests.append((action.rsplit("/", 1)[-1], root))
        body = root.find("s:Body", NS)
        assert body is not None
        name = action.rsplit("/", 1)[-1]
        if name == "Create":
            shell = str(uuid.uuid4()).upper()
            self.shells.add(shell)
            return 200, envelope(action + "Response", message, f"""<x:ResourceCreated><a:Address>http://win-runner\
:5986/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/windows/shell\
/cmd</w:ResourceURI><w:SelectorSet><w:Selector Name="ShellId">{shell}</w:Selector></w:SelectorSet>\
</a:ReferenceParameters></x:ResourceCreated><rsp:Shell><rsp:ShellId>{shell}</rsp:ShellId><rsp:ResourceUri>\
http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</rsp:ResourceUri><rsp:Owner>win-runner\\deploy\
</rsp:Owner><rsp:ClientIP>127.0.0.1</rsp:ClientIP><rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut><rsp:InputStreams>\
stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams><rsp:ShellRunTime>P0DT0H0M0S\
</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>""")
        if name == "Delete":
            self.deleted.append(root.findtext("s:Header/wsman:SelectorSet/wsman:Selector", namespaces=NS) or "")
            return 200, envelope(action + "Response", message, "")
        if name == "Command":
            arguments = [node.text or "" for node in body.iterfind("rsp:CommandLine/rsp:Arguments", NS)]
            assert body.findtext("rsp:CommandLine/rsp:Command", namespaces=NS) == "powershell.exe"
            assert arguments[3] == "-EncodedCommand"
            command = str(uuid.uuid4()).upper()
            self.runs[command] = Run(base64.b64decode(arguments[4]).decode("utf-16-le"))
            return 200, envelope(action + "Response", message,
                                 f"<rsp:CommandResponse><rsp:CommandId>{command}</rsp:CommandId></rsp:CommandResponse>")
        if name == "Send":
            stream = body.find("rsp:Send/rsp:Stream", NS)
            assert stream is not None
            run = self.runs[stream.get("CommandId", "")]
            run.stdin += base64.b64decode(stream.text or "")
            if stream.get("End") == "True":
                run.ended.set()
            return 200, envelope(action + "Response", message, "<rsp:SendResponse/>")
        if name == "Signal":
            signal = body.find("rsp:Signal", NS)
            assert signal is not None
            run = self.runs[signal.get("CommandId", "")]
            run.signals.append((signal.findtext("rsp:Code", namespaces=NS) or "").rsplit("/", 1)[-1])
            return 200, envelope(action + "Response", message, "<rsp:SignalResponse/>")
        if name == "Receive":
            command = body.find("rsp:Receive/rsp:DesiredStream", NS)
            assert command is not None
            run = self.runs[command.get("CommandId", "")]
            run.ended.wait(5)
            stdout, stderr, code = self.behave(self, run)
            if code is None and "ctrl_c" not in run.signals:
                threading.Event().wait(0.3)
                return 500, envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", message, TIMEOUT_FAULT)
            code = CONTROL_C_EXIT if code is None else code
            cid = command.get("CommandId")
            streams = "".join(
                f'<rsp:Stream Name="{name}" CommandId="{cid}">{base64.b64encode(data[at:at + 3000]).decode()}'
                "</rsp:Stream>" for name, data in (("stdout", stdout), ("stderr", stderr))
                for at in range(0, len(data), 3000))
            return 200, envelope(action + "Response", message, f"""<rsp:ReceiveResponse>{streams}<rsp:Stream \
Name="stdout" CommandId="{cid}" End="true"></rsp:Stream><rsp:Stream Name="stderr" CommandId="{cid}" End="true">\
</rsp:Stream><rsp:CommandState CommandId="{cid}" State="{SHELL_URI}/CommandState/Done"><rsp:ExitCode>{code}\
</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>""")
        raise AssertionError(f"unexpected action {action}")

    def count(self, name: str) -> int:
        return sum(1 for action, _ in self.requests if action == name)


def powershell_files(endpoint: Endpoint, run: Run) -> tuple[bytes, bytes, int | None] | None:
    """What the shell's own scripts do on Windows: make the private directory, write and read files."""
    if "CreateDirectory($path, $acl)" in run.script:
        return PRIVATE_DIR.encode() + b"\r\n", b"", 0
    written = re.search(r"\[IO\.File\]::Create\('([^']+)'\)", run.script)
    if written:
        data = b"".join(base64.b64decode(line) for line in bytes(run.stdin).split(b"\r\n") if line)
        endpoint.files[written.group(1)] = data
        return f"sha256:{hashlib.sha256(data).hexdigest()}\r\n".encode(), b"", 0
    read = re.search(r"\[IO\.File\]::OpenRead\('([^']+)'\)\n\$buffer", run.script)
    if read:
        data = endpoint.files[read.group(1)]
        lines = b"".join(base64.b64encode(data[at:at + FETCH_BLOCK]) + b"\r\n"
                         for at in range(0, len(data), FETCH_BLOCK))
        return lines + f"sha256:{hashlib.sha256(data).hexdigest()}\r\n".encode(), b"", 0
    if "Remove-Item -LiteralPath" in run.script:
        for path in re.findall(r"'([^']+)'", run.script.split("Remove-Item -LiteralPath", 1)[1]):
            endpoint.files.pop(path, None)
        return b"", b"", 0
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    endpoint: Endpoint

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status, body = self.server.endpoint.answer(raw, self.headers.get("Authorization", ""))  # type: ignore[attr-defined]
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", "Basic")
        self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[Endpoint, int]]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(behave: Behaviour, context: ssl.SSLContext | None = None) -> tuple[Endpoint, int]:
        endpoint = Endpoint(behave)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.endpoint = endpoint  # type: ignore[attr-defined]
        if context is not None:
            server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return endpoint, server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def over_http(port: int) -> WinRMTransport:
    """Plain HTTP and basic auth, for the protocol only (the kind itself speaks HTTPS alone)."""
    from pypsrp.wsman import WSMan

    return WinRMTransport(f"deploy@127.0.0.1:{port}", lambda: WSMan(
        "127.0.0.1", port=port, username="deploy", password=PASSWORD, ssl=False, auth="basic",
        encryption="never", connection_timeout=5, read_timeout=10, operation_timeout=5))


def answering(stdout: bytes, stderr: bytes, code: int | None) -> Behaviour:
    def behave(endpoint: Endpoint, run: Run) -> tuple[bytes, bytes, int | None]:
        return powershell_files(endpoint, run) or (stdout, stderr, code)
    return behave


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

def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "runner.pem", tmp_path / "runner.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


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
