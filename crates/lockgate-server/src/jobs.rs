//! Long operations as jobs: a request starts one and gets its id at once (202), or
//! waits for its result (`?wait=true`); progress goes to every `/api/events`
//! subscriber as it happens. Jobs live in this process's memory (the ledger's runs
//! are the durable record of what ran, whoever started it); the last
//! [`KEEP_FINISHED`] finished jobs are kept for their pages.

use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};

/// Finished jobs kept for `/api/jobs/{id}` and the job pages.
pub const KEEP_FINISHED: usize = 200;

/// How often one job's progress is sent at most: the dashboard's bars move ten times
/// a second, and a million-row job does not flood the event stream.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// A job's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Started, not finished.
    Running,
    /// Finished; `result` holds its report.
    Succeeded,
    /// Finished with an error, or with a report that says it failed (row errors).
    Failed,
}

/// A job as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Job {
    /// Its id (unique in this server process).
    pub id: u64,
    /// `process`, `create_export`, `migrate`, `migrate_dry_run`, `upload`, `generate`,
    /// `merge`, `merge_preview`, `merge_undo`, `merge_undo_preview`.
    pub kind: String,
    /// What it works on, for people.
    pub title: String,
    /// Its state.
    pub status: JobStatus,
    /// Units done (rows, mostly).
    pub done: u64,
    /// Units in all, when known.
    pub total: Option<u64>,
    /// What it is doing now.
    pub message: Option<String>,
    /// Its report (the same JSON as the CLI's `--json`), once finished.
    #[schema(value_type = Object)]
    pub result: Option<serde_json::Value>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// ARCHITECTURE.md's exit code of a failure (2 bad input, 1 run-time, 3 row errors,
    /// 4 conflicts: a merge aborted, an undo stopped by rows changed since).
    pub exit_code: Option<i32>,
    /// Seconds since the Unix epoch when it started.
    pub started_at: f64,
    /// Seconds it took, once finished.
    pub seconds: Option<f64>,
}

impl Job {
    /// Its status as a word (`running`, `succeeded`, `failed`), for the pages.
    pub fn status_str(&self) -> &'static str {
        match self.status {
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
        }
    }
}

/// A job that could not do its work: the message, and ARCHITECTURE.md's exit code (2: the
/// request's input was bad; 1: a database or the machine failed).
#[derive(Debug, Clone)]
pub struct JobFailure {
    /// The exit code.
    pub code: i32,
    /// What happened and what to do.
    pub message: String,
}

impl JobFailure {
    /// A failure with its exit code.
    pub fn new(code: i32, message: impl Into<String>) -> JobFailure {
        JobFailure {
            code,
            message: message.into(),
        }
    }
}

impl From<String> for JobFailure {
    fn from(message: String) -> Self {
        JobFailure { code: 1, message }
    }
}

/// What a job's body returns: its report, and whether that report is a failure
/// (row errors, a merge aborted on conflicts: the job fails but still carries the
/// report).
pub struct JobOutcome {
    /// The report.
    pub result: serde_json::Value,
    /// Whether the job failed.
    pub failed: bool,
    /// ARCHITECTURE.md's exit code of a failed report; none: 3 (row errors).
    pub exit_code: Option<i32>,
    /// A one-line summary.
    pub message: String,
}

struct Entry {
    job: Job,
    started: Instant,
    done: watch::Sender<bool>,
}

/// The registry of jobs and the event stream.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<Event>,
}

struct Inner {
    next: u64,
    jobs: BTreeMap<u64, Entry>,
}

/// One server-sent event.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A job started, moved or ended.
    Job(Job),
}

/// Reports a job's progress.
#[derive(Clone)]
pub struct Progress {
    jobs: Jobs,
    id: u64,
    last: Arc<Mutex<Option<Instant>>>,
}

impl Progress {
    /// Sets the progress; sent at most every [`PROGRESS_EVERY`].
    pub fn set(&self, done: u64, total: Option<u64>, message: Option<String>) {
        let now = Instant::now();
        {
            let mut last = self.last.lock().expect("progress lock");
            if last.is_some_and(|t| now.duration_since(t) < PROGRESS_EVERY) {
                // Still record it, so that the job's page shows the latest figure.
                self.jobs.update(self.id, |j| {
                    j.done = done;
                    j.total = total;
                    if message.is_some() {
                        j.message = message.clone();
                    }
                });
                return;
            }
            *last = Some(now);
        }
        if let Some(job) = self.jobs.update(self.id, |j| {
            j.done = done;
            j.total = total;
            if message.is_some() {
                j.message = message.clone();
            }
        }) {
            let _ = self.jobs.events.send(Event::Job(job));
        }
    }
}

impl Progress {
    /// Sets what the job is doing now (always sent: messages are rare).
    pub fn set_message(&self, message: String) {
        if let Some(job) = self.jobs.update(self.id, |j| j.message = Some(message)) {
            let _ = self.jobs.events.send(Event::Job(job));
        }
    }
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs::new()
    }
}

impl Jobs {
    /// An empty registry.
    pub fn new() -> Jobs {
        let (events, _) = broadcast::channel(1024);
        Jobs {
            inner: Arc::new(Mutex::new(Inner {
                next: 1,
                jobs: BTreeMap::new(),
            })),
            events,
        }
    }

    /// A new subscriber to the events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Starts `body` as a job and returns its id at once.
    pub fn spawn<F, Fut>(&self, kind: &str, title: String, body: F) -> u64
    where
        F: FnOnce(Progress) -> Fut,
        Fut: Future<Output = Result<JobOutcome, JobFailure>> + Send + 'static,
    {
        let (done, _) = watch::channel(false);
        let job = Job {
            id: 0,
            kind: kind.into(),
            title,
            status: JobStatus::Running,
            done: 0,
            total: None,
            message: None,
            result: None,
            error: None,
            exit_code: None,
            started_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            seconds: None,
        };
        let id = {
            let mut inner = self.inner.lock().expect("jobs lock");
            let id = inner.next;
            inner.next += 1;
            let mut job = job;
            job.id = id;
            inner.jobs.insert(
                id,
                Entry {
                    job: job.clone(),
                    started: Instant::now(),
                    done,
                },
            );
            // Forget the oldest finished jobs beyond the limit.
            let finished: Vec<u64> = inner
                .jobs
                .iter()
                .filter(|(_, e)| e.job.status != JobStatus::Running)
                .map(|(id, _)| *id)
                .collect();
            if finished.len() > KEEP_FINISHED {
                for old in &finished[..finished.len() - KEEP_FINISHED] {
                    inner.jobs.remove(old);
                }
            }
            let _ = self.events.send(Event::Job(job));
            id
        };
        let progress = Progress {
            jobs: self.clone(),
            id,
            last: Arc::new(Mutex::new(None)),
        };
        let fut = body(progress);
        let jobs = self.clone();
        tokio::spawn(async move {
            // The body runs in a task of its own, so that a panic in it fails the
            // job instead of leaving it running for ever.
            let outcome = match tokio::spawn(fut).await {
                Ok(r) => r,
                Err(e) => Err(JobFailure::new(1, format!("the job stopped unexpectedly: {e}"))),
            };
            jobs.finish(id, outcome);
        });
        id
    }

    fn finish(&self, id: u64, outcome: Result<JobOutcome, JobFailure>) {
        let mut inner = self.inner.lock().expect("jobs lock");
        let Some(entry) = inner.jobs.get_mut(&id) else {
            return;
        };
        let j = &mut entry.job;
        j.seconds = Some(entry.started.elapsed().as_secs_f64());
        match outcome {
            Ok(o) => {
                j.status = if o.failed {
                    JobStatus::Failed
                } else {
                    JobStatus::Succeeded
                };
                j.exit_code = o.failed.then_some(o.exit_code.unwrap_or(3));
                j.message = Some(o.message);
                j.result = Some(o.result);
            }
            Err(e) => {
                j.status = JobStatus::Failed;
                j.message = Some(e.message.clone());
                j.error = Some(e.message);
                j.exit_code = Some(e.code);
            }
        }
        let job = j.clone();
        let _ = entry.done.send(true);
        drop(inner);
        let _ = self.events.send(Event::Job(job));
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Job)) -> Option<Job> {
        let mut inner = self.inner.lock().expect("jobs lock");
        let entry = inner.jobs.get_mut(&id)?;
        f(&mut entry.job);
        Some(entry.job.clone())
    }

    /// The job, as it is now.
    pub fn get(&self, id: u64) -> Option<Job> {
        self.inner
            .lock()
            .expect("jobs lock")
            .jobs
            .get(&id)
            .map(|e| e.job.clone())
    }

    /// Every job kept, newest first.
    pub fn list(&self) -> Vec<Job> {
        let inner = self.inner.lock().expect("jobs lock");
        inner.jobs.values().rev().map(|e| e.job.clone()).collect()
    }

    /// Waits until the job has finished and returns it.
    pub async fn wait(&self, id: u64) -> Option<Job> {
        let mut rx = {
            let inner = self.inner.lock().expect("jobs lock");
            inner.jobs.get(&id)?.done.subscribe()
        };
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                break;
            }
        }
        self.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_reports_progress_and_its_outcome() {
        let jobs = Jobs::new();
        let mut events = jobs.subscribe();
        let id = jobs.spawn("test", "a test".into(), |p| async move {
            p.set(5, Some(10), Some("half".into()));
            Ok(JobOutcome {
                result: serde_json::json!({"rows": 10}),
                failed: false,
                exit_code: None,
                message: "10 rows".into(),
            })
        });
        let job = jobs.wait(id).await.unwrap();
        assert_eq!(job.status, JobStatus::Succeeded);
        assert_eq!(job.done, 5);
        assert_eq!(job.result, Some(serde_json::json!({"rows": 10})));
        let mut statuses = Vec::new();
        while let Ok(Event::Job(j)) = events.try_recv() {
            statuses.push((j.status, j.done));
        }
        assert_eq!(
            statuses,
            vec![
                (JobStatus::Running, 0),
                (JobStatus::Running, 5),
                (JobStatus::Succeeded, 5)
            ]
        );
    }

    #[tokio::test]
    async fn a_panicking_job_fails_instead_of_running_for_ever() {
        let jobs = Jobs::new();
        let id = jobs.spawn("test", "a test".into(), |_| async move {
            if jobs_panic() {
                panic!("boom");
            }
            Err(JobFailure::new(1, "unreachable"))
        });
        let job = jobs.wait(id).await.unwrap();
        assert_eq!(job.status, JobStatus::Failed);
        assert!(job.error.unwrap().contains("stopped unexpectedly"));
    }

    fn jobs_panic() -> bool {
        true
    }
}
