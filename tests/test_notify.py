"""Notifications (issue 13): real runs of the tool against the rig, posting to real HTTP servers on 127.0.0.1 that
this test runs in threads: one that accepts (body and HMAC checked), one that answers 500, one that never
answers. A notification never changes the exit code, and never shows a URL's secret part.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from .conftest import Target, Workspace

HMAC_SECRET = "notify-hmac-Secret-4f1c9"
SLACK_PATH = "/services/T000/B000/xoxSECRETpath42"


@dataclass
class Server:
    """An HTTP server answering every POST with `status`, keeping what it received."""

    status: int
    received: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def one(self) -> dict[str, Any]:
        assert len(self.received) == 1, self.received
        return self.received[0]


@pytest.fixture
def server() -> Iterator[Any]:
    running: list[http.server.ThreadingHTTPServer] = []

    def start(status: int = 204) -> Server:
        state = Server(status)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                state.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(state.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        state.port = httpd.server_address[1]
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        running.append(httpd)
        return state

    yield start
    for httpd in running:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


def _manifest(workspace: Workspace, target: Target, *, failing: bool = False) -> str:
    workspace.row(target, workspace.script("001_init.sql", "CREATE TABLE notified (id INT);\n"))
    if failing:
        workspace.row(target, workspace.script("002_bad.sql", "INSERT INTO no_such_table VALUES (1);\n"))
    return str(workspace.write())


def _in_run_folder(folder: Path, *warnings: str) -> None:
    """Each warning is a notice of run.json (checked by its schema) and is in report.html's data."""
    import jsonschema

    from dbupdater.reporting.document import schema

    document = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    jsonschema.validate(document, schema())
    notices = [notice["text"] for notice in document["notices"] if notice["level"] == "warning"]
    page = (folder / "report.html").read_text(encoding="utf-8")
    for warning in warnings:
        assert any(warning in notice for notice in notices), notices
        assert warning in page


def _assert_clean(text: str) -> None:
    assert HMAC_SECRET not in text and SLACK_PATH not in text and "xoxSECRET" not in text


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_a_webhook_gets_the_signed_outcome(workspace: Workspace, target: Target, run_tool, server) -> None:
    hook = server(200)
    began = time.time()
    result = run_tool("-f", _manifest(workspace, target, failing=True), "--notify", f"webhook:{hook.url()}",
                      "--notify-hmac-secret", "env:DBU_TEST_NOTIFY_HMAC", env={"DBU_TEST_NOTIFY_HMAC": HMAC_SECRET})
    assert result.code == 1, result.text
    _assert_clean(result.text)
    assert "notification" not in result.text  # delivered: nothing to say
    got = hook.one()
    assert got["path"] == "/hook" and got["headers"]["Content-Type"].startswith("application/json")
    body = got["body"]
    expected = hmac.new(HMAC_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert got["headers"]["X-Dbupdater-Signature"] == f"sha256={expected}"
    document = json.loads(body)
    sent = datetime.fromisoformat(document["sent_at"].replace("Z", "+00:00"))
    assert int(got["headers"]["X-Dbupdater-Timestamp"]) == int(sent.timestamp())
    assert began - 2 <= sent.timestamp() <= time.time() + 2
    assert document["format"] == "dbupdater.notification" and document["version"] == 1
    assert document["outcome"] == "failed" and document["exit_code"] == 1 and document["command"] == "apply"
    assert document["counts"]["applied"] == 1 and document["counts"]["failed"] == 1
    assert document["duration_seconds"] > 0 and len(document["run_id"]) >= 8
    (failure,) = document["failed"]
    assert failure["script"] == "002_bad.sql" and target.name in failure["target"]
    assert failure["status"] == "failed" and "exit 3" in failure["reason"]
    assert any("no_such_table" in line for line in failure["errors"])
    assert "report_dir" in document and document["environment"] is None
    assert document["report_dir"] is None or (Path(document["report_dir"]) / "run.json").is_file()


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_a_failing_notification_is_a_warning_and_keeps_the_exit_code(workspace: Workspace, target: Target,
                                                                     run_tool, server) -> None:
    broken = server(500)
    slack = server(500)
    result = run_tool("-f", _manifest(workspace, target), "--notify", f"webhook:{broken.url()}",
                      "--notify", "slack:env:DBU_TEST_SLACK_URL", env={"DBU_TEST_SLACK_URL": slack.url(SLACK_PATH)})
    assert result.code == 0, result.text
    _assert_clean(result.text)
    assert f"notification to webhook http://127.0.0.1:{broken.port}/*** failed: the server answered HTTP 500" \
        in result.text
    assert f"notification to slack http://127.0.0.1:{slack.port}/*** failed: the server answered HTTP 500" \
        in result.text
    assert broken.one()["path"] == "/hook" and "X-Dbupdater-Signature" not in broken.one()["headers"]
    # The folder on disk holds the failures too: notifications are posted after it was first written.
    [folder] = list((workspace.dir / "runs").iterdir())
    _in_run_folder(folder, f"notification to webhook http://127.0.0.1:{broken.port}/*** failed: the server "
                           "answered HTTP 500", f"notification to slack http://127.0.0.1:{slack.port}/*** failed")
    message = json.loads(slack.one()["body"])  # Slack's own shape
    assert slack.one()["path"] == SLACK_PATH
    assert message["text"].startswith("dbupdater apply: succeeded (exit 0): 1 applied")
    assert [block["type"] for block in message["blocks"]] == ["section", "context"]
    assert len(json.dumps(message)) < 1500


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_a_server_that_never_answers_costs_at_most_the_timeout(workspace: Workspace, target: Target, run_tool,
                                                               silent_port: int) -> None:
    manifest = _manifest(workspace, target)
    assert run_tool("-f", manifest).code == 0
    began = time.monotonic()
    baseline = run_tool("-f", manifest)  # nothing to do: skipped
    plain = time.monotonic() - began
    began = time.monotonic()
    folder = workspace.dir / "notified-run"
    result = run_tool("-f", manifest, "--notify", f"webhook:http://127.0.0.1:{silent_port}/never",
                      "--report-dir", str(folder))
    took = time.monotonic() - began
    assert baseline.code == 0 and result.code == 0, result.text
    assert "failed: no answer within 10s" in result.text
    _in_run_folder(folder, f"notification to webhook http://127.0.0.1:{silent_port}/*** failed: no answer within 10s")
    assert took - plain >= 8.5 and took - plain <= 10 + 3, f"{took:.1f}s against {plain:.1f}s without"
    print(f"never-answering webhook: {took:.2f}s against {plain:.2f}s without it")


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_a_refused_run_and_an_unreachable_runner_notify_too(workspace: Workspace, target: Target, run_tool,
                                                            server) -> None:
    hook = server(204)
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE drift_me (id INT);\n"))
    manifest = str(workspace.write())
    assert run_tool("-f", manifest).code == 0
    (workspace.dir / "001.sql").write_text("CREATE TABLE drift_me (id BIGINT);\n")
    result = run_tool("-f", manifest, "--notify", f"webhook:{hook.url()}")
    assert result.code == 5, result.text
    refused = json.loads(hook.one()["body"])
    assert refused["outcome"] == "refused" and refused["exit_code"] == 5 and refused["counts"]["refused"] == 1

    hook.received.clear()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there
    workspace.rows[0].update(sql_runner_host="127.0.0.1", sql_runner_port=str(port))
    result = run_tool("-f", str(workspace.write("gone.csv")), "--notify", f"webhook:{hook.url()}")
    assert result.code == 3, result.text
    gone = json.loads(hook.one()["body"])
    assert gone["outcome"] == "unreachable" and gone["exit_code"] == 3 and "unreachable" in gone["error"]


@pytest.mark.parametrize(("values", "says"), [
    (["--notify", "teams:https://example.invalid/x"], "expected slack:URL or webhook:URL"),
    (["--notify", "webhook:ftp://example.invalid/x"], "not an http(s):// URL"),
    (["--notify", "slack:http://hooks.example.invalid/services/x"], "https:// only"),
    (["--notify", "webhook:env:DBU_TEST_NOTIFY_UNSET"], "DBU_TEST_NOTIFY_UNSET"),
    (["--notify", "webhook:https://example.invalid/x", "--notify-hmac-secret", "literal-secret"],
     "must be a reference"),
    (["--notify", "slack:https://hooks.example.invalid/x", "--notify-hmac-secret", "env:HOME"], "no --notify webhook"),
])
@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_bad_notify_values_stop_before_anything_runs(workspace: Workspace, target: Target, run_tool,
                                                     values: list[str], says: str) -> None:
    result = run_tool("-f", _manifest(workspace, target), *values)
    assert result.code == 2, result.text
    assert says in result.text
    assert "notified" not in target.tables()
    assert "literal-secret" not in result.text and "hooks.example.invalid/services" not in result.text


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_a_slack_url_on_the_command_line_is_masked_and_warned_about(workspace: Workspace, target: Target,
                                                                    run_tool, server) -> None:
    slack = server(200)
    result = run_tool("-f", _manifest(workspace, target), "--notify", f"slack:{slack.url(SLACK_PATH)}")
    assert result.code == 0, result.text
    _assert_clean(result.text)
    assert "a Slack webhook URL is on the command line" in result.text
    assert json.loads(slack.one()["body"])["text"].startswith("dbupdater apply: succeeded")


# --- without the rig: what is shown and what is sent ----------------------------------------------------------


def test_urls_are_shown_without_their_secret_part() -> None:
    from dbupdater.reporting.notify import masked

    assert masked("https://hooks.slack.com/services/T1/B2/abc") == "https://hooks.slack.com/***"
    assert masked("https://user:pw@hooks.example.com:8443/x?token=t") == "https://hooks.example.com:8443/***"
    assert masked("https://example.com") == "https://example.com"
    assert masked("http://[::1]:9/a") == "http://[::1]:9/***"


def test_the_slack_message_is_short_and_escaped() -> None:
    from dbupdater.model.outcome import RunResult
    from dbupdater.reporting.notify import SLACK_FAILURES, Notifier

    notifier = Notifier([])
    body = notifier.body(RunResult([], 1.5), 1, None)
    body["environment"] = "qa <prod> & co"
    body["failed"] = [{"script": f"{n:03d}.sql", "target": "mysql://h:3306/d", "runner": "r", "status": "failed",
                       "reason": "x" * 500, "errors": ["ERROR 1146 <table>"]} for n in range(9)]
    message = notifier.slack_message(body)
    text = json.dumps(message)
    assert "<prod>" not in text and "&lt;prod&gt; &amp; co" in text and "&lt;table&gt;" in text
    assert message["blocks"][1]["text"]["text"].count("•") == SLACK_FAILURES and "and 4 more" in text
    assert len(text) < 2500
