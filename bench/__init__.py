"""Benchmark of dbupdater against the native client floor, a per-row SSH script, Ansible and sqitch.

Run it with ``bench/run.sh`` (which installs what the optional approaches need) or ``python -m bench``.
Everything runs on a private rig (MariaDB + sshd runner hosts in network namespaces) brought up for the run.
"""
