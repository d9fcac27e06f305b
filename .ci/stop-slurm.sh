#!/usr/bin/env bash
# Stop the single-node SLURM cluster of .ci/start-slurm.sh: cancel its jobs, then stop slurmd,
# slurmctld, slurmdbd and - only if start-slurm.sh started them - MariaDB and munged.
#
#   sudo bash .ci/stop-slurm.sh                # everything
#   sudo bash .ci/stop-slurm.sh --slurm-only   # only the SLURM daemons (used on a config change)
#
# Safe to call when nothing runs.  Every daemon is stopped by the PID in its own PID file (never by
# process name), first with SIGTERM, after 30 s with SIGKILL.  Packages, configuration, the
# accounting database and the logs (/var/log/slurm) stay; the next start-slurm.sh reuses them.
set -uo pipefail

STATE=/run/metapool-slurm
slurm_only=0
[ "${1:-}" = "--slurm-only" ] && slurm_only=1

say() { printf '[stop-slurm] %s\n' "$*"; }

# stop_pidfile NAME PIDFILE: SIGTERM the process of PIDFILE and wait for it to exit.
stop_pidfile() {
    local name=$1 pidfile=$2 pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$pidfile"
        return 0
    fi
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 60); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
        sleep 0.5
    done
    say "$name (pid $pid) did not exit after 30 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null
    rm -f "$pidfile"
}

# Jobs first, so that no job step (slurmstepd) outlives slurmd.
if command -v squeue >/dev/null && [ -s /run/slurmctld.pid ] && kill -0 "$(cat /run/slurmctld.pid)" 2>/dev/null; then
    jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        say "cancelling jobs $jobs"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null
        for _ in $(seq 60); do
            [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
fi

stop_pidfile slurmd /run/slurmd.pid
stop_pidfile slurmctld /run/slurmctld.pid
stop_pidfile slurmdbd /run/slurmdbd.pid
rm -f "$STATE/slurmd" "$STATE/slurmctld" "$STATE/slurmdbd"

if [ "$slurm_only" = 0 ]; then
    if [ -e "$STATE/mariadb" ]; then
        # mysqld_safe exits by itself after a clean server shutdown.
        if mysqladmin --silent ping >/dev/null 2>&1; then
            say "stopping MariaDB"
            mysqladmin shutdown 2>/dev/null || stop_pidfile mariadb /run/mysqld/mysqld.pid
        fi
        rm -f "$STATE/mariadb"
    fi
    if [ -e "$STATE/munged" ]; then
        stop_pidfile munged /run/munge/munged.pid
        rm -f "$STATE/munged"
    fi
fi
say "done"
