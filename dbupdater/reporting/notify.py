"""Notifications at the end of a run: a JSON webhook (optionally HMAC-signed) and Slack incoming webhooks.

A listener like every report: it gathers the run's identity from `RunStarted` (and from `Approved`, who approved
the plan it applies) and posts once, at `RunFinished`, or when the CLI says the run ended otherwise (`finish` for
a refused run, `abort` for one that ended by an error or an interrupt before it had a result). A notification
never changes the run's exit code: one that fails or takes longer than TIMEOUT seconds (connecting included)
becomes a warning: on the console, and in run.json's notices and report.html (posting comes after the run folder
was written: the run document takes the late notice and has the folder written again, so a hanging webhook costs
no more than its TIMEOUT). The standard library's HTTP client is enough for one POST and keeps the slim install
slim (requests comes only with the vault extra); it verifies HTTPS certificates and host names by default, and
nothing here turns that off.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .. import __version__
from ..events import Approved, Event, RunAborted, RunFinished, RunStarted
from ..model.outcome import RunResult, Status
from ..model.secret import Secret, shown

TIMEOUT = 10.0  # seconds per notification, connecting included
MAX_FAILURES = 50  # failed rows listed in a webhook body (the rest are counted)
SLACK_FAILURES = 5  # and in a Slack message, which people read on a phone
REASON = 300  # characters of one failure's reason (and of each of its client's error lines)
ERROR_LINES = 3  # the client's first error lines per failure
FORMAT = "dbupdater.notification"
VERSION = 1
SIGNATURE_HEADER = "X-Dbupdater-Signature"
TIMESTAMP_HEADER = "X-Dbupdater-Timestamp"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
Warn = Callable[[str], None]


@dataclass(frozen=True)
class Destination:
    """Where one notification goes. `url` is a Secret for Slack (an incoming webhook's URL is its credential)
    and for any URL read through a reference; `shown` is what messages may say about it."""

    kind: str  # "slack" or "webhook"
    url: Secret

    @property
    def shown(self) -> str:
        return f"{self.kind} {masked(self.url.reveal())}"


def masked(url: str) -> str:
    """The URL without what may be its secret part: path, query and user info (Slack, Teams and Discord
    webhooks carry their token in the path)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    rest = "/***" if parts.path not in ("", "/") or parts.query or parts.fragment else ""
    return f"{parts.scheme}://{host}{port}{rest}"


def check_url(url: str, kind: str) -> str | None:
    """Why this URL cannot be posted to, or None. The message never repeats the URL."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "not an http(s):// URL with a host"
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        return "the URL holds spaces or control characters"
    if port == 0:
        return "port 0"
    if kind == "slack" and parts.scheme != "https" and parts.hostname not in LOOPBACK:
        return "a Slack webhook URL is a credential: https:// only"
    return None


def outcome_word(exit_code: int) -> str:
    return {0: "succeeded", 1: "failed", 2: "usage error", 3: "unreachable", 4: "internal error", 5: "refused",
            130: "interrupted"}.get(exit_code, f"exit {exit_code}")


def utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class Notifier:
    """Posts the run's end to every destination, in parallel, each within TIMEOUT; reports problems by `warn`."""

    def __init__(self, destinations: list[Destination], hmac_secret: Secret | None = None,
                 warn: Warn | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.destinations = list(destinations)
        self.hmac_secret = hmac_secret
        self.warn = warn or (lambda text: None)
        self.clock = clock
        self.started = clock()
        self.identity: dict[str, Any] = {"run_id": "", "command": "apply", "environment": None, "shard": None,
                                         "report_dir": None, "manifest": None}
        self.approval: dict[str, str | None] | None = None  # who approved the plan the run applied, if anyone
        self._sent = False
        self._lock = threading.Lock()
        self.delivered: list[str] = []  # shown destinations that answered 2xx (for tests and the log)
        self.literal_slack = False  # a Slack URL given on the command line itself (the CLI warns about it)

    def handle(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.started = self.clock()
            self.identity = {"run_id": event.run_id, "command": event.command, "environment": event.environment,
                             "shard": event.shard,
                             "report_dir": None if event.report_dir is None else str(event.report_dir),
                             "manifest": event.manifest.source}
        elif isinstance(event, Approved):  # said with the outcome: a reader of the channel sees who let it run
            self.approval = {key: None if value is None else shown(str(value))
                             for key, value in event.approval.data().items()}
        elif isinstance(event, RunFinished):
            self.finish(event.result, exit_code=event.exit_code)
        elif isinstance(event, RunAborted):
            self.abort(event.exit_code, event.error)

    def finish(self, result: RunResult, *, exit_code: int | None = None, error: str | None = None) -> None:
        """Post once: the first end of the run wins (RunFinished, a refusal, or an abort)."""
        with self._lock:
            if self._sent or not self.destinations:
                return
            self._sent = True
        body = self.body(result, int(result.exit_code) if exit_code is None else exit_code, error)
        self.post_all(body)

    def abort(self, exit_code: int, error: str) -> None:
        """The run ended without a result (a runner unreachable, a lock timeout, an interrupt while opening)."""
        self.finish(RunResult([], self.clock() - self.started), exit_code=exit_code, error=error)

    # --- what is sent ---

    def body(self, result: RunResult, exit_code: int, error: str | None) -> dict[str, Any]:
        counts = {status.value: result.count(status) for status in Status}
        problems = [o for o in result.outcomes
                    if o.status in (Status.FAILED, Status.UNREACHABLE, Status.REFUSED, Status.INTERRUPTED)]
        ident = self.identity
        return {
            "format": FORMAT, "version": VERSION,
            "notification_id": str(uuid.uuid4()),  # receivers drop a repeat they have seen
            "sent_at": utc(self.clock()),  # signed with the body: a replay later is recognisable as one
            "tool": {"name": "dbupdater", "version": __version__},
            "run_id": ident["run_id"], "command": ident["command"],
            "environment": None if ident["environment"] is None else shown(ident["environment"]),
            "shard": ident["shard"],
            "manifest": None if ident["manifest"] is None else shown(str(ident["manifest"])),
            "outcome": outcome_word(exit_code), "exit_code": exit_code, "interrupted": result.interrupted,
            "counts": counts, "rows": len(result.outcomes),
            "duration_seconds": round(result.seconds, 3),
            "failed": [{"script": shown(o.row.script_label), "target": shown(o.row.db.target_label),
                        "runner": shown(o.row.runner.label), "status": o.status.value,
                        "reason": _cut(shown(o.reason), REASON),
                        "errors": [_cut(shown(line), REASON) for line in o.errors[:ERROR_LINES]]}
                       for o in problems[:MAX_FAILURES]],
            "failed_omitted": max(0, len(problems) - MAX_FAILURES),
            "error": None if error is None else _cut(shown(error), REASON * 2),
            "report_dir": None if ident["report_dir"] is None else shown(ident["report_dir"]),
            "approval": self.approval,
        }

    def slack_message(self, body: dict[str, Any]) -> dict[str, Any]:
        """Slack's own shape: `text` (the notification and fallback line) and a few blocks."""
        counts = ", ".join(f"{n} {status}" for status, n in body["counts"].items() if n)
        where = f" on {body['environment']}" if body["environment"] else ""
        shard = f" (shard {body['shard']})" if body["shard"] else ""
        icon = {"succeeded": ":white_check_mark:", "interrupted": ":warning:"}.get(body["outcome"], ":x:")
        text = _slack(f"dbupdater {body['command']}{where}{shard}: {body['outcome']} (exit {body['exit_code']}): "
                      f"{counts or 'nothing ran'} in {body['duration_seconds']:.1f}s")  # Slack reads it as mrkdwn
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{text}*"}}]
        lines = [f"• `{_slack(f['script'])}` on `{_slack(f['target'])}`: "
                 f"{_slack(_cut(f['errors'][0] if f['errors'] else f['reason'], 150))}"
                 for f in body["failed"][:SLACK_FAILURES]]
        more = len(body["failed"]) - SLACK_FAILURES + body["failed_omitted"]
        if more > 0:
            lines.append(f"… and {more} more")
        if body["error"]:
            lines.append(_slack(_cut(body["error"], 300)))
        if lines:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}})
        context = [f"run `{_slack(body['run_id'])}`"]
        approval = body.get("approval")
        if approval:
            context.append(_slack(f"approved by {approval['by']} at {approval['at']} ({approval['method']})"))
        if body["report_dir"]:
            context.append(f"report: `{_slack(body['report_dir'])}`")
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]})
        return {"text": text, "blocks": blocks}

    def request(self, destination: Destination, body: dict[str, Any]) -> urllib.request.Request:
        document = self.slack_message(body) if destination.kind == "slack" else body
        data = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": f"dbupdater/{__version__}"}
        if destination.kind == "webhook" and self.hmac_secret is not None:
            sent = datetime.fromisoformat(body["sent_at"].replace("Z", "+00:00"))
            headers[TIMESTAMP_HEADER] = str(int(sent.timestamp()))  # the body's sent_at, which the signature covers
            headers[SIGNATURE_HEADER] = "sha256=" + sign(self.hmac_secret.reveal(), data)
        # http(s) only: every URL passed check_url when the command line was read
        return urllib.request.Request(destination.url.reveal(), data=data, headers=headers,  # noqa: S310
                                      method="POST")

    # --- sending ---

    def post_all(self, body: dict[str, Any]) -> None:
        """Every destination at once, each with its own TIMEOUT: the run ends at most TIMEOUT later."""
        deadline = time.monotonic() + TIMEOUT
        outcomes: dict[int, str | None] = {}
        threads = []
        for number, destination in enumerate(self.destinations):
            request = self.request(destination, body)

            def post(number: int = number, request: urllib.request.Request = request) -> None:
                outcomes[number] = _post(request, deadline)

            thread = threading.Thread(target=post, name=f"dbupdater-notify-{number}", daemon=True)
            thread.start()
            threads.append(thread)
        for number, (destination, thread) in enumerate(zip(self.destinations, threads, strict=True)):
            thread.join(max(0.0, deadline - time.monotonic()))
            problem = outcomes.get(number, f"no answer within {TIMEOUT:g}s")  # None: delivered
            if problem is None:
                self.delivered.append(destination.shown)
            else:
                self.warn(f"notification to {destination.shown} failed: {shown(problem)}; the run's exit code is "
                          "unchanged")


def sign(secret: str, data: bytes) -> str:
    """HMAC-SHA256 of the exact body bytes, hex: what a receiver recomputes before it parses anything."""
    return hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a new destination: urllib would repeat a POST as a GET without its body,
    and possibly to another host."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _post(request: urllib.request.Request, deadline: float) -> str | None:
    """None when the server answered 2xx, else why not (never the URL)."""
    opener = urllib.request.build_opener(_NoRedirects(), urllib.request.HTTPSHandler(
        context=ssl.create_default_context()))
    try:
        with opener.open(request, timeout=max(0.1, deadline - time.monotonic())) as response:
            response.read(64 * 1024)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"the server answered HTTP {exc.code}"
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            return f"the server's certificate was refused ({reason.verify_message})"
        return f"cannot connect ({getattr(reason, 'strerror', None) or reason})"
    except TimeoutError:
        return f"no answer within {TIMEOUT:g}s"
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if not 200 <= status < 300:
        return f"the server answered HTTP {status}"
    return None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slack(text: str) -> str:
    """Slack's mrkdwn escapes: only these three characters are control characters there."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
