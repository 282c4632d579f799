#!/usr/bin/env bash
# Bring up a real single-host Slurm (Debian 12: Slurm 22.05) with simulated nodes, no systemd.
#
# Usage (as root):   bash slurm/dev/up.sh            then   bash slurm/dev/down.sh
#   SLURM_NODES=1|2        2 (default): node1,node2 = two slurmd on this host in partition `debug` (CPU),
#                          plus node3 in partition `gpu` with 2 placeholder GPUs (GRES gpu:2 whose files
#                          alias /dev/null): the scheduler allocates them, nothing computes on them;
#                          1: one node named `hostname -s`
#   SLURM_ACCOUNTING=0|1   0 (default): no slurmdbd; `sacct` is answered by slurm/dev/bin/sacct, a stand-in
#                          that reads `scontrol -o show job` (put slurm/dev/bin first on PATH).
#                          1: install and run mariadb + slurmdbd so that the real `sacct` works.
#   SLURM_STATE=/tmp/ptycho-slurm   state, spool, logs and pid files
#   SLURM_FORCE_CONF=1     overwrite an /etc/slurm/slurm.conf that this script did not write
#
# Installs slurmctld/slurmd/slurm-client/munge with apt when they are missing (needs root + apt).
# Idempotent: a cluster that this script already started is left running.
# Exit codes: 0 up; 3 not root; 4 packages missing and apt unavailable; 1 anything else.
set -euo pipefail
NODES=${SLURM_NODES:-2}
ACCT=${SLURM_ACCOUNTING:-0}
ST=${SLURM_STATE:-/tmp/ptycho-slurm}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MARK="# written by ptycho-torch slurm/dev/up.sh"
HOST=$(hostname -s)
NCPU=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)   # nproc obeys OMP_NUM_THREADS: ignore it
MEM_MB=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 ))

say() { echo "[slurm-dev] $*"; }
[ "$(id -u)" = 0 ] || { echo "slurm/dev/up.sh: needs root (daemons, /etc/slurm, apt)" >&2; exit 3; }

# ---- 0. already up? ----------------------------------------------------------------
if [ -s "$ST/slurmctld.pid" ] && kill -0 "$(cat "$ST/slurmctld.pid")" 2>/dev/null \
   && sinfo -h -o '%T' >/dev/null 2>&1; then
  say "already running (state in $ST)"; sinfo; exit 0
fi

# ---- 1. packages -------------------------------------------------------------------
PKGS=""
for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || PKGS="$PKGS ${pair#*:}"
done
if [ "$ACCT" = 1 ]; then
  command -v slurmdbd >/dev/null 2>&1 || [ -x /usr/sbin/slurmdbd ] || PKGS="$PKGS slurmdbd"
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || PKGS="$PKGS mariadb-server"
fi
if [ -n "$PKGS" ]; then
  command -v apt-get >/dev/null 2>&1 || { echo "slurm/dev/up.sh: missing$PKGS and no apt-get" >&2; exit 4; }
  say "installing$PKGS"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
fi
export PATH="/usr/sbin:$PATH"
mkdir -p "$ST"/{ctld,log,d}

# ---- 2. munge ----------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null || \
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 status=none
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged          # daemonizes; pid in /run/munge/munged.pid
  for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  touch "$ST/started-munge"                      # down.sh stops munged only if we started it
fi

# ---- 3. accounting -----------------------------------------------------------------
if [ "$ACCT" = 1 ]; then
  mkdir -p /run/mysqld && chown mysql:root /run/mysqld
  if ! mariadb -e 'select 1' >/dev/null 2>&1; then
    nohup /usr/sbin/mariadbd --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock \
      --pid-file=/run/mysqld/mysqld.pid >"$ST/log/mariadb.log" 2>&1 &
    for _ in $(seq 100); do mariadb -e 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
    touch "$ST/started-mariadb"
  fi
  # a fresh DB each start: `slurmctld -i` restarts job ids at 1 and stale rows would lie about state
  mariadb -e "DROP DATABASE IF EXISTS slurm_acct_db; CREATE DATABASE slurm_acct_db;
              CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  cat > /etc/slurm/slurmdbd.conf <<DBD
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$ST/log/slurmdbd.log
PidFile=$ST/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurmpw
DBD
  chmod 600 /etc/slurm/slurmdbd.conf
  slurmdbd
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/6819) 2>/dev/null && break; sleep 0.2; done
  ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5"
else
  ACCT_LINES="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi

# ---- 4. slurm.conf -----------------------------------------------------------------
if [ -s /etc/slurm/slurm.conf ] && ! grep -qF "$MARK" /etc/slurm/slurm.conf && [ "${SLURM_FORCE_CONF:-0}" != 1 ]; then
  echo "slurm/dev/up.sh: /etc/slurm/slurm.conf exists and was not written by this script; set SLURM_FORCE_CONF=1 to replace it" >&2
  exit 1
fi
mkdir -p /etc/slurm
if [ "$NODES" = 2 ]; then
  grep -qE '^127\.0\.0\.1[[:space:]].*\bnode1\b' /etc/hosts || echo "127.0.0.1 node1 node2" >> /etc/hosts  # MASTER_ADDR=node1
  grep -qE '^127\.0\.0\.1[[:space:]].*\bnode3\b' /etc/hosts || echo "127.0.0.1 node3" >> /etc/hosts
  NODE_LINES="NodeName=node[1-2] NodeHostname=$HOST NodeAddr=127.0.0.1 Port=17001-17002 CPUs=$NCPU RealMemory=$(( MEM_MB / 2 - 1024 )) State=UNKNOWN
NodeName=node3 NodeHostname=$HOST NodeAddr=127.0.0.1 Port=17003 CPUs=$NCPU RealMemory=$(( MEM_MB / 2 - 1024 )) Gres=gpu:2 State=UNKNOWN"
  NODE_NAMES="node1 node2 node3"; PART_NODES="node[1-2]"
  GPU_PART="PartitionName=gpu Nodes=node3 MaxTime=INFINITE State=UP"
  # Slurm 22.05 counts a gpu GRES only with a File (Count alone registers 0 and drains the node), so
  # the two "GPUs" are character devices aliasing /dev/null: SLURM allocates them and sets
  # CUDA_VISIBLE_DEVICES; nothing can compute on them (TaskPlugin=task/none: no device cgroup)
  mkdir -p "$ST/gpu"
  for k in 0 1; do [ -c "$ST/gpu/nvidia$k" ] || mknod "$ST/gpu/nvidia$k" c 1 3; done
  printf '%s\nAutoDetect=off\nNodeName=node3 Name=gpu File=%s\n' "$MARK" "$ST/gpu/nvidia[0-1]" > /etc/slurm/gres.conf
else
  NODE_LINES="NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=$(( MEM_MB - 2048 )) State=UNKNOWN"
  NODE_NAMES="$HOST"; PART_NODES="$HOST"; GPU_PART=""
  rm -f /etc/slurm/gres.conf
fi
cat > /etc/slurm/slurm.conf <<CONF
$MARK
ClusterName=ptychodev
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job may start again cred_expire+1 s later (default 120 s)
AuthInfo=cred_expire=10
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
$ACCT_LINES
JobCompType=jobcomp/none
MailProg=/bin/true
SwitchType=switch/none
GresTypes=gpu
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default memory a job that asks none takes the whole node
DefMemPerCPU=1000
# refuse impossible requests at submit time instead of pending forever
EnforcePartLimits=ALL
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=2
ReturnToService=2
StateSaveLocation=$ST/ctld
SlurmdSpoolDir=$ST/d/%n
SlurmctldPidFile=$ST/slurmctld.pid
SlurmdPidFile=$ST/slurmd-%n.pid
SlurmctldLogFile=$ST/log/slurmctld.log
SlurmdLogFile=$ST/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldPort=6817
SlurmdPort=6818
MinJobAge=300
KillWait=5
OverTimeLimit=0
InactiveLimit=0
MessageTimeout=10
# a node whose slurmd died is set DOWN (its jobs requeued) 28-35 s later, not after 5 min
SlurmdTimeout=20
$NODE_LINES
PartitionName=debug Nodes=$PART_NODES Default=YES MaxTime=INFINITE State=UP
$GPU_PART
CONF

# ---- 5. daemons --------------------------------------------------------------------
slurmctld -i                                     # daemonizes; -i: ignore state of earlier runs
for n in $NODE_NAMES; do mkdir -p "$ST/d/$n"; slurmd -N "$n"; done
for _ in $(seq 150); do
  [ "$(sinfo -h -o '%T' 2>/dev/null | sort -u)" = "idle" ] && break; sleep 0.2
done
[ "$(sinfo -h -o '%T' 2>/dev/null | sort -u)" = "idle" ] || { echo "slurm/dev/up.sh: nodes not idle; see $ST/log" >&2; sinfo >&2 || true; exit 1; }
sinfo
if [ "$ACCT" != 1 ]; then
  say "no accounting: put the sacct stand-in first on PATH:  export PATH=$HERE/bin:\$PATH"
fi
