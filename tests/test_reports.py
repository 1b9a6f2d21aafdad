"""The run folder on the rig: the real tool against MariaDB and PostgreSQL through the real runners, a failing
script among successes, and the three files checked by their own readers: run.json by its JSON Schema
(jsonschema), junit.xml by a JUnit library (junitparser), report.html in Debian's headless Chromium."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from junitparser import Failure, JUnitXml, Skipped

from dbupdater.reporting.document import schema

from .conftest import ROOT, Target, Workspace, fresh_targets, secret_values

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = ROOT / "docs" / "report-screenshot.png"
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() or not CHROMEDRIVER.exists(),
    reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver)")


def load(folder: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    jsonschema.validate(document, schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return document


def no_secret(folder: Path, info: Any) -> None:
    for path in folder.iterdir():
        text = path.read_text(encoding="utf-8")
        for value in secret_values(info):
            assert value not in text, f"a secret value is in {path.name}"


def missing_table(target: Target) -> str:
    return "SELECT * FROM no_such_table_here;\n"


def test_a_failing_script_among_successes(run_tool, workspace: Workspace, target: Target, info) -> None:  # type: ignore[no-untyped-def]
    workspace.row(target, workspace.script("001_create.sql", "CREATE TABLE t1 (id INT PRIMARY KEY);\n"))
    workspace.row(target, workspace.script("002_warn.sql", target.warning()))
    workspace.row(target, workspace.script("003_broken.sql", "INSERT INTO t1 VALUES (1);\n" + missing_table(target)))
    workspace.row(target, workspace.script("004_never.sql", "INSERT INTO t1 VALUES (2);\n"))
    manifest = workspace.write()
    result = run_tool("apply", "-f", str(manifest))
    assert result.code == 1, result.text
    [folder] = list((workspace.dir / "runs").iterdir())
    no_secret(folder, info)
    document = load(folder)
    assert [r["status"] for r in document["results"]] == ["applied", "applied", "failed", "not run"]
    broken = document["results"][2]
    assert broken["exit_code"] not in (None, 0)
    assert any("no_such_table_here" in line for line in broken["errors"])
    assert document["results"][1]["warnings"]
    assert document["run"]["argv"][:1] == ["apply"] and document["run"]["exit_code"] == 1

    [suite] = JUnitXml.fromfile(str(folder / "junit.xml"))
    assert suite.name == _label(target)
    cases = list(suite)
    assert [case.name for case in cases] == ["001_create.sql", "002_warn.sql", "003_broken.sql", "004_never.sql"]
    [failure] = cases[2].result
    assert isinstance(failure, Failure) and "no_such_table_here" in (failure.text or "")
    assert isinstance(cases[3].result[0], Skipped)

    # Fixed and run again: the applied scripts are skipped cases now.
    workspace.script("003_broken.sql", "INSERT INTO t1 VALUES (1);\n")
    assert run_tool("resolve", "-f", str(manifest), "--script", "003_broken.sql", "--mark", "applied").code == 0
    again = run_tool("apply", "-f", str(manifest), "--report-dir", str(workspace.dir / "second"))
    assert again.code == 0, again.text
    [suite] = JUnitXml.fromfile(str(workspace.dir / "second" / "junit.xml"))
    assert [case.is_skipped for case in suite] == [True, True, True, False]
    assert load(workspace.dir / "second")["results"][3]["status"] == "applied"


def test_output_json_on_the_rig(run_tool, workspace: Workspace, target: Target) -> None:  # type: ignore[no-untyped-def]
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE t1 (id INT);\n"))
    result = run_tool("apply", "-f", str(workspace.write()), "--output", "json", "--no-report")
    assert result.code == 0, result.text
    document = json.loads(result.out)
    jsonschema.validate(document, schema())
    assert document["results"][0]["status"] == "applied" and "001.sql" in result.err
    assert not (workspace.dir / "runs").exists()


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_characters_xml_forbids_from_a_real_client(run_tool, workspace: Workspace, target: Target,  # type: ignore[no-untyped-def]
                                                   tmp_path: Path) -> None:
    """PostgreSQL's error text holding U+FFFF (`RAISE EXCEPTION 'bad %', U&'\\FFFF'`) and output holding U+FFFE
    made junit.xml not well-formed, and CI systems then drop the whole test report. Now both files are parsed
    by strict readers (expat, junitparser), after the run and after `report` rebuilt them."""
    import xml.etree.ElementTree as ET

    workspace.row(target, workspace.script("001_prints.sql", "SELECT U&'odd \\FFFE output' AS x;\n"))
    workspace.row(target, workspace.script("002_raises.sql",
                                           "DO $$ BEGIN RAISE EXCEPTION 'bad %', U&'\\FFFF'; END $$;\n"))
    result = run_tool("apply", "-f", str(workspace.write()), "--report-dir", str(tmp_path / "run"))
    assert result.code == 1, result.text
    folder = tmp_path / "run"
    document = load(folder)
    [raised] = [r for r in document["results"] if r["status"] == "failed"]
    assert any("bad \uffff" in line for line in raised["errors"]), raised["errors"]  # the text as the client said it
    for rebuilt in (False, True):
        if rebuilt:
            (folder / "junit.xml").unlink()
            assert run_tool("report", str(folder / "run.json"), known_hosts=False).code == 1
        data = (folder / "junit.xml").read_bytes()
        root = ET.fromstring(data)  # expat: strict XML 1.0
        [suite] = JUnitXml.fromstring(data.decode("utf-8"))
        cases = {case.name: case for case in suite}
        [failure] = cases["002_raises.sql"].result
        assert isinstance(failure, Failure) and "bad \\uffff" in (failure.text or "")
        out = root.find(".//testcase[@name='001_prints.sql']/system-out")
        assert out is not None and "odd \\ufffe output" in (out.text or "")
        page = (folder / "report.html").read_text(encoding="utf-8")
        assert "\uffff" not in page and "\ufffe" not in page and "bad \\uffff" in page


@pytest.fixture
def both(rig, info) -> Iterator[list[Target]]:  # type: ignore[no-untyped-def]
    """A fresh MariaDB and a fresh PostgreSQL database, for one run over both."""
    with fresh_targets(rig, info, ("mysql", "postgresql"), f"r_{secrets.token_hex(4)}") as made:
        yield made


def browser():  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1100", "--no-first-run", "--disable-background-networking"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


@contextlib.contextmanager
def opened(page: Path) -> Iterator[Any]:
    """The page in headless Chromium: no script error when it is drawn, nor after what the test does with it."""
    driver = browser()
    try:
        driver.get(page.as_uri())
        assert _script_errors(driver) == []
        yield driver
        assert _script_errors(driver) == []
    finally:
        driver.quit()


def _script_errors(driver: Any) -> list[Any]:
    return [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]


@needs_chromium
def test_the_page_in_chromium(run_tool, workspace: Workspace, both: list[Target], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    mysql, postgres = both
    for target in both:
        workspace.row(target, workspace.script(f"{target.engine}/001_create.sql", "CREATE TABLE t1 (id INT);\n"))
        workspace.row(target, workspace.script(f"{target.engine}/002_load.sql", target.sleep(0.6)))
    workspace.row(mysql, workspace.script("mysql/003_notes.sql", mysql.warning()))
    workspace.row(postgres, workspace.script("postgresql/003_broken.sql", missing_table(postgres)))
    workspace.row(postgres, workspace.script("postgresql/004_after.sql", "SELECT 1;\n"))
    result = run_tool("apply", "-f", str(workspace.write()), "--keep-going", "--report-dir", str(tmp_path / "run"))
    assert result.code == 1, result.text
    page = tmp_path / "run" / "report.html"
    with opened(page) as driver:
        problems = driver.find_elements(By.CSS_SELECTOR, "#problems .problem")
        assert len(problems) == 1 and "003_broken.sql" in problems[0].text and "no_such_table_here" in problems[0].text
        sections = [s.get_attribute("id") for s in driver.find_elements(By.CSS_SELECTOR, "main > section")
                    if s.is_displayed()]
        assert sections[0] == "problems-section" and sections.index("warnings-section") < sections.index(
            "results-section")
        rows = driver.find_elements(By.CSS_SELECTOR, "#results tr.result")
        assert rows[0].get_attribute("data-status") == "failed"  # failures first
        assert len(driver.find_elements(By.CSS_SELECTOR, "#timeline .lane")) == 2
        assert len(driver.find_elements(By.CSS_SELECTOR, "#timeline .bar")) == 6

        # A row opens onto its client output.
        rows[0].click()
        detail = driver.find_element(By.CSS_SELECTOR, "#results tr.detail:not(.hidden)")
        assert "no_such_table_here" in detail.text
        driver.save_screenshot(str(tmp_path / "report.png"))

        # Filters: by status, then by target.
        driver.find_element(By.CSS_SELECTOR, "#filter-status input[data-status='applied']").click()
        visible = [r for r in driver.find_elements(By.CSS_SELECTOR, "#results tr.result") if r.is_displayed()]
        assert {r.get_attribute("data-status") for r in visible} == {"failed", "not run"}
        driver.find_element(By.CSS_SELECTOR, "#filter-status input[data-status='applied']").click()
        Select(driver.find_element(By.ID, "filter-target")).select_by_value(_label(mysql))
        visible = [r for r in driver.find_elements(By.CSS_SELECTOR, "#results tr.result") if r.is_displayed()]
        assert len(visible) == 3 and {r.get_attribute("data-target") for r in visible} == {_label(mysql)}
        assert "3 of 7 shown" in driver.find_element(By.ID, "shown-count").text
        lanes = [lane for lane in driver.find_elements(By.CSS_SELECTOR, "#timeline .lane") if lane.is_displayed()]
        assert len(lanes) == 1
    if not SCREENSHOT.exists() or os.environ.get("DBU_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(tmp_path / "report.png", SCREENSHOT)


@needs_chromium
def test_a_hostile_document_draws_in_chromium(tmp_path: Path) -> None:
    """A page drawn from a document `report` read from disk: a target named `__proto__` broke the timeline's
    script (an object used as a map), U+FFFF and a lone surrogate travel as JSON escapes, markup stays text."""
    from selenium.webdriver.common.by import By

    from dbupdater.reporting.runfolder import render

    from .unit.run_documents import document, result

    hostile = document(results=[
        result(1, "failed", target="__proto__", errors=["bad \uffff <img src=x onerror=alert(1)>"]),
        result(2, "applied", target="constructor", reason="lone \ud800"),  # not read back: webdriver cannot
        result(3, "applied", target="__proto__")])
    hostile["manifest"] = {}  # the schema requires none of its fields
    page = tmp_path / "report.html"
    page.write_bytes(render(hostile)["report.html"])
    with opened(page) as driver:
        lanes = driver.find_elements(By.CSS_SELECTOR, "#timeline .lane")
        assert [lane.get_attribute("data-target") for lane in lanes] == ["__proto__", "constructor"]
        problem = driver.find_element(By.CSS_SELECTOR, "#problems .problem")
        assert "<img src=x onerror=alert(1)>" in problem.text and "\uffff" in problem.text
        assert driver.find_elements(By.CSS_SELECTOR, "#problems img") == []


@needs_chromium
def test_a_steps_progress_is_shown_in_the_page(tmp_path: Path) -> None:
    """A copy's tables as they were done (the document's `progress`): in the problem box and in the row's detail."""
    from selenium.webdriver.common.by import By

    from dbupdater.reporting.runfolder import render

    from .unit.run_documents import document, result

    progress = {"lines": ["actor: 200 rows, checksum equal", "film: checksum differs"], "omitted_lines": 0}
    page = tmp_path / "report.html"
    page.write_bytes(render(document(results=[result(1, "failed", progress=progress)]))["report.html"])
    with opened(page) as driver:
        problem = driver.find_element(By.CSS_SELECTOR, "#problems .problem")
        summaries = [summary.text for summary in problem.find_elements(By.TAG_NAME, "summary")]
        assert summaries == ["progress", "client output"]
        shown = driver.find_elements(By.CSS_SELECTOR, "pre.progress")
        assert any("film: checksum differs" in (pre.get_attribute("textContent") or "") for pre in shown)


def _label(target: Target) -> str:
    return f"{target.engine}://{target.host}:{target.port}/{target.name}"
