//! Which split each event's row goes to: a global time cut, or each user's last events.

use super::mapping::Split;
use super::read::Event;
use super::sort::Sorted;
use super::ImportError;

/// The split names, in file and index order.
pub(crate) const SPLITS: [&str; 3] = ["train", "valid", "test"];
pub(crate) const TRAIN: usize = 0;
pub(crate) const VALID: usize = 1;
pub(crate) const TEST: usize = 2;

/// Assigns splits to the events of one pass over the sorted file, in order.
pub struct Splitter {
    rule: Rule,
}

enum Rule {
    /// Events before `valid` are train, from `test` on test, valid in between.
    Time { valid: f64, test: f64 },
    /// Per user: events in total, and seen so far in this pass.
    LeaveLastOut { total: Vec<u32>, seen: Vec<u32> },
}

/// Where the time split cuts: the times of the first valid and the first test event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cuts {
    pub valid: f64,
    pub test: f64,
}

/// The cut times of a time split over the sorted events: the last `round(n·test)` events are
/// test and the `round(n·valid)` before them valid, except that events sharing a time with the
/// first event of a later split join that split (so no split holds a time of the next one).
pub(crate) fn time_cuts(sorted: &Sorted<Event>, valid: f64, test: f64) -> Result<Cuts, ImportError> {
    let n = sorted.records;
    let n_test = ((n as f64) * test).round() as usize;
    let n_valid = ((n as f64) * valid).round() as usize;
    let at_test = n.saturating_sub(n_test);
    let at_valid = at_test.saturating_sub(n_valid);
    let mut cuts = Cuts { valid: f64::INFINITY, test: f64::INFINITY };
    for (i, e) in sorted.iter()?.enumerate() {
        let e = e?;
        if i == at_valid {
            cuts.valid = e.time;
        }
        if i == at_test {
            cuts.test = e.time;
            break;
        }
    }
    Ok(cuts)
}

impl Splitter {
    /// `user_events`: events per dense user index (for leave-last-out).
    pub fn new(split: &Split, cuts: Option<Cuts>, user_events: &[u32]) -> Splitter {
        let rule = match (split, cuts) {
            (Split::Time { .. }, Some(c)) => Rule::Time { valid: c.valid, test: c.test },
            (Split::Time { .. }, None) => Rule::Time { valid: f64::INFINITY, test: f64::INFINITY },
            (Split::LeaveLastOut, _) => {
                Rule::LeaveLastOut { total: user_events.to_vec(), seen: vec![0; user_events.len()] }
            }
        };
        Splitter { rule }
    }

    /// The split of the next event in sorted order.
    pub fn split(&mut self, e: &Event) -> usize {
        match &mut self.rule {
            Rule::Time { valid, test } => {
                if e.time >= *test {
                    TEST
                } else if e.time >= *valid {
                    VALID
                } else {
                    TRAIN
                }
            }
            Rule::LeaveLastOut { total, seen } => {
                let u = e.user as usize;
                seen[u] += 1;
                match (total[u], total[u] - seen[u]) {
                    (t, _) if t < 3 => TRAIN,
                    (_, 0) => TEST,
                    (_, 1) => VALID,
                    _ => TRAIN,
                }
            }
        }
    }
}
