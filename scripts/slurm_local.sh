#!/usr/bin/env bash
# A single-node SLURM cluster with accounting on this machine, for the SLURM tests and for
# trying `hydra/launcher=slurm` without a cluster.
#
#   bash scripts/slurm_local.sh start    install (apt, root) if needed, configure, start the daemons
#   bash scripts/slurm_local.sh status   which daemons run, who started them, the node state
#   bash scripts/slurm_local.sh stop     stop the daemons that `start` started (and only those)
#
# Debian 12 without systemd: munged, mariadbd, slurmdbd, slurmctld and slurmd are started by
# hand in the foreground of a background process, and their pids kept in $STATE/pids/. A daemon
# that already runs and was not started here (e.g. the system's munged) is used as it is and
# never stopped. `start` and `stop` are idempotent.
#
# Cluster: ClusterName=sec-local, one node (this host, topology from `slurmd -C`, RealMemory
# a bit below the detected value so that the node does not drain), one partition `local`,
# select/cons_tres + CR_Core, proctrack/linuxproc, task/none, accounting through slurmdbd +
# MariaDB (without accounting `sacct` fails, and submitit never sees a cancelled job finish),
# cred_expire=10 s (a requeued job waits that long before it starts again; SLURM's default is
# 120 s). Writes /etc/slurm/slurm.conf and /etc/slurm/slurmdbd.conf, refusing to overwrite
# files this script did not write.
#
#   SEC_SLURM_STATE   state, logs and pids (default /var/lib/sec-slurm). Job ids restart at 1
#                     when it is wiped: submitit folders must then be fresh.
set -euo pipefail

STATE=${SEC_SLURM_STATE:-/var/lib/sec-slurm}
PIDS=$STATE/pids
LOGS=$STATE/log
CONF_DIR=/etc/slurm
MARK="# written by sec scripts/slurm_local.sh"
CLUSTER=sec-local
PARTITION=local
DB_USER=slurm
DB_PASS=sec-local-slurmdbd
PACKAGES=(munge slurm-client slurmctld slurmd slurmdbd mariadb-server)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

say() { echo "slurm_local: $*"; }
die() {
  echo "slurm_local: error: $*" >&2
  exit 1
}

# ------------------------------------------------------------------ processes
running() { # name -> pid of a running process with that command name, if any
  pgrep -x "$1" | head -n1 || true
}

ours() { # name -> pid recorded by `start` if that process still runs under that name
  local f=$PIDS/$1.pid pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]; then
    echo "$pid"
    return 0
  fi
  rm -f "$f" # stale: the process is gone (or the pid was reused by another program)
  return 1
}

launch() { # name cmd... : start a foreground daemon in the background, record its pid
  local name=$1
  shift
  mkdir -p "$PIDS" "$LOGS"
  setsid "$@" >>"$LOGS/$name.out" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$PIDS/$name.pid"
  sleep 0.5
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$name" ]; then
    tail -n 20 "$LOGS/$name.out" "$LOGS/$name.log" 2>/dev/null >&2 || true
    rm -f "$PIDS/$name.pid"
    die "$name did not start (logs in $LOGS)"
  fi
  say "started $name (pid $pid)"
}

wait_for() { # seconds description cmd... : poll until cmd succeeds
  local seconds=$1 what=$2
  shift 2
  local t=0
  until "$@" >/dev/null 2>&1; do
    t=$((t + 1))
    [ "$t" -le $((seconds * 2)) ] || die "$what not ready after ${seconds}s (logs in $LOGS)"
    sleep 0.5
  done
}

# ------------------------------------------------------------------ install and config
install_packages() {
  local missing=()
  for bin in munged mariadbd slurmdbd slurmctld slurmd sbatch sacct; do
    command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || missing+=("$bin")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; run as root to apt-get install ${PACKAGES[*]}"
  say "installing ${PACKAGES[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${PACKAGES[@]}" >/dev/null || {
    apt-get update -q >/dev/null
    apt-get install -y -q "${PACKAGES[@]}" >/dev/null
  }
}

write_conf() { # path mode content : write a config file of ours, never someone else's
  local path=$1 mode=$2 content=$3
  if [ -f "$path" ] && ! grep -qF "$MARK" "$path"; then
    die "$path exists and was not written by this script; move it away to use the local cluster"
  fi
  mkdir -p "$(dirname "$path")"
  printf '%s\n%s\n' "$MARK" "$content" >"$path.tmp"
  chmod "$mode" "$path.tmp"
  mv "$path.tmp" "$path"
}

configure() {
  local node cpus boards sockets cores threads mem
  node=$(slurmd -C | sed -n 's/^NodeName=\([^ ]*\).*/\1/p')
  read -r cpus boards sockets cores threads mem < <(slurmd -C | head -n1 | sed -E \
    's/.*CPUs=([0-9]+) Boards=([0-9]+) SocketsPerBoard=([0-9]+) CoresPerSocket=([0-9]+) ThreadsPerCore=([0-9]+) RealMemory=([0-9]+).*/\1 \2 \3 \4 \5 \6/')
  [ -n "$node" ] && [ -n "$mem" ] || die "cannot read the node topology from 'slurmd -C'"
  # below the detected memory: a node reporting less than its configured RealMemory drains
  mem=$((mem * 9 / 10))
  mkdir -p "$STATE/ctld" "$STATE/d" "$LOGS"
  write_conf "$CONF_DIR/slurm.conf" 644 "ClusterName=$CLUSTER
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pidfile
SlurmdPidFile=$STATE/slurmd.pidfile
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
KillWait=10
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$node CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP"
  write_conf "$CONF_DIR/slurmdbd.conf" 600 "AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/slurmdbd.pidfile
LogFile=$LOGS/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db"
}

# ------------------------------------------------------------------ daemons
start_munge() {
  if [ -n "$(running munged)" ]; then return 0; fi
  [ -s /etc/munge/munge.key ] || setpriv --reuid=munge --regid=munge --init-groups mungekey --create --keyfile=/etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  launch munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground
  wait_for 20 munged munge -n
}

start_mariadb() {
  if [ -z "$(running mariadbd)" ]; then
    mkdir -p /run/mysqld
    chown mysql:mysql /run/mysqld
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    launch mariadbd /usr/sbin/mariadbd --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock
    wait_for 60 mariadb mariadb-admin --socket=/run/mysqld/mysqld.sock ping
  fi
  mariadb --socket=/run/mysqld/mysqld.sock -e "CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON slurm_acct_db.* TO '$DB_USER'@'localhost';"
}

node_ready() {
  local state
  state=$(sinfo -h -N -o %T 2>/dev/null | head -n1)
  case $state in idle | mixed | allocated | completing) return 0 ;; *) return 1 ;; esac
}

start() {
  install_packages
  if [ -z "$(running slurmctld)" ] || [ -z "$(running slurmd)" ]; then
    configure
  fi
  start_munge
  start_mariadb
  [ -n "$(running slurmdbd)" ] || {
    launch slurmdbd /usr/sbin/slurmdbd -D
    wait_for 60 slurmdbd sacctmgr -n show cluster
  }
  [ -n "$(running slurmctld)" ] || {
    launch slurmctld /usr/sbin/slurmctld -D
    wait_for 60 slurmctld scontrol ping
  }
  [ -n "$(running slurmd)" ] || launch slurmd /usr/sbin/slurmd -D
  wait_for 60 "the node" node_ready
  # accounting is what submitit reads job states from: check it answers
  sacct -n -X -S now >/dev/null || die "sacct fails: accounting (slurmdbd) is not working (logs in $LOGS)"
  say "ready: $(sinfo -h -o '%P %D node(s) %T %C (cpus A/I/O/T)')"
}

stop() {
  local name pid stopped=0
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    name=${DAEMONS[$i]}
    pid=$(ours "$name") || continue
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
      [ -d "/proc/$pid" ] || break
      sleep 0.5
    done
    if [ -d "/proc/$pid" ]; then
      say "$name (pid $pid) ignores SIGTERM: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDS/$name.pid"
    say "stopped $name (pid $pid)"
    stopped=$((stopped + 1))
  done
  # slurmctld / slurmdbd leave their own pid files behind
  rm -f "$STATE"/*.pidfile
  [ "$stopped" -gt 0 ] || say "nothing to stop (no daemon started by this script runs)"
}

status() {
  local name pid rc=0
  for name in "${DAEMONS[@]}"; do
    if pid=$(ours "$name"); then
      say "$name running (pid $pid, started by this script)"
    elif pid=$(running "$name") && [ -n "$pid" ]; then
      say "$name running (pid $pid, not started by this script)"
    else
      say "$name not running"
      rc=1
    fi
  done
  if node_ready; then say "node: $(sinfo -h -N -o '%N %T')"; else
    say "node: not ready"
    rc=1
  fi
  return $rc
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) status ;;
*) die "usage: $0 start|stop|status" ;;
esac
