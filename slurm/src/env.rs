//! The job this process runs in, from the `SLURM_*` variables Slurm sets.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::hostlist::{expand_counts, expand_hostlist};
use crate::{Error, Result, Slurm};

/// A Slurm job as its own processes see it. Fields that Slurm sets only in some contexts (inside
/// a step, with GPUs, in an array) are `Option`s.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: u64,
    pub name: Option<String>,
    /// Set when the job is one task of a job array.
    pub array: Option<ArrayTask>,
    /// How many times the job was requeued (0 on the first run).
    pub restart_count: u32,
    /// Every node of the allocation, in order.
    pub nodes: Vec<String>,
    pub ntasks: Option<usize>,
    /// Tasks on each node of `nodes`.
    pub tasks_per_node: Vec<usize>,
    pub cpus_per_task: Option<usize>,
    /// GPUs as requested (`SLURM_GPUS`, e.g. `4` or `a100:4`), and how many this node has.
    pub gpus: Option<String>,
    pub gpus_on_node: Option<usize>,
    /// This task's global and node-local index within the step (set by srun only).
    pub proc_id: Option<usize>,
    pub local_id: Option<usize>,
    pub node_id: Option<usize>,
    pub submit_dir: Option<String>,
    /// Start and end of the job when Slurm puts them in the environment (23.02 and newer); see
    /// [`Job::end_time`] for the end time on any version.
    pub start_time: Option<SystemTime>,
    pub end_time: Option<SystemTime>,
}

/// One task of a job array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArrayTask {
    /// The array's job id (shared by its tasks; each task also has its own [`Job::id`]).
    pub job_id: u64,
    pub task_id: u32,
    pub count: Option<u32>,
    pub min: Option<u32>,
    pub max: Option<u32>,
}

impl Job {
    /// The job this process runs in, or `None` outside Slurm (no `SLURM_JOB_ID`).
    pub fn from_env() -> Result<Option<Job>> {
        Job::from_vars(std::env::vars())
    }

    /// As [`Job::from_env`], from any set of variables (for tests and for the launcher, which
    /// inspects a job's environment before starting ranks).
    pub fn from_vars<K: Into<String>, V: Into<String>>(vars: impl IntoIterator<Item = (K, V)>) -> Result<Option<Job>> {
        let v: HashMap<String, String> = vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let Some(id) = num::<u64>(&v, "SLURM_JOB_ID")? else { return Ok(None) };
        let nodes = match v.get("SLURM_JOB_NODELIST").or(v.get("SLURM_NODELIST")) {
            Some(list) => expand_hostlist(list)?,
            None => Vec::new(),
        };
        let tasks_per_node = match v.get("SLURM_TASKS_PER_NODE") {
            Some(list) => expand_counts(list)?,
            None => Vec::new(),
        };
        let array = match num::<u64>(&v, "SLURM_ARRAY_JOB_ID")? {
            Some(job_id) => Some(ArrayTask {
                job_id,
                task_id: num(&v, "SLURM_ARRAY_TASK_ID")?.ok_or_else(|| Error::Env {
                    var: "SLURM_ARRAY_TASK_ID".into(),
                    value: String::new(),
                    why: "missing although SLURM_ARRAY_JOB_ID is set".into(),
                })?,
                count: num(&v, "SLURM_ARRAY_TASK_COUNT")?,
                min: num(&v, "SLURM_ARRAY_TASK_MIN")?,
                max: num(&v, "SLURM_ARRAY_TASK_MAX")?,
            }),
            None => None,
        };
        let epoch = |var| Ok::<_, Error>(num::<u64>(&v, var)?.map(|s| UNIX_EPOCH + Duration::from_secs(s)));
        Ok(Some(Job {
            id,
            name: v.get("SLURM_JOB_NAME").cloned(),
            array,
            restart_count: num(&v, "SLURM_RESTART_COUNT")?.unwrap_or(0),
            nodes,
            ntasks: num(&v, "SLURM_NTASKS")?.or(num(&v, "SLURM_NPROCS")?),
            tasks_per_node,
            cpus_per_task: num(&v, "SLURM_CPUS_PER_TASK")?,
            gpus: v.get("SLURM_GPUS").cloned(),
            gpus_on_node: num(&v, "SLURM_GPUS_ON_NODE")?,
            proc_id: num(&v, "SLURM_PROCID")?,
            local_id: num(&v, "SLURM_LOCALID")?,
            node_id: num(&v, "SLURM_NODEID")?,
            submit_dir: v.get("SLURM_SUBMIT_DIR").cloned(),
            start_time: epoch("SLURM_JOB_START_TIME")?,
            end_time: epoch("SLURM_JOB_END_TIME")?,
        }))
    }

    /// When Slurm will end the job (its time limit), from the environment if Slurm put it there,
    /// else asked from the controller. `None` when the job has no limit. The controller's answer
    /// is current: a limit changed with `scontrol update` shows up.
    pub fn end_time(&self, slurm: &Slurm) -> Result<Option<SystemTime>> {
        match self.end_time {
            Some(t) => Ok(Some(t)),
            None => slurm.end_time(&self.id.to_string()),
        }
    }

    /// Time until [`Job::end_time`] (zero once it has passed); `None` when the job has no limit.
    pub fn time_left(&self, slurm: &Slurm) -> Result<Option<Duration>> {
        Ok(self.end_time(slurm)?.map(until))
    }
}

/// Time from now until `t`, zero if `t` has passed.
pub fn until(t: SystemTime) -> Duration {
    t.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO)
}

fn num<T: FromStr>(v: &HashMap<String, String>, var: &str) -> Result<Option<T>> {
    match v.get(var) {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s.trim().parse().map(Some).map_err(|_| Error::Env {
            var: var.into(),
            value: s.clone(),
            why: "not a non-negative integer".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_slurm_there_is_no_job() {
        assert_eq!(Job::from_vars([("HOME", "/root")]).unwrap(), None);
    }

    #[test]
    fn a_job_array_task_inside_a_step() {
        let j = Job::from_vars([
            ("SLURM_JOB_ID", "1043"),
            ("SLURM_JOB_NAME", "sweep 'a'"),
            ("SLURM_ARRAY_JOB_ID", "1040"),
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "3"),
            ("SLURM_RESTART_COUNT", "2"),
            ("SLURM_JOB_NODELIST", "cn[01-02,7]"),
            ("SLURM_NTASKS", "7"),
            ("SLURM_TASKS_PER_NODE", "3,2(x2)"),
            ("SLURM_CPUS_PER_TASK", "4"),
            ("SLURM_GPUS", "a100:2"),
            ("SLURM_GPUS_ON_NODE", "2"),
            ("SLURM_PROCID", "5"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_NODEID", "2"),
            ("SLURM_JOB_END_TIME", "1795759805"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(j.id, 1043);
        assert_eq!(j.name.as_deref(), Some("sweep 'a'"));
        assert_eq!(j.array, Some(ArrayTask { job_id: 1040, task_id: 3, count: Some(4), min: Some(0), max: Some(3) }));
        assert_eq!(j.restart_count, 2);
        assert_eq!(j.nodes, ["cn01", "cn02", "cn7"]);
        assert_eq!((j.ntasks, j.tasks_per_node.as_slice()), (Some(7), &[3, 2, 2][..]));
        assert_eq!((j.cpus_per_task, j.gpus.as_deref(), j.gpus_on_node), (Some(4), Some("a100:2"), Some(2)));
        assert_eq!((j.proc_id, j.local_id, j.node_id), (Some(5), Some(1), Some(2)));
        // From the environment: no controller is asked.
        let never = Slurm::new().program_dir("/nonexistent");
        assert_eq!(j.end_time(&never).unwrap(), Some(UNIX_EPOCH + Duration::from_secs(1795759805)));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = Job::from_vars([("SLURM_JOB_ID", "12"), ("SLURM_NTASKS", "four")]).unwrap_err();
        assert_eq!(e.to_string(), "SLURM_NTASKS=`four`: not a non-negative integer");
        let e = Job::from_vars([("SLURM_JOB_ID", "12"), ("SLURM_JOB_NODELIST", "n[1-")]).unwrap_err();
        assert!(e.to_string().contains("n[1-"), "{e}");
    }
}
