"""A WinRM service on 127.0.0.1 that answers as Windows' does, for tests at the protocol boundary.

No Windows server runs here. The endpoint answers envelope for envelope in the shape of [MS-WSMV] (Create
shell -> ResourceCreated with the ShellId selector, Command -> CommandId, Send, Receive -> base64
stdout/stderr Streams, CommandState Running while output remains and Done with ExitCode, Signal, Delete; the
operation-timeout WSManFault 2150858793 while a command is quiet), at most PIECE bytes of output per Receive
as a server bounded by its envelope size does. What PowerShell would do with the scripts is played by the
endpoint (`powershell_files`: the shell's own scripts; `clients`: a client or two that the transport
contract runs): this tests the controller's side of the protocol, not PowerShell. Plain HTTP with basic
auth for the protocol itself (`over_http`); tests/test_winrm_protocol.py adds HTTPS.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import http.server
import ipaddress
import re
import ssl
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dbupdater.transports.winrm.connection import WinRMTransport
from dbupdater.transports.winrm.powershell import FETCH_BLOCK

PIECE = 96 * 1024  # bytes of output per Receive at most: base64 in an envelope under pypsrp's 150 KiB

NS = {"s": "http://www.w3.org/2003/05/soap-envelope", "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
      "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
      "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"}
SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
PASSWORD = "Pa55 'w0rd' \"x\" $(no) é"  # basic auth carries latin-1 only
PRIVATE_DIR = "C:\\Users\\deploy\\AppData\\Local\\Temp\\dbupdater.5f0c"
CONTROL_C_EXIT = 0xC000013A


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


GONE_FAULT = TIMEOUT_FAULT.replace("w:TimedOut", "w:InvalidSelectors").replace("2150858793", "2150858843").replace(
    "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.",
    "The request for the Windows Remote Shell with ShellId failed because the command was not found.")


def fault(relates_to: str, body: str) -> tuple[int, bytes]:
    return 500, envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates_to, body)


@dataclass
class Run:
    """One command on the endpoint: its script, the stdin it was sent, and what it answers."""

    script: str
    stdin: bytearray = field(default_factory=bytearray)
    ended: threading.Event = field(default_factory=threading.Event)
    signals: list[str] = field(default_factory=list)
    answered: bool = False
    out_at: int = 0  # bytes of stdout and stderr already answered: the rest goes in later Receives
    err_at: int = 0
    decoded: bytearray = field(default_factory=bytearray)  # stdin's base64 lines decoded so far
    parsed: int = 0  # bytes of `stdin` decoded so far

    def input(self) -> bytearray:
        """What the client's stdin got so far: the script decodes `$input`'s base64 lines as they end."""
        end = self.stdin.rfind(b"\r\n") + 2 if not self.ended.is_set() else len(self.stdin)
        if end > self.parsed:
            lines = bytes(self.stdin[self.parsed:end]).split(b"\r\n")
            self.decoded += b"".join(base64.b64decode(line) for line in lines if line)
            self.parsed = end
        return self.decoded  # not copied: a Receive takes only its piece


Behaviour = Callable[["Endpoint", Run], tuple[bytes | bytearray, bytes, int | None]]


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
            if "Terminate" in run.signals:  # the command is gone: Windows refuses its input
                return fault(message, GONE_FAULT)
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
            desired = body.find("rsp:Receive/rsp:DesiredStream", NS)
            assert desired is not None
            run = self.runs[desired.get("CommandId", "")]
            if "Terminate" in run.signals:  # ended by the client: nothing more to receive
                return fault(message, GONE_FAULT)
            run.ended.wait(0.3)
            stdout, stderr, code = self.behave(self, run)
            if code is None and "ctrl_c" in run.signals:
                code = CONTROL_C_EXIT
            out = stdout[run.out_at:run.out_at + PIECE]
            err = stderr[run.err_at:run.err_at + PIECE - len(out)]
            run.out_at += len(out)
            run.err_at += len(err)
            done = code is not None and run.out_at == len(stdout) and run.err_at == len(stderr)
            if not (out or err or done):
                threading.Event().wait(0.3)  # quiet: Windows answers the operation timeout
                return fault(message, TIMEOUT_FAULT)
            cid = desired.get("CommandId")
            streams = "".join(
                f'<rsp:Stream Name="{name}" CommandId="{cid}">{base64.b64encode(data[at:at + 3000]).decode()}'
                "</rsp:Stream>" for name, data in (("stdout", out), ("stderr", err))
                for at in range(0, len(data), 3000))
            if not done:
                return 200, envelope(action + "Response", message, f"""<rsp:ReceiveResponse>{streams}\
<rsp:CommandState CommandId="{cid}" State="{SHELL_URI}/CommandState/Running"/></rsp:ReceiveResponse>""")
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


@contextlib.contextmanager
def serving() -> Iterator[Callable[..., tuple[Endpoint, int]]]:
    """Starts endpoints on 127.0.0.1 (HTTPS with a context given), each shut down when the block ends."""
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

    try:
        yield start
    finally:
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


def clients(endpoint: Endpoint, run: Run) -> tuple[bytes | bytearray, bytes, int | None]:
    """The shell's own scripts, and `cat` (stdout: its stdin, as it arrives): what the transport contract
    runs on this peer. Any other client is missing, as Windows would say."""
    files = powershell_files(endpoint, run)
    if files is not None:
        return files
    program = re.search(r"\$start\.FileName = '([^']*)'", run.script)
    arguments = re.search(r"\$start\.Arguments = '([^']*)'", run.script)
    if program and program.group(1) == "cat" and arguments and arguments.group(1) == "":
        if "ctrl_c" in run.signals:  # Ctrl-C: what was printed so far, and the end
            return bytes(run.decoded[:run.out_at]), b"", None
        return run.input(), b"", 0 if run.ended.is_set() else None
    name = program.group(1) if program else "?"
    return b"", f"dbupdater: cannot start {name}: The system cannot find the file specified\r\n".encode(), 9009


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, the certificate its own CA (for --winrm-ca-bundle)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
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
