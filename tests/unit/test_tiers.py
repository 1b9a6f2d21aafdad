"""Tiers (environments.toml) on the stub engine: parsing with every problem named, the policy against the
command line (a loosening flag on a protected tier is exit 2 with nothing contacted), the tier's manifest, a
plain apply refused on a tier that requires approval, and waves (a failure in one wave: no later target is
touched, and every report says which targets never started)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dbupdater import cli
from dbupdater.model.errors import ExitCode
from dbupdater.tiers import Given, Tier, TierError, Waves, combine, load

from .fakes import HEADER, Harness, Repo


def tiers_file(repo: Repo, text: str) -> Path:
    path = repo.dir / "environments.toml"
    path.write_text(text, encoding="utf-8")
    return path


def run(repo: Repo, config: Path, *args: str) -> int:
    command, rest = (args[0], args[1:]) if args and not args[0].startswith("-") else ("apply", args)
    return cli.main([command, "--config", str(config), "--color", "never", *rest])


PROD = """
[qa]
manifest = "manifest.csv"
record_state = false
parallel = 4

[prod]
manifest = "manifest.csv"
record_state = false
require_approval = true
warnings_are_errors = true
parallel = 2
keep_going = false
script_timeout = "10m"
transports = ["fake"]
"""


# --- parsing ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "words"), [
    ("[prod]\nmanifest = 'm.csv'\nparalel = 2\n", "unknown key 'paralel'"),
    ("[prod]\nparallel = 2\n", "manifest is missing"),
    ("[prod]\nmanifest = 'm.csv'\nparallel = 0\n", "parallel = 0 must be at least 1"),
    ("[prod]\nmanifest = 'm.csv'\nparallel = true\n", "parallel = True is not a int"),
    ("[prod]\nmanifest = 'm.csv'\nscript_timeout = 'soon'\n", "script_timeout: 'soon' is not a duration"),
    ("[prod]\nmanifest = 'm.csv'\nwaves = ['1', '10%']\n", "the last wave must be \"100%\""),
    ("[prod]\nmanifest = 'm.csv'\nwaves = ['one', '100%']\n", "wave 'one' is neither"),
    ("[prod]\nmanifest = 'm.csv'\nwaves = ['150%', '100%']\n", "a percentage is above 0 and at most 100"),
    ("prod = 1\n", "'prod' is not a table"),
    ("[prod\n", "not valid TOML"),
])
def test_a_bad_tiers_file_names_the_file_the_tier_and_the_key(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "environments.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TierError) as raised:
        load(path)
    assert words in str(raised.value) and str(path) in str(raised.value)
    assert raised.value.exit_code == ExitCode.USAGE


def test_a_tier_reads_its_policy_and_its_manifest_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "environments.toml"
    path.write_text(PROD + "waves = ['1', '50%', '100%']\npause_between_waves = true\nbackup_before = true\n",
                    encoding="utf-8")
    prod = load(path).get("prod")
    assert prod.manifest == tmp_path / "manifest.csv"
    policy = prod.policy
    assert (policy.require_approval, policy.protected, policy.parallel, policy.keep_going) == (True, True, 2, False)
    assert policy.script_timeout == 600 and policy.transports == ("fake",) and policy.backup_before
    assert policy.waves == Waves(("1", "50%", "100%")) and policy.pause_between_waves
    with pytest.raises(TierError, match="no tier 'prd' \\(tiers: qa, prod\\)"):
        load(path).get("prd")


@pytest.mark.parametrize(("specs", "targets", "sizes"), [
    (["1", "10%", "100%"], 20, [1, 1, 18]),
    (["1", "10%", "100%"], 5, [1, 4]),  # 10% of 5 is 1 target, already started: that wave is dropped
    (["1", "100%"], 1, [1]),
    (["50%", "100%"], 3, [2, 1]),
    (["2", "1", "100%"], 4, [2, 2]),  # a smaller count than before adds nothing
    (["100%"], 0, []),
])
def test_waves_split_targets_in_manifest_order(specs: list[str], targets: int, sizes: list[int]) -> None:
    waves = Waves.parse(specs, "test").split(list(range(targets)))
    assert [len(wave) for wave in waves] == sizes
    assert [key for wave in waves for key in wave] == list(range(targets))


def policy_tier(**values: object) -> Tier:
    from dbupdater.tiers import Policy

    return Tier("prod", Path("m.csv"), Policy(**values))  # type: ignore[arg-type]


def test_the_command_line_tightens_freely_and_loosens_a_protected_tier_never() -> None:
    tier = policy_tier(protected=True, parallel=4, per_runner=2, keep_going=False, script_timeout=60.0)
    assert combine(tier, Given()) == combine(tier, Given(parallel=4, per_runner=2, script_timeout=60.0))
    tighter = combine(tier, Given(parallel=1, per_runner=1, script_timeout=10.0))
    assert (tighter.parallel, tighter.per_runner, tighter.script_timeout) == (1, 1, 10.0)
    for given, words in [(Given(parallel=64), "parallel = 4 (asked --parallel 64)"),
                         (Given(per_runner=8), "per_runner = 2 (asked --per-runner 8)"),
                         (Given(keep_going=True), "keep_going = false (asked --keep-going)"),
                         (Given(script_timeout=3600.0), "script_timeout = 60 (asked --script-timeout 3600)")]:
        with pytest.raises(TierError, match="tier prod is protected") as raised:
            combine(tier, given)
        assert words in str(raised.value)
    open_tier = policy_tier(parallel=4)
    loosened = combine(open_tier, Given(parallel=64))
    assert loosened.parallel == 64 and loosened.overridden == ("parallel = 4 (asked --parallel 64)",)


# --- through the command line ---------------------------------------------------------------------------------------


def test_a_flag_loosening_a_protected_tier_is_exit_2_with_nothing_run(harness: Harness, repo: Repo,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    repo.write()
    config = tiers_file(repo, PROD)
    for flags, policy in ((["--keep-going"], "keep_going = false"), (["--parallel", "64"], "parallel = 2"),
                          (["--script-timeout", "2h"], "script_timeout = 600")):
        assert run(repo, config, "--environment", "prod", *flags) == ExitCode.USAGE
        err = capsys.readouterr().err
        assert "tier prod is protected" in err and policy in err
    assert harness.ran == [] and harness.history("a") == []


def test_a_plain_apply_of_a_tier_requiring_approval_is_refused_with_exit_5(harness: Harness, repo: Repo,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    repo.write()
    config = tiers_file(repo, PROD)
    assert run(repo, config, "--environment", "prod", "--no-report") == ExitCode.REFUSED
    said = capsys.readouterr().out
    assert "tier prod requires an approved plan" in said and "--plan plan.json --yes" in said
    assert harness.ran == [] and harness.history("a") == []
    assert run(repo, config, "exec", "--environment", "prod", "--no-report") == ExitCode.REFUSED  # no way around
    assert harness.ran == []
    assert run(repo, config, "--environment", "prod", "--yes") == ExitCode.USAGE  # --yes names no plan
    assert "--yes is accepted only with --plan" in capsys.readouterr().err


def test_an_unprotected_tier_applies_with_its_manifest_and_says_what_a_flag_loosened(
        harness: Harness, repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    repo.write()
    config = tiers_file(repo, PROD)
    assert run(repo, config, "--environment", "qa", "--parallel", "9", "--no-report") == ExitCode.OK
    assert "loosens its policy: parallel = 4 (asked --parallel 9)" in capsys.readouterr().out
    assert harness.history("a") == [("1.sql", "success")]
    assert run(repo, config, "--environment", "nope") == ExitCode.USAGE
    assert "no tier 'nope' (tiers: qa, prod)" in capsys.readouterr().err


def test_a_tier_refuses_rows_of_a_transport_it_does_not_allow(harness: Harness, repo: Repo,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    repo.write()
    config = tiers_file(repo, PROD.replace('transports = ["fake"]', 'transports = ["ssh"]'))
    assert run(repo, config, "validate", "--environment", "prod") == ExitCode.USAGE
    assert "tier prod does not allow line 2: transport 'fake' (policy transports = ['ssh'])" in \
        capsys.readouterr().err


def test_a_protected_tier_refuses_a_row_whose_timeout_is_beyond_its_policy(harness: Harness, repo: Repo,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("1.sql", "ok"), script_timeout="3h")
    repo.write(header=[*HEADER, "script_timeout"])
    config = tiers_file(repo, PROD)
    assert run(repo, config, "validate", "--environment", "prod") == ExitCode.USAGE
    assert "line 2: script_timeout 10800 s (policy script_timeout = 600 s)" in capsys.readouterr().err


def test_warnings_are_errors_stops_the_target_and_fails_the_run(harness: Harness, repo: Repo,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("1.sql", "warn careful"))
    repo.row("a", repo.script("2.sql", "ok"))
    repo.write()
    config = tiers_file(repo, "[uat]\nmanifest = 'manifest.csv'\nrecord_state = false\nwarnings_are_errors = true\n")
    assert run(repo, config, "--environment", "uat", "--no-report") == ExitCode.SCRIPT_FAILED
    assert "warnings_are_errors makes that a failure" in capsys.readouterr().out
    assert harness.history("a") == [("1.sql", "success")]  # it did apply: the history says so


# --- waves --------------------------------------------------------------------------------------------------------


WAVES = "[prod]\nmanifest = 'manifest.csv'\nrecord_state = false\nwaves = ['1', '50%', '100%']\n"


@pytest.mark.parametrize("parallel", ["1", "8"])
def test_a_failure_in_the_first_wave_leaves_every_later_target_untouched(
        harness: Harness, repo: Repo, tmp_path: Path, parallel: str) -> None:
    repo.row("a", repo.script("bad.sql", "fail broken"))
    for database in "bcd":
        repo.row(database, repo.script("good.sql", "ok"))
    repo.write()
    config = tiers_file(repo, WAVES)
    folder = tmp_path / "report"
    code = run(repo, config, "--environment", "prod", "--parallel", parallel, "--keep-going",
               "--report-dir", str(folder))
    assert code == ExitCode.SCRIPT_FAILED
    assert harness.ran == [("a", "bad.sql")]
    for database in "bcd":
        assert harness.history(database) == []
    document = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    never = [r for r in document["results"] if r["status"] == "not run"]
    assert len(never) == 3
    assert all("waves 2-3 of 3 never started (wave 1 had a problem (bad.sql failed on" in r["reason"] for r in never)
    assert any("3 target(s) never started" in n["text"] for n in document["notices"])


def test_waves_run_one_after_another_when_each_succeeds(harness: Harness, repo: Repo,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    for database in "abcd":
        repo.row(database, repo.script("good.sql", "ok"))
    repo.write()
    config = tiers_file(repo, WAVES)
    assert run(repo, config, "--environment", "prod", "--no-report") == ExitCode.OK
    out = capsys.readouterr().out
    assert "wave 1 of 3: 1 target(s)" in out and "wave 2 of 3: 1 target(s)" in out and "wave 3 of 3: 2 target(s)" in out
    assert harness.ran[0] == ("a", "good.sql") and harness.ran[1] == ("b", "good.sql")
    assert sorted(harness.ran[2:]) == [("c", "good.sql"), ("d", "good.sql")]


def test_each_shard_walks_its_own_waves(harness: Harness, repo: Repo) -> None:
    for database in "abcdef":
        repo.row(database, repo.script("good.sql", "ok"))
    repo.write()
    config = tiers_file(repo, "[prod]\nmanifest = 'manifest.csv'\nrecord_state = false\nwaves = ['1', '100%']\n")
    assert run(repo, config, "--environment", "prod", "--shard", "1/2", "--no-report") == ExitCode.OK
    assert run(repo, config, "--environment", "prod", "--shard", "2/2", "--no-report") == ExitCode.OK
    assert sorted(harness.ran) == [(database, "good.sql") for database in "abcdef"]


def test_validate_without_secrets_checks_the_form_of_references_only(harness: Harness, repo: Repo,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("1.sql", "ok"), database_password="vault:secret/prod/db#password")
    repo.row("b", repo.script("1.sql", "ok"), database_password="env:PROD_DB_PASSWORD_NOT_SET")
    manifest = repo.write()
    assert cli.main(["validate", "-f", str(manifest), "--without-secrets", "--color", "never"]) == ExitCode.OK
    repo.rows[0]["database_password"] = "vault:secret/../sys#x"
    manifest = repo.write()
    assert cli.main(["validate", "-f", str(manifest), "--without-secrets", "--color", "never"]) == ExitCode.USAGE
    assert "line 2, column database_password" in capsys.readouterr().err


# --- the operator's answers, on a Run built directly (a terminal is the console's `ask`) -------------------------


def run_asking(repo: Repo, answers: list[str], *, lease: int = 60, thinking: float = 0.0,
               **promotion: object) -> tuple[int, list[tuple[str, str]]]:
    """A Run of the script kind whose operator answers `answers` in turn; the exit code and what was asked."""
    from dbupdater.execution.kinds import every_row
    from dbupdater.execution.options import RunOptions
    from dbupdater.execution.run import Invocation, Promotion, Run
    from dbupdater.steps import ScriptStep

    from .fakes import RecordingReporter

    asked: list[tuple[str, str]] = []

    def ask(shown: str, question: str) -> str | None:
        asked.append((shown, question))
        time.sleep(thinking)
        return answers.pop(0) if answers else None

    run = Run(repo.load(), Invocation("apply", environment="prod"), RunOptions(lock_lease=lease), RecordingReporter(),
              every_row(ScriptStep()), ask=ask, promotion=Promotion(**promotion))  # type: ignore[arg-type]
    return run.execute(), asked


@pytest.mark.parametrize(("answer", "code"), [("prod", ExitCode.OK), ("PROD", ExitCode.REFUSED),
                                              ("", ExitCode.REFUSED)])
def test_the_operator_approves_by_typing_the_tiers_name_only(harness: Harness, repo: Repo, answer: str,
                                                             code: ExitCode) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    result, asked = run_asking(repo, [answer], environment="prod", require_approval=True)
    assert result == code
    assert asked[0][1] == "Type the tier's name (prod) to approve; anything else refuses: "
    assert harness.history("a") == ([("1.sql", "success")] if code == ExitCode.OK else [])


@pytest.mark.parametrize("answer", ["y", "n"])
def test_between_waves_the_operator_is_asked_and_no_stops_the_rest(harness: Harness, repo: Repo,
                                                                   answer: str) -> None:
    for database in "abc":
        repo.row(database, repo.script("1.sql", "ok"))
    code, asked = run_asking(repo, [answer], waves=Waves(("1", "100%")), pause_between_waves=True)
    assert len(asked) == 1 and "wave 1 of 2 finished without a failure; wave 2 has 2 target(s)" in asked[0][0]
    if answer == "y":
        assert code == ExitCode.OK and sorted(harness.ran) == [(d, "1.sql") for d in "abc"]
    else:  # the rest never started: refused by the operator (exit 5), the run is not complete
        assert code == ExitCode.REFUSED
        assert harness.ran == [("a", "1.sql")]
        assert harness.history("b") == harness.history("c") == []


def test_an_operator_who_takes_longer_than_the_lease_still_holds_the_locks(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    code, _ = run_asking(repo, ["prod"], lease=1, thinking=2.5, environment="prod", require_approval=True)
    assert code == ExitCode.OK  # the leases were renewed while the question waited: no LOCK LOST
    assert harness.history("a") == [("1.sql", "success")]


def test_the_environment_command_on_a_tier_that_records_no_state_says_so(harness: Harness, repo: Repo,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    repo.write()
    config = tiers_file(repo, PROD)
    assert run(repo, config, "environment", "show", "--environment", "qa") == ExitCode.USAGE
    assert "tier qa records no state in Vault (record_state = false" in capsys.readouterr().err
