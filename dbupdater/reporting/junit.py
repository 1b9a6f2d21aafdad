"""junit.xml from a run document: a testsuite per target, a testcase per script, in the shape GitHub's and
GitLab's test reports read (the Jenkins/Surefire schema: `testsuites > testsuite > testcase` with `failure`,
`error`, `skipped`, `system-out`, `system-err`).

A failed or refused script is a `failure` carrying the client's error lines; a script that could not be
judged (runner or database unreachable, interrupted) is an `error`; an already-applied script is a skipped
case, and so is a script that never started because the run stopped first.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from .characters import xml_text
from .document import Document
from .lines import says_its_kind

FAILURES = {"failed", "refused"}
ERRORS = {"unreachable", "interrupted"}
SKIPS = {"skipped", "not run"}


def _case(suite: ET.Element, result: dict[str, Any]) -> None:
    step = result.get("step")  # a verify, an undo, a command, a pause: said, so a case reads for what it is
    name = result["script"] if says_its_kind(step, result["script"]) else f"{step} {result['script']}"
    case = ET.SubElement(suite, "testcase", name=name, classname=result["target"],
                         time=f"{result['seconds']:.3f}", file=result["script_id"] or result["script"])
    status, reason = result["status"], result["reason"]
    if status in FAILURES or status in ERRORS:
        tag = "failure" if status in FAILURES else "error"
        lines = result["errors"] + ([f"... {result['omitted_errors']} more error lines"]
                                    if result["omitted_errors"] else [])
        code = "" if result["exit_code"] is None else f" (client exit {result['exit_code']})"
        body = "\n".join([f"{status}{code}: {result['reason']}", *lines])
        element = ET.SubElement(case, tag, message=reason or status, type=status)
        element.text = body
    elif status in SKIPS:
        ET.SubElement(case, "skipped", message=reason or status)
    text = []
    progress = result.get("progress")  # a copy's tables as they were done, a follower's lag
    if progress and progress["lines"]:
        cut = progress["omitted_lines"]
        text += [f"[... {cut} earlier progress lines not kept]"] if cut else []
        text += [f"progress: {line}" for line in progress["lines"]]
    output = result.get("output")
    if output and output["lines"]:
        cut = output["omitted_lines"]
        text += [f"[... {cut} earlier lines ({output['omitted_bytes']} bytes) not kept]"] if cut else []
        text += [f"{line['stream']}: {line['text']}" for line in output["lines"]]
    if text:
        ET.SubElement(case, "system-out").text = "\n".join(text)
    if result["warnings"]:
        ET.SubElement(case, "system-err").text = "\n".join(f"warning: {w}" for w in result["warnings"])


def _well_formed(root: ET.Element) -> None:
    """Every text and attribute, whatever field it came from, within what XML 1.0 allows (see `characters`)."""
    for element in root.iter():
        if element.text:
            element.text = xml_text(element.text)
        element.attrib = {name: xml_text(value) for name, value in element.attrib.items()}


def junit_xml(document: Document) -> bytes:
    run = document["run"]
    by_target: dict[str, list[dict[str, Any]]] = {}
    for result in document["results"]:
        by_target.setdefault(result["target"], []).append(result)
    totals = document["summary"]["counts"]
    root = ET.Element("testsuites", name=f"dbupdater {run['command']} {run['id'][:8]}",
                      tests=str(len(document["results"])),
                      failures=str(sum(totals.get(s, 0) for s in FAILURES)),
                      errors=str(sum(totals.get(s, 0) for s in ERRORS)),
                      skipped=str(sum(totals.get(s, 0) for s in SKIPS)), time=f"{run['seconds']:.3f}",
                      timestamp=run["started_at"])
    for target, results in by_target.items():
        statuses = [r["status"] for r in results]
        first = next((r for r in results if r.get("started_at")), None)
        suite = ET.SubElement(root, "testsuite", name=target, tests=str(len(results)),
                              failures=str(sum(s in FAILURES for s in statuses)),
                              errors=str(sum(s in ERRORS for s in statuses)),
                              skipped=str(sum(s in SKIPS for s in statuses)),
                              time=f"{sum(r['seconds'] for r in results):.3f}",
                              timestamp=(first or {}).get("started_at") or run["started_at"])
        properties = ET.SubElement(suite, "properties")
        shard = results[0].get("shard") or run.get("shard")
        for name, value in (("run_id", results[0].get("run_id") or run["id"]), ("shard", shard),
                            ("environment", run.get("environment")), ("runner", results[0]["runner"])):
            if value:
                ET.SubElement(properties, "property", name=name, value=str(value))
        for result in results:
            _case(suite, result)
    _well_formed(root)
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"
