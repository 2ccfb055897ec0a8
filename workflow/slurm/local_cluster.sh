#!/usr/bin/env bash
# A one-node SLURM cluster with job accounting on this machine, to test the workflow's SLURM profile
# (tests/test_slurm.py) without a real cluster. Debian/Ubuntu, as root:
#
#   workflow/slurm/local_cluster.sh start    # install what is missing, configure, start, wait for the node
#   workflow/slurm/local_cluster.sh status   # exit status 0 when the node takes jobs
#   workflow/slurm/local_cluster.sh stop     # stop the daemons this script started
#
# start is safe to run again: running daemons are kept; a changed configuration restarts the SLURM ones.
# It installs munge, MariaDB, slurmdbd, slurmctld and slurmd (apt-get), writes /etc/slurm/slurm.conf and
# /etc/slurm/slurmdbd.conf (one node: this host, all its CPUs and most of its memory; one partition,
# `debug`; accounting in MariaDB, which Snakemake's SLURM executor needs to see jobs finish) and
# starts the daemons directly (no systemd needed, so it works in containers too). It refuses to overwrite a
# slurm.conf it did not write. Logs: /var/log/slurm/ and /var/log/collab-local-slurm/.
set -euo pipefail

CLUSTER=collab
PARTITION=debug
MARKER="# Written by workflow/slurm/local_cluster.sh"
ETC=/etc/slurm
STATE=/var/lib/collab-local-slurm # what this script started (so that stop leaves other daemons alone)
LOGS=/var/log/collab-local-slurm
DB=slurm_acct_db
DB_USER=slurm
PACKAGES=(munge mariadb-server slurmdbd slurmctld slurmd slurm-client)
WAIT_S=90 # for the node to become idle

say() { echo "local_cluster: $*"; }
die() {
    echo "local_cluster: error: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start|stop|status" >&2
    exit 2
}

check_platform() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts system daemons)"
    local id="" like=""
    if [[ -r /etc/os-release ]]; then
        # shellcheck source=/dev/null
        id=$(. /etc/os-release && echo "${ID:-}")
        # shellcheck source=/dev/null
        like=$(. /etc/os-release && echo "${ID_LIKE:-}")
    fi
    [[ $id == debian || $id == ubuntu || " $like " == *" debian "* ]] ||
        die "Debian or Ubuntu only (this is '${id:-unknown}'); on another system install SLURM with accounting yourself"
    command -v apt-get >/dev/null || die "apt-get not found"
}

# --- packages ---------------------------------------------------------------------------------------------
install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return
    say "installing ${missing[*]}"
    # Keep the packages' own service scripts from starting daemons with their default configuration: this
    # script starts them itself. A policy-rc.d that is already there (containers) is left as it is.
    local policy=/usr/sbin/policy-rc.d ours=""
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        ours=1
    fi
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    } >"$LOGS/apt.log" 2>&1 || rc=$?
    [[ -n $ours ]] && rm -f "$policy"
    [[ $rc -eq 0 ]] || {
        tail -n 20 "$LOGS/apt.log" >&2
        die "apt-get failed (log: $LOGS/apt.log)"
    }
}

# --- configuration ----------------------------------------------------------------------------------------
node_name() { hostname -s; }

# "NodeName=... CPUs=... Boards=... SocketsPerBoard=... CoresPerSocket=... ThreadsPerCore=... RealMemory=..."
# as slurmd detects this machine, with 90% of its memory (what jobs may request).
node_line() {
    local line mem
    line=$(slurmd -C | grep '^NodeName=' | head -n 1)
    [[ -n $line ]] || die "slurmd -C did not describe this machine"
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$line")
    line=$(sed -e 's/ RealMemory=[0-9]*//' -e 's/ UpTime=.*//' <<<"$line")
    echo "$line NodeAddr=127.0.0.1 RealMemory=$((mem * 9 / 10)) State=UNKNOWN"
}

slurm_conf() {
    cat <<EOF
$MARKER: a one-node test cluster. Rewritten by its start command.
ClusterName=$CLUSTER
SlurmctldHost=$(node_name)(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# no cgroups: works in containers and virtual machines alike
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
ReturnToService=2
MpiDefault=none
KillWait=5
# accounting: sacct (Snakemake's job status queries) reads it from slurmdbd
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
$(node_line)
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

db_password() {
    if [[ -f $ETC/slurmdbd.conf ]] && grep -q '^StoragePass=' "$ETC/slurmdbd.conf"; then
        sed -n 's/^StoragePass=//p' "$ETC/slurmdbd.conf"
    else
        head -c 18 /dev/urandom | base64 | tr -d '/+='
    fi
}

slurmdbd_conf() {
    cat <<EOF
$MARKER: accounting for the one-node test cluster.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$1
StorageLoc=$DB
EOF
}

# Write $2 to $1 (mode $3) when it differs; returns 0 when the file changed.
install_file() {
    local path=$1 text=$2 mode=$3
    if [[ -f $path ]] && [[ "$(cat "$path")" == "$text" ]]; then
        chmod "$mode" "$path"
        return 1
    fi
    local tmp
    tmp=$(mktemp "$path.XXXXXX")
    printf '%s\n' "$text" >"$tmp"
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$path"
    return 0
}

write_config() {
    mkdir -p "$ETC" /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
    local f
    for f in slurm.conf slurmdbd.conf; do
        if [[ -f $ETC/$f ]] && ! head -n 1 "$ETC/$f" | grep -qF "$MARKER"; then
            die "$ETC/$f exists and was not written by this script; not touching this machine's SLURM"
        fi
    done
    CHANGED=""
    install_file "$ETC/slurmdbd.conf" "$(slurmdbd_conf "$(db_password)")" 600 && CHANGED=1
    install_file "$ETC/slurm.conf" "$(slurm_conf)" 644 && CHANGED=1
    return 0
}

# --- daemons ----------------------------------------------------------------------------------------------
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2 i
    shift 2
    for ((i = 0; i < seconds * 2; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "$what did not come up within ${seconds}s (logs: /var/log/slurm/, $LOGS/)"
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
mariadb_ok() { mysqladmin --connect-timeout=2 ping >/dev/null 2>&1; }
slurmdbd_ok() { pid_alive /run/slurmdbd.pid && sacctmgr -n -P show cluster format=cluster >/dev/null 2>&1; }
slurmctld_ok() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
node_state() { sinfo -h -N -n "$(node_name)" -o %t 2>/dev/null | head -n 1; }
node_ready() { [[ $(node_state) =~ ^(idle|mix|alloc) ]]; }

start_munge() {
    munge_ok && return
    [[ -s /etc/munge/munge.key ]] || {
        say "creating a munge key"
        if command -v mungekey >/dev/null; then mungekey --create --force; else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        fi
    }
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 755 /run/munge
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged
    touch "$STATE/munge"
    wait_for 20 munged munge_ok
}

start_mariadb() {
    if ! mariadb_ok; then
        say "starting MariaDB"
        install -d -o mysql -g mysql -m 755 /run/mysqld
        [[ -d /var/lib/mysql/mysql ]] || mysql_install_db --user=mysql >"$LOGS/mysql_install_db.log" 2>&1
        touch "$LOGS/mariadb.err"
        chown mysql:mysql "$LOGS/mariadb.err" # the server runs as mysql
        setsid mysqld_safe --user=mysql --skip-syslog --log-error="$LOGS/mariadb.err" \
            </dev/null >"$LOGS/mariadb.log" 2>&1 &
        touch "$STATE/mariadb"
        wait_for 60 MariaDB mariadb_ok
    fi
    local pass
    pass=$(sed -n 's/^StoragePass=//p' "$ETC/slurmdbd.conf")
    mysql <<EOF
CREATE DATABASE IF NOT EXISTS $DB;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$pass';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$pass';
GRANT ALL ON $DB.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
EOF
}

stop_pidfile() { # stop_pidfile NAME PIDFILE
    local pid i
    pid_alive "$2" || return 0
    pid=$(cat "$2")
    say "stopping $1 (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
}

start_slurm() {
    if [[ -n $CHANGED ]]; then # new configuration: restart what runs with the old one
        stop_pidfile slurmd /run/slurmd.pid
        stop_pidfile slurmctld /run/slurmctld.pid
        stop_pidfile slurmdbd /run/slurmdbd.pid
    fi
    if ! slurmdbd_ok; then
        pid_alive /run/slurmdbd.pid || {
            say "starting slurmdbd"
            slurmdbd
        }
        wait_for 60 slurmdbd slurmdbd_ok
    fi
    if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
        say "registering cluster $CLUSTER with slurmdbd"
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    if ! slurmctld_ok; then
        pid_alive /run/slurmctld.pid || {
            say "starting slurmctld"
            slurmctld
        }
        wait_for 60 slurmctld slurmctld_ok
    fi
    pid_alive /run/slurmd.pid || {
        say "starting slurmd"
        slurmd
    }
    local i state
    for ((i = 0; i < WAIT_S * 2; i++)); do
        node_ready && break
        state=$(node_state)
        if [[ $state =~ ^(down|drain|drng|fail) ]] && ((i % 10 == 9)); then
            scontrol update NodeName="$(node_name)" State=RESUME 2>/dev/null || true
        fi
        sleep 0.5
    done
    node_ready || die "node $(node_name) is '$(node_state)', not idle, after ${WAIT_S}s (see /var/log/slurm/)"
}

cmd_start() {
    check_platform
    mkdir -p "$STATE" "$LOGS"
    install_packages
    write_config
    start_munge
    start_mariadb
    start_slurm
    say "ready: node $(node_name) is $(node_state) in partition $PARTITION of cluster $CLUSTER"
}

cmd_stop() {
    check_platform
    stop_pidfile slurmd /run/slurmd.pid
    stop_pidfile slurmctld /run/slurmctld.pid
    stop_pidfile slurmdbd /run/slurmdbd.pid
    if [[ -f $STATE/mariadb ]]; then
        mariadb_ok && {
            say "stopping MariaDB"
            mysqladmin shutdown || true
        }
        rm -f "$STATE/mariadb"
    fi
    if [[ -f $STATE/munge ]]; then
        stop_pidfile munged /run/munge/munged.pid
        rm -f "$STATE/munge"
    fi
    return 0
}

cmd_status() {
    check_platform
    local ok=0
    report() { # report NAME CHECK...
        local name=$1
        shift
        if "$@"; then echo "$name: running"; else
            echo "$name: not running"
            ok=1
        fi
    }
    if ! command -v slurmctld >/dev/null; then
        echo "SLURM is not installed (run: $0 start)"
        return 1
    fi
    report munged munge_ok
    report mariadb mariadb_ok
    report slurmdbd slurmdbd_ok
    report slurmctld slurmctld_ok
    report slurmd pid_alive /run/slurmd.pid
    echo "node $(node_name): $(node_state || true)"
    node_ready || ok=1
    return $ok
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*) usage ;;
esac
