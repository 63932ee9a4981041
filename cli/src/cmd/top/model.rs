//! What `shmq top` knows between frames: each queue's last stats, the
//! rates between the last two samples, and a short history of each rate,
//! depth and lag for the sparklines. No drawing here.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use shmq::Stats;

use crate::cmd::ls::Entry;

/// Samples kept for a sparkline: a minute at the default interval.
pub(crate) const HISTORY: usize = 60;

/// A bounded history, oldest first.
#[derive(Default, Clone, Debug)]
pub(crate) struct History(VecDeque<u64>);

impl History {
    fn push(&mut self, v: u64) {
        if self.0.len() == HISTORY {
            self.0.pop_front();
        }
        self.0.push_back(v);
    }

    /// The samples, oldest first.
    pub(crate) fn values(&self) -> Vec<u64> {
        self.0.iter().copied().collect()
    }

    /// The last `n` samples as block characters, scaled to their maximum
    /// (all low when every sample is 0).
    pub(crate) fn sparkline(&self, n: usize) -> String {
        const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
        let tail: Vec<u64> = self.0.iter().rev().take(n).rev().copied().collect();
        let max = tail.iter().copied().max().unwrap_or(0);
        tail.iter()
            .map(|&v| {
                if max == 0 {
                    BARS[0]
                } else {
                    BARS[((v as u128 * 7).div_ceil(max as u128)) as usize]
                }
            })
            .collect()
    }
}

/// Per second, from two counter readings `secs` apart (a counter that went
/// back, a queue made anew under the same name, counts from 0).
fn rate(now: u64, before: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    now.saturating_sub(before) as f64 / secs
}

/// One group of a queue.
#[derive(Default, Debug)]
pub(crate) struct GroupView {
    pub(crate) deliver_rate: f64,
    pub(crate) redeliver_rate: f64,
    pub(crate) lag: History,
}

/// One queue, as the last refresh saw it.
#[derive(Debug)]
pub(crate) struct QueueView {
    pub(crate) name: String,
    /// The last stats, or why the queue could not be read.
    pub(crate) stats: Result<Box<Stats>, String>,
    pub(crate) publish_rate: f64,
    pub(crate) deliver_rate: f64,
    pub(crate) redeliver_rate: f64,
    pub(crate) publish_history: History,
    pub(crate) depth_history: History,
    pub(crate) groups: BTreeMap<String, GroupView>,
    /// When `stats` was taken.
    at: Instant,
}

impl QueueView {
    /// The group furthest behind, and by how much.
    pub(crate) fn worst_lag(&self) -> Option<(&str, u64)> {
        let s = self.stats.as_ref().ok()?;
        s.groups
            .iter()
            .max_by_key(|g| g.lag)
            .map(|g| (g.name.as_str(), g.lag))
    }

    pub(crate) fn depth(&self) -> u64 {
        self.stats.as_ref().map(|s| s.depth).unwrap_or(0)
    }

    fn update(&mut self, entry: Entry, at: Instant) {
        let secs = at.duration_since(self.at).as_secs_f64();
        match entry {
            Entry::Queue(s) => {
                if let Ok(old) = &self.stats {
                    self.publish_rate = rate(s.published, old.published, secs);
                    self.deliver_rate = rate(delivered(&s), delivered(old), secs);
                    self.redeliver_rate = rate(redelivered(&s), redelivered(old), secs);
                    for g in &s.groups {
                        let view = self.groups.entry(g.name.clone()).or_default();
                        match old.groups.iter().find(|o| o.name == g.name) {
                            Some(o) => {
                                view.deliver_rate = rate(g.delivered, o.delivered, secs);
                                view.redeliver_rate = rate(g.redelivered, o.redelivered, secs);
                            }
                            None => {
                                view.deliver_rate = 0.0;
                                view.redeliver_rate = 0.0;
                            }
                        }
                    }
                }
                self.publish_history.push(self.publish_rate.round() as u64);
                self.depth_history.push(s.depth);
                for g in &s.groups {
                    self.groups
                        .entry(g.name.clone())
                        .or_default()
                        .lag
                        .push(g.lag);
                }
                self.groups
                    .retain(|name, _| s.groups.iter().any(|g| &g.name == name));
                self.stats = Ok(s);
            }
            Entry::Unusable { why, .. } => {
                self.stats = Err(why);
                self.publish_rate = 0.0;
                self.deliver_rate = 0.0;
                self.redeliver_rate = 0.0;
            }
        }
        self.at = at;
    }
}

fn delivered(s: &Stats) -> u64 {
    s.groups.iter().map(|g| g.delivered).sum()
}

fn redelivered(s: &Stats) -> u64 {
    s.groups.iter().map(|g| g.redelivered).sum()
}

/// The column the queue list is sorted by (`s` cycles through them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SortBy {
    Name,
    Depth,
    PublishRate,
    Lag,
}

impl SortBy {
    pub(crate) fn next(self) -> SortBy {
        match self {
            SortBy::Name => SortBy::Depth,
            SortBy::Depth => SortBy::PublishRate,
            SortBy::PublishRate => SortBy::Lag,
            SortBy::Lag => SortBy::Name,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            SortBy::Name => "name",
            SortBy::Depth => "depth",
            SortBy::PublishRate => "publish rate",
            SortBy::Lag => "lag",
        }
    }
}

/// Every queue shown, in display order, and which one is selected.
pub(crate) struct Model {
    pub(crate) queues: Vec<QueueView>,
    pub(crate) sort: SortBy,
    /// The selected queue's name: selection follows the queue when the
    /// order changes.
    pub(crate) selected: Option<String>,
}

impl Model {
    pub(crate) fn new() -> Model {
        Model {
            queues: Vec::new(),
            sort: SortBy::Name,
            selected: None,
        }
    }

    /// Takes a fresh reading of every queue (`entries` from one scan):
    /// queues new to the list start their history, gone ones leave it.
    pub(crate) fn refresh(&mut self, entries: Vec<Entry>, at: Instant) {
        let mut old: BTreeMap<String, QueueView> =
            self.queues.drain(..).map(|q| (q.name.clone(), q)).collect();
        for entry in entries {
            let name = match &entry {
                Entry::Queue(s) => s.name.clone(),
                Entry::Unusable { name, .. } => name.clone(),
            };
            let mut view = old.remove(&name).unwrap_or_else(|| QueueView {
                name: name.clone(),
                stats: Err("not read yet".into()),
                publish_rate: 0.0,
                deliver_rate: 0.0,
                redeliver_rate: 0.0,
                publish_history: History::default(),
                depth_history: History::default(),
                groups: BTreeMap::new(),
                at,
            });
            view.update(entry, at);
            self.queues.push(view);
        }
        self.sort();
        let still_there = self
            .selected
            .as_ref()
            .is_some_and(|s| self.queues.iter().any(|q| &q.name == s));
        if !still_there {
            self.selected = self.queues.first().map(|q| q.name.clone());
        }
    }

    fn sort(&mut self) {
        let by = self.sort;
        self.queues.sort_by(|a, b| {
            let key = match by {
                SortBy::Name => std::cmp::Ordering::Equal,
                // Biggest first: the one to look at is on top.
                SortBy::Depth => b.depth().cmp(&a.depth()),
                SortBy::PublishRate => b.publish_rate.total_cmp(&a.publish_rate),
                SortBy::Lag => {
                    let lag = |q: &QueueView| q.worst_lag().map(|(_, l)| l).unwrap_or(0);
                    lag(b).cmp(&lag(a))
                }
            };
            key.then_with(|| a.name.cmp(&b.name))
        });
    }

    /// The next sort column; the order is redone at once.
    pub(crate) fn cycle_sort(&mut self) {
        self.sort = self.sort.next();
        self.sort();
    }

    /// Index of the selected queue in display order.
    pub(crate) fn selected_index(&self) -> Option<usize> {
        let name = self.selected.as_ref()?;
        self.queues.iter().position(|q| &q.name == name)
    }

    pub(crate) fn selected(&self) -> Option<&QueueView> {
        self.selected_index().map(|i| &self.queues[i])
    }

    /// Moves the selection `by` rows, staying within the list.
    pub(crate) fn move_selection(&mut self, by: isize) {
        if self.queues.is_empty() {
            return;
        }
        let i = self.selected_index().unwrap_or(0) as isize + by;
        let i = i.clamp(0, self.queues.len() as isize - 1) as usize;
        self.selected = Some(self.queues[i].name.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_last_minute_and_draws_to_its_maximum() {
        let mut h = History::default();
        for v in 0..100 {
            h.push(v);
        }
        assert_eq!(h.values().len(), HISTORY);
        assert_eq!(h.values()[0], 40);
        let mut h = History::default();
        for v in [0, 1, 4, 8] {
            h.push(v);
        }
        assert_eq!(h.sparkline(4), "▁▂▅█");
        assert_eq!(h.sparkline(2), "▅█");
        let mut zero = History::default();
        zero.push(0);
        zero.push(0);
        assert_eq!(zero.sparkline(8), "▁▁");
    }

    #[test]
    fn a_counter_that_went_back_counts_from_zero() {
        assert_eq!(rate(10, 20, 1.0), 0.0);
        assert_eq!(rate(30, 10, 2.0), 10.0);
        assert_eq!(rate(30, 10, 0.0), 0.0);
    }

    #[test]
    fn selection_follows_its_queue_and_stays_in_the_list() {
        let mut m = Model::new();
        let at = Instant::now();
        let bad = |n: &str| Entry::Unusable {
            name: n.into(),
            why: "x".into(),
        };
        m.refresh(vec![bad("a"), bad("b"), bad("c")], at);
        assert_eq!(m.selected.as_deref(), Some("a"));
        m.move_selection(5);
        assert_eq!(m.selected.as_deref(), Some("c"));
        m.move_selection(-1);
        assert_eq!(m.selected.as_deref(), Some("b"));
        // b goes: the selection falls back to the first.
        m.refresh(vec![bad("a"), bad("c")], at);
        assert_eq!(m.selected.as_deref(), Some("a"));
        m.refresh(vec![], at);
        assert_eq!(m.selected, None);
        m.move_selection(1);
        assert_eq!(m.selected, None);
    }
}
