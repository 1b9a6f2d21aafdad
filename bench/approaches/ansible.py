"""(d) Ansible (ansible-core from PyPI, in bench/.venv-ansible): copy + ``shell: mysql ... < file``.

One play over every target: each target is a host alias (``t01``..) whose ``ansible_host`` is its runner, so
``forks = N`` gives the same parallelism as dbupdater's ``--parallel N``; aliases of one runner share
Ansible's SSH ControlMaster connection, as they would in a real inventory. Default strategy (linear) and
default SSH settings otherwise (ControlPersist on, pipelining off). Host keys are checked against the rig's
known_hosts (StrictHostKeyChecking yes); the password is only in the 0600 option file that ``copy`` uploads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from ..measure import Sample, run_timed
from ..settings import BENCH_DIR
from ..workloads import Workload
from .base import Approach, copy_numbered

PLAYBOOK = """\
- name: apply SQL scripts with the mysql client on the runners
  hosts: all
  gather_facts: false
  vars:
    workdir: "/tmp/bench-ansible-{{ inventory_hostname }}"
  tasks:
    - name: apply, then always remove the private directory
      block:
        - name: private directory on the runner
          ansible.builtin.file:
            path: "{{ workdir }}"
            state: directory
            mode: "0700"
        - name: client option file (the password never reaches a command line)
          ansible.builtin.copy:
            src: "{{ bench_cnf }}"
            dest: "{{ workdir }}/client.cnf"
            mode: "0600"
        - name: scripts
          ansible.builtin.copy:
            src: "{{ bench_scripts_dir }}/"
            dest: "{{ workdir }}/scripts/"
            mode: "0600"
        - name: run each script with mysql
          ansible.builtin.shell: >-
            mysql --defaults-extra-file={{ workdir }}/client.cnf --batch --show-warnings --connect-timeout=15
            --host={{ db_host }} --port={{ db_port }} --database={{ bench_db | quote }}
            < {{ workdir }}/scripts/{{ item }}
          loop: "{{ bench_scripts }}"
      always:
        - name: remove the private directory
          ansible.builtin.file:
            path: "{{ workdir }}"
            state: absent
"""


def find_playbook() -> str | None:
    candidates = [os.environ.get("BENCH_ANSIBLE_PLAYBOOK", ""), str(BENCH_DIR / ".venv-ansible" / "bin" /
                                                                    "ansible-playbook")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("ansible-playbook")


class Ansible(Approach):
    id = "d"
    key = "d"
    label = "(d) Ansible"
    slow = True
    _version: str | None = None

    def unavailable(self) -> str | None:
        if find_playbook() is None:
            return "ansible-core is not installed (bench/run.sh installs it into bench/.venv-ansible)"
        return None

    def version(self) -> str:
        if self._version is None:
            playbook = find_playbook()
            out = subprocess.run([playbook or "ansible-playbook", "--version"], capture_output=True, text=True,
                                 check=False, timeout=120).stdout
            self._version = out.splitlines()[0].strip() if out else "?"
        return self._version

    def describe(self) -> str:
        return (f"{self.label} ({self.version()}): copy + shell, forks {self.settings.parallel}, one host alias "
                "per target")

    def prepare(self, workload: Workload) -> None:
        bed = self.bed
        folder = self.workdir(workload)
        scripts = copy_numbered(workload.scripts, folder / "scripts")
        common = {
            "ansible_user": bed.info.runner_user,
            "ansible_ssh_private_key_file": bed.info.runner_key_file,
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={bed.info.known_hosts} -o StrictHostKeyChecking=yes "
                                       "-o IdentitiesOnly=yes",
            "ansible_python_interpreter": "/usr/bin/python3",
            "bench_cnf": str(bed.controller_cnf),
            "bench_scripts_dir": str(folder / "scripts"),
            "bench_scripts": [p.name for p in scripts],
            "db_host": bed.db_host,
            "db_port": bed.mysql_port,
        }
        hosts = {}
        for number, target in enumerate(workload.targets, start=1):
            runner = bed.runner(target.runner)
            hosts[f"t{number:02d}"] = {"ansible_host": runner.host, "ansible_port": runner.port,
                                       "bench_db": target.database}
        (folder / "inventory.json").write_text(json.dumps({"all": {"vars": common, "hosts": hosts}}, indent=1),
                                               encoding="utf-8")
        (folder / "playbook.yml").write_text(PLAYBOOK, encoding="utf-8")
        (folder / "ansible.cfg").write_text(
            "[defaults]\n"
            f"forks = {self.settings.parallel}\n"
            "host_key_checking = True\n"
            "retry_files_enabled = False\n"
            f"local_tmp = {folder / 'tmp'}\n"
            "[ssh_connection]\n"
            f"control_path_dir = {folder / 'cp'}\n", encoding="utf-8")

    def run(self, workload: Workload, rep: int) -> Sample:
        folder = self.workdir(workload)
        env = {**os.environ, "ANSIBLE_CONFIG": str(folder / "ansible.cfg"), "ANSIBLE_HOME": str(folder / "home"),
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
        argv = [find_playbook() or "ansible-playbook", "-i", str(folder / "inventory.json"),
                "--forks", str(self.settings.parallel), str(folder / "playbook.yml")]
        proc = run_timed(argv, self.log_path(workload, rep), timeout=self.settings.timeout, env=env, cwd=folder)
        return self.sample_from(proc, "ansible-playbook")

    def cleanup(self, workload: Workload) -> None:
        """Close the ControlPersist masters, so every repetition starts with no SSH connection, like the others."""
        control_dir = self.workdir(workload) / "cp"
        if not control_dir.is_dir():
            return
        for socket in control_dir.iterdir():
            subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "runner"], capture_output=True,
                           check=False, timeout=30)
        for number in range(1, len(workload.targets) + 1):  # left only by a failed run (shared file system)
            shutil.rmtree(f"/tmp/bench-ansible-t{number:02d}", ignore_errors=True)
