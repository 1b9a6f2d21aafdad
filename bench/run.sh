#!/usr/bin/env bash
# The benchmark in one command: make sure the optional tools are there, then run `python -m bench`.
#
#   bench/run.sh [--size full|tiny] [--repeat K] [--parallel N] [--per-runner M] [--only a,b,c,d,e]
#                [--workloads sakila,ddl,fanout,many,wide] [--slow-baselines] [--ledgers new|existing]
#                [--out DIR] [--keep-rig]
#
# Needs root (the rig makes a runner user, network namespaces and private servers) and the project's .venv
# (bin/setup.sh). Installs, only when the selected approaches need them and they are missing:
#   (d) ansible-core from PyPI into bench/.venv-ansible (kept out of the project's .venv);
#   (e) sqitch and DBD::mysql from Debian (apt-get install -y sqitch libdbd-mysql-perl).
# BENCH_NO_INSTALL=1 skips both; an approach whose tool is missing is then reported as n/a.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
project=$(dirname "$here")
python="$project/.venv/bin/python"
ansible_venv="$here/.venv-ansible"
ansible_spec='ansible-core>=2.16,<2.19'

if [[ $EUID -ne 0 ]]; then
    echo "bench/run.sh: run as root (the rig creates a user, network namespaces and private servers)" >&2
    exit 2
fi
if [[ ! -x $python ]]; then
    echo "bench/run.sh: $python is missing; run bin/setup.sh first" >&2
    exit 2
fi

# Which approaches were asked for (default: all), to install only what they need.
only="a,b,c,d,e"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[i]} in
        --only) only=${args[i + 1]:-} ;;
        --only=*) only=${args[i]#--only=} ;;
    esac
done
wants() { [[ ",$only," == *",$1,"* ]]; }

if [[ ${BENCH_NO_INSTALL:-0} != 1 ]]; then
    if wants d && [[ ! -x $ansible_venv/bin/ansible-playbook ]]; then
        echo "bench/run.sh: installing $ansible_spec into $ansible_venv" >&2
        python3 -m venv "$ansible_venv"
        "$ansible_venv/bin/pip" install --quiet "$ansible_spec"
    fi
    if wants e && { ! command -v sqitch >/dev/null || ! perl -MDBD::mysql -e 1 2>/dev/null; }; then
        echo "bench/run.sh: installing sqitch and libdbd-mysql-perl (apt)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q sqitch libdbd-mysql-perl >/dev/null
    fi
fi

# Relative paths in the options stay relative to where you ran this from.
export PYTHONPATH="$project${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m bench "$@"
