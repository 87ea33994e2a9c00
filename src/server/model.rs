//! The model a server holds: a trained run loaded once, with what `/score` and `/recommend`
//! need, and the worker thread that runs it on batched requests.
//!
//! One thread owns the model (burn's tensors stay on it); requests reach it through a channel
//! and are batched there: the first job waits for more until `max_batch_rows` rows are queued
//! or `max_wait` has passed, then the batch runs as one forward pass per endpoint and every job
//! gets its own rows' answers. A job whose rows cannot be read gets its error (naming the row
//! of its request and the field) and the others of the batch run without it.

use crate::app::{AppError, RunDir};
use crate::runtime::serve::{Pick, Recommender, RowScorer};
use burn::prelude::Device;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A loaded run.
pub struct Model {
    pub run: PathBuf,
    pub name: String,
    /// Which load this is: 1 for the run the server started with, then one more per reload. Every
    /// answer carries it, so a client (and a test) sees which model answered.
    pub generation: u64,
    /// For runs whose model scores label streams.
    scorer: Option<RowScorer>,
    /// For runs with an output scoring the item corpus.
    recommender: Option<Recommender>,
}

impl Model {
    /// Loads a run's program and last weights (as `recspec eval` does).
    pub fn load(run: &Path, device: &Device) -> Result<Model, AppError> {
        let dir = RunDir::open(run);
        let (program, _) = dir.load_program()?;
        let weights = dir.load_weights(&program, device)?;
        let recommender = Recommender::new(program.clone(), weights.clone(), None, device.clone());
        let name = program.model.clone();
        let scorer = RowScorer::new(program, weights, device.clone());
        match (scorer, recommender) {
            (Err(e), Err(_)) => Err(e.into()),
            (scorer, recommender) => Ok(Model {
                run: run.to_path_buf(),
                name,
                generation: 1,
                scorer: scorer.ok(),
                recommender: recommender.ok(),
            }),
        }
    }

    /// What `/health` says about the model.
    pub fn describe(&self) -> Value {
        serde_json::json!({
            "run": self.run.display().to_string(),
            "model": self.name,
            "score": self.scorer.as_ref().map(|s| serde_json::json!({
                "streams": s.streams(),
                "inputs": s.inputs(),
            })),
            "recommend": self.recommender.as_ref().map(|r| serde_json::json!({
                "output": r.output,
                "inputs": r.inputs(),
            })),
        })
    }
}

/// What a request asks the model.
pub enum Ask {
    Score,
    Recommend {
        k: usize,
        exclude_consumed: bool,
    },
    /// Every item's score (a raw `/recommend` ranks the catalogue's keys by them).
    ItemScores,
}

/// A request's answer: per row, the stream scores or the top-K list.
pub enum Answer {
    Scores {
        streams: Vec<String>,
        rows: Vec<Vec<f32>>,
    },
    Lists {
        output: String,
        rows: Vec<Vec<Pick>>,
    },
    /// Per row, the score of every item id (or bucket); `consumed`: the row's sequence inputs
    /// over the scored items.
    ItemScores {
        output: String,
        rows: Vec<Vec<f32>>,
        consumed: Vec<String>,
    },
}

/// Why a request failed: a client's mistake (a row that cannot be read, an endpoint the run
/// does not have) or the server's.
pub enum Refusal {
    BadRow {
        row: usize,
        message: String,
    },
    Unsupported(String),
    /// The rows were built for another model than the one served now (a reload came between).
    Stale,
}

/// One request for the worker.
pub struct Job {
    pub ask: Ask,
    pub rows: Vec<Value>,
    /// The generation of the model the rows were built for (a raw request's rows are numbered
    /// by that model's data set); `None`: any model reads them.
    pub expect: Option<u64>,
    /// The answer, the rows of the pass that answered it, and the model's generation.
    pub reply: oneshot::Sender<Result<(Answer, usize, u64), Refusal>>,
}

/// Messages to the worker thread.
pub enum Message {
    Job(Job),
    /// Serve this model from now on (requests queued before it are answered by the old one).
    Swap(Box<Model>, oneshot::Sender<()>),
}

/// How the worker batches.
#[derive(Clone, Copy, Debug)]
pub struct Batching {
    pub max_batch_rows: usize,
    pub max_wait: Duration,
}

/// The worker loop: runs until every sender is gone. `observe` gets each forward pass's rows.
pub fn work(mut model: Model, inbox: Receiver<Message>, batching: Batching, observe: impl Fn(usize)) {
    let mut pending: Vec<Job> = vec![];
    loop {
        let first = match inbox.recv() {
            Ok(m) => m,
            Err(_) => return,
        };
        let mut swap = None;
        match first {
            Message::Swap(m, done) => swap = Some((m, done)),
            Message::Job(job) => pending.push(job),
        }
        // Gather more jobs until the batch is full, the wait is over, or a swap arrives.
        let deadline = Instant::now() + batching.max_wait;
        while swap.is_none() && pending.iter().map(|j| j.rows.len()).sum::<usize>() < batching.max_batch_rows {
            let left = deadline.saturating_duration_since(Instant::now());
            match inbox.recv_timeout(left) {
                Ok(Message::Job(job)) => pending.push(job),
                Ok(Message::Swap(m, done)) => swap = Some((m, done)),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        run_batch(&model, std::mem::take(&mut pending), &observe);
        if let Some((m, done)) = swap {
            model = *m;
            let _ = done.send(());
        }
    }
}

/// Answers a batch of jobs: score jobs in one pass, recommend jobs in another.
fn run_batch(model: &Model, jobs: Vec<Job>, observe: &impl Fn(usize)) {
    let (mut score, mut recommend) = (vec![], vec![]);
    for job in jobs {
        match job.ask {
            _ if job.expect.is_some_and(|g| g != model.generation) => {
                let _ = job.reply.send(Err(Refusal::Stale));
            }
            Ask::Score if model.scorer.is_none() => {
                let _ = job.reply.send(Err(Refusal::Unsupported(format!(
                    "model `{}` scores no label stream (no loss gives a probability, and no output is per example); /score needs one",
                    model.name
                ))));
            }
            Ask::Score => score.push(job),
            Ask::Recommend { .. } | Ask::ItemScores if model.recommender.is_none() => {
                let _ = job.reply.send(Err(Refusal::Unsupported(format!(
                    "model `{}` has no output scoring the item corpus (an `item_logits` output); /recommend needs one",
                    model.name
                ))));
            }
            Ask::Recommend { .. } | Ask::ItemScores => recommend.push(job),
        }
    }
    if let Some(scorer) = &model.scorer {
        for (job, result) in run_jobs(score, observe, |rows| scorer.score(rows)) {
            let streams = scorer.streams();
            let _ = job.reply.send(result.map(|(rows, n)| (Answer::Scores { streams, rows }, n, model.generation)));
        }
    }
    let Some(rec) = &model.recommender else { return };
    run_jobs(recommend, observe, |rows| {
        let (scores, vocab) = rec.scores(rows)?;
        Ok(scores.chunks(vocab.max(1)).map(<[f32]>::to_vec).collect())
    })
    .into_iter()
    .for_each(|(job, result)| {
        let answer = result.map(|(scores, n)| match job.ask {
            Ask::Recommend { k, exclude_consumed } => {
                let per_row: Vec<&[f32]> = scores.iter().map(Vec::as_slice).collect();
                let rows = rec.pick(&job.rows, &per_row, k, exclude_consumed);
                (Answer::Lists { output: rec.output.clone(), rows }, n, model.generation)
            }
            Ask::ItemScores | Ask::Score => {
                let answer = Answer::ItemScores { output: rec.output.clone(), rows: scores, consumed: rec.consumed() };
                (answer, n, model.generation)
            }
        });
        let _ = job.reply.send(answer);
    });
}

type Rows<T> = Result<(Vec<T>, usize), Refusal>;

/// Runs `forward` once over the rows of all `jobs`; a job with a row `forward` cannot read is
/// answered with that row's error and the rest run again without it. Each job's result is its
/// rows' outputs and the rows of the pass that answered it.
fn run_jobs<T: Clone>(
    mut jobs: Vec<Job>,
    observe: &impl Fn(usize),
    forward: impl Fn(&[Value]) -> Result<Vec<T>, (usize, String)>,
) -> Vec<(Job, Rows<T>)> {
    let mut out = vec![];
    while !jobs.is_empty() {
        let rows: Vec<Value> = jobs.iter().flat_map(|j| j.rows.iter().cloned()).collect();
        match forward(&rows) {
            Ok(all) => {
                observe(rows.len());
                let mut start = 0;
                for job in jobs.drain(..) {
                    let n = job.rows.len();
                    let mine = all[start..start + n].to_vec();
                    start += n;
                    out.push((job, Ok((mine, rows.len()))));
                }
            }
            Err((row, message)) => {
                // The job holding global row `row` is refused; the others try again.
                let mut start = 0;
                let culprit = jobs
                    .iter()
                    .position(|j| {
                        let hit = row < start + j.rows.len();
                        if !hit {
                            start += j.rows.len();
                        }
                        hit
                    })
                    .unwrap_or(jobs.len() - 1);
                let job = jobs.remove(culprit);
                out.push((job, Err(Refusal::BadRow { row: row.saturating_sub(start), message })));
            }
        }
    }
    out
}
