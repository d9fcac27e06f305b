#!/usr/bin/env bash
# Install and start a single-node SLURM cluster with accounting, for the cluster test
# (tests/test_cluster.py) and for trying workflow/profiles/slurm by hand.
#
#   sudo bash .ci/start-slurm.sh     # install (Debian 12 packages), configure, start, smoke-test
#   sudo bash .ci/stop-slurm.sh      # stop everything this script started
#
# Idempotent: a second call finds the daemons running and only re-checks the cluster (a changed
# configuration restarts the SLURM daemons).  Needs root on Debian (apt-get); no systemd is needed:
# every daemon is started directly, with its output in a log file, never on this script's output.
# On an error it prints the relevant log lines and exits 1, leaving what it started running: run
# stop-slurm.sh (.ci/run does so on exit).
#
# What it sets up (all on this machine, listening on loopback only):
#   munged                  authentication (Debian's /etc/munge/munge.key)
#   mariadb (mysqld_safe)   database slurm_acct_db, DB user 'slurm' (random password, kept in
#                           /etc/slurm/slurmdbd.conf, mode 600)
#   slurmdbd                accounting, so that `sacct` works (the executor plugin uses it)
#   slurmctld + slurmd      cluster 'metapool', node 'localhost' (all CPUs, 90 % of the memory),
#                           partition 'main' (default), account 'metapool' with user root
# SlurmUser is root: the daemons run as root, jobs run as the user who submits them.
# Logs: /var/log/slurm/.  The daemons this script started are recorded in /run/metapool-slurm/
# so that .ci/stop-slurm.sh stops those and nothing else.
set -euo pipefail

CLUSTER=metapool
ACCOUNT=metapool
PARTITION=main
NODE=localhost
LOGDIR=/var/log/slurm
STATE=/run/metapool-slurm          # which daemons this script started (read by stop-slurm.sh)
PACKAGES=(munge mariadb-server slurm-wlm slurmdbd slurm-client)
T0=$SECONDS

say() { printf '[start-slurm %3ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() {
    printf '[start-slurm] ERROR: %s\n' "$*" >&2
    for f in "${LOGS_ON_ERROR[@]}"; do
        [ -s "$f" ] && { printf -- '--- last lines of %s ---\n' "$f" >&2; tail -n 15 "$f" >&2; }
    done
    exit 1
}
LOGS_ON_ERROR=()

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.5 s until it succeeds.
wait_for() {
    local limit=$1 what=$2
    shift 2
    local end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$end" ] || die "$what: not ready after ${limit} s"
        sleep 0.5
    done
}

# alive PIDFILE: the process named in PIDFILE exists.
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts system daemons)"
command -v apt-get >/dev/null || die "needs a Debian-like system with apt-get (tested on Debian 12)"
mkdir -p "$STATE" "$LOGDIR"

# --- 1. packages -------------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]} (apt-get; log: $LOGDIR/apt.log)"
    LOGS_ON_ERROR=("$LOGDIR/apt.log")
    # Keep apt from starting the services itself (this script starts them): a temporary
    # policy-rc.d, only if the machine has none.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    ok=1
    { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
        >"$LOGDIR/apt.log" 2>&1 || ok=0
    [ "$own_policy" = 1 ] && rm -f "$policy"
    [ "$ok" = 1 ] || die "apt-get install ${missing[*]} failed"
    LOGS_ON_ERROR=()
else
    say "packages already installed"
fi

# --- 2. configuration ----------------------------------------------------------------------
CPUS=$(nproc)
MEM_MB=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
mkdir -p /var/lib/slurm/slurmctld /var/lib/slurm/slurmd

# The DB password is made once and then read back, so that the config does not change.
DBD_CONF=/etc/slurm/slurmdbd.conf
DB_PASS=$(sed -n 's/^StoragePass=//p' "$DBD_CONF" 2>/dev/null || true)
[ -n "$DB_PASS" ] || DB_PASS=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')

new_slurm_conf=$(cat <<EOF
# Written by .ci/start-slurm.sh (metapool): a single-node test cluster.
ClusterName=$CLUSTER
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=500
# Accounting through slurmdbd; the job comment is stored (the executor plugin writes the rule
# and wildcards there).
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$NODE
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
# Sample memory and CPU every 2 s, so that sacct's MaxRSS covers jobs of a few seconds.
JobAcctGatherFrequency=task=2
JobCompType=jobcomp/none
MinJobAge=300
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)
new_dbd_conf=$(cat <<EOF
# Written by .ci/start-slurm.sh (metapool).
AuthType=auth/munge
DbdHost=$NODE
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=$LOGDIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
)
changed=0
if [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$new_slurm_conf" ]; then
    printf '%s\n' "$new_slurm_conf" >/etc/slurm/slurm.conf
    changed=1
fi
if [ "$(cat "$DBD_CONF" 2>/dev/null)" != "$new_dbd_conf" ]; then
    (umask 077 && printf '%s\n' "$new_dbd_conf" >"$DBD_CONF")
    changed=1
fi
chown root:root "$DBD_CONF" && chmod 600 "$DBD_CONF"
if [ "$changed" = 1 ]; then
    say "wrote /etc/slurm/slurm.conf and $DBD_CONF (node $NODE: $CPUS CPUs, $MEM_MB MB)"
    # Daemons running with an older configuration are restarted.
    if alive /run/slurmd.pid || alive /run/slurmctld.pid || alive /run/slurmdbd.pid; then
        say "configuration changed: restarting the SLURM daemons"
        bash "$(dirname "$0")/stop-slurm.sh" --slurm-only
    fi
fi

# --- 3. munge ------------------------------------------------------------------------------
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    runuser -u munge -- /usr/sbin/mungekey --create --keyfile=/etc/munge/munge.key \
        || die "mungekey --create failed"
fi
munge_ok() { munge -n </dev/null | unmunge >/dev/null; }
if munge_ok 2>/dev/null; then
    say "munged already running"
else
    say "starting munged"
    LOGS_ON_ERROR=(/var/log/munge/munged.log)
    runuser -u munge -- /usr/sbin/munged </dev/null >/dev/null 2>&1 || die "munged did not start"
    touch "$STATE/munged"
    wait_for 20 "munged" munge_ok
fi

# --- 4. MariaDB and the accounting database -------------------------------------------------
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
if [ ! -d /var/lib/mysql/mysql ]; then
    say "initialising the MariaDB data directory"
    mariadb-install-db --user=mysql >"$LOGDIR/mariadb-install.log" 2>&1 \
        || { LOGS_ON_ERROR=("$LOGDIR/mariadb-install.log"); die "mariadb-install-db failed"; }
fi
if mysqladmin --silent ping >/dev/null 2>&1; then
    say "MariaDB already running"
else
    say "starting MariaDB (mysqld_safe, loopback only)"
    LOGS_ON_ERROR=("$LOGDIR/mysqld_safe.log" /var/log/mysql/error.log)
    setsid mysqld_safe --bind-address=127.0.0.1 --innodb-lock-wait-timeout=900 \
        </dev/null >"$LOGDIR/mysqld_safe.log" 2>&1 &
    touch "$STATE/mariadb"
    wait_for 60 "MariaDB" mysqladmin --silent ping
fi
mysql --batch <<EOF || die "could not create the database slurm_acct_db and its user"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL PRIVILEGES ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF
LOGS_ON_ERROR=()

# --- 5. slurmdbd and the accounts -----------------------------------------------------------
LOGS_ON_ERROR=("$LOGDIR/slurmdbd.log")
if alive /run/slurmdbd.pid; then
    say "slurmdbd already running"
else
    say "starting slurmdbd"
    /usr/sbin/slurmdbd </dev/null >/dev/null 2>&1 || die "slurmdbd did not start"
    touch "$STATE/slurmdbd"
fi
wait_for 60 "slurmdbd (sacctmgr cannot reach it)" sacctmgr -n list cluster
if [ -z "$(sacctmgr -n -P list cluster "$CLUSTER" format=cluster)" ]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster $CLUSTER failed"
fi
if [ -z "$(sacctmgr -n -P list account "$ACCOUNT" format=account)" ]; then
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description="metapool test jobs" \
        organization=metapool >/dev/null || die "sacctmgr add account $ACCOUNT failed"
fi
if [ -z "$(sacctmgr -n -P list assoc cluster="$CLUSTER" account="$ACCOUNT" user=root format=user)" ]; then
    sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null \
        || die "sacctmgr add user root account=$ACCOUNT failed"
fi
say "accounting ready: cluster $CLUSTER, account $ACCOUNT, user root"

# --- 6. slurmctld and slurmd ----------------------------------------------------------------
LOGS_ON_ERROR=("$LOGDIR/slurmctld.log")
if alive /run/slurmctld.pid; then
    say "slurmctld already running"
else
    say "starting slurmctld"
    /usr/sbin/slurmctld </dev/null >/dev/null 2>&1 || die "slurmctld did not start"
    touch "$STATE/slurmctld"
fi
ctld_up() { scontrol ping | grep -q "is UP"; }
wait_for 60 "slurmctld" ctld_up
LOGS_ON_ERROR=("$LOGDIR/slurmd.log" "$LOGDIR/slurmctld.log")
if alive /run/slurmd.pid; then
    say "slurmd already running"
else
    say "starting slurmd -N $NODE"
    /usr/sbin/slurmd -N "$NODE" </dev/null >/dev/null 2>&1 || die "slurmd did not start"
    touch "$STATE/slurmd"
fi
node_state() { sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -n 1; }
node_ready() { case "$(node_state)" in idle|mix|alloc) return 0 ;; *) return 1 ;; esac; }
end=$((SECONDS + 60))
until node_ready; do
    case "$(node_state)" in
        drain*|down*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
    esac
    [ "$SECONDS" -lt "$end" ] || die "node $NODE is '$(node_state)', not idle, after 60 s ($(sinfo -h -N -o '%N %t %E'))"
    sleep 0.5
done
say "node $NODE is $(node_state) (partition $PARTITION)"

# --- 7. smoke test: a job runs and is accounted ---------------------------------------------
jobid=$(sbatch --parsable --account="$ACCOUNT" --partition="$PARTITION" --job-name=metapool-smoke \
    --output=/dev/null --time=1 --mem=10 --wrap hostname) || die "sbatch of a trivial job failed"
jobid=${jobid%%;*}
job_state() { sacct -n -X -P -j "$jobid" -o State 2>/dev/null | head -n 1; }
end=$((SECONDS + 90))
until [ "$(job_state)" = COMPLETED ]; do
    case "$(job_state)" in
        FAILED*|CANCELLED*|TIMEOUT*|NODE_FAIL*|OUT_OF_ME*|BOOT_FAIL*)
            die "smoke-test job $jobid ended as $(job_state)" ;;
    esac
    [ "$SECONDS" -lt "$end" ] || die "smoke-test job $jobid not COMPLETED in sacct after 90 s (squeue: $(squeue -h -j "$jobid" -o '%T %r' 2>&1), sacct: '$(job_state)')"
    sleep 0.5
done
say "SLURM is up: job $jobid ran and is COMPLETED in sacct ($((SECONDS - T0)) s in total)"
