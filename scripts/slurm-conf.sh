# Sourced by slurm-cluster.sh and slurm-hosts.sh: the slurm.conf settings both clusters share
# (see ../shared/SLURM.md for why each one matters here).
# usage: slurm_common_conf DIR [CRED_EXPIRE]   (DIR holds the munge socket and the job-completion
# log; CRED_EXPIRE, default 10 s, is also how long a requeued job waits before it may start again)
slurm_common_conf() {
  cat <<CONF
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$1/munge/munge.socket,cred_expire=${2:-10}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ReturnToService=2
MailProg=/bin/true
SlurmdParameters=config_overrides
JobCompType=jobcomp/filetxt
JobCompLoc=$1/log/jobcomp.txt
MinJobAge=600
# Short waits keep tests quick: TERM-to-KILL at the time limit, and the scheduler's pace (a
# requeued job starts within a second of its begin time, not at the next 30 s backfill pass).
KillWait=5
SchedulerParameters=sched_min_interval=100000,sched_interval=1,bf_interval=1
CONF
}
