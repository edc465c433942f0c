//! Progress of long commands (backfills, training sets, materializations): a bar with the
//! rate and the ETA on a terminal, otherwise a plain status line at most every few seconds
//! (an info event when logs are JSON). The ETA is the work left at the rate of about the
//! last half minute, so it follows a run that slows down.

use std::collections::VecDeque;
use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain progress line is written at most.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// How far back the rate (and so the ETA) looks.
const RATE_WINDOW: Duration = Duration::from_secs(30);

/// A long command's progress: a current step counted in some unit, with a total when known.
pub struct Progress {
    sink: Sink,
    state: Mutex<State>,
}

enum Sink {
    Bar(ProgressBar),
    /// Plain lines, at most one per `every`, to `write`.
    Lines {
        every: Duration,
        write: Box<dyn Fn(&str) + Send + Sync>,
    },
}

struct State {
    step: String,
    unit: &'static str,
    done: u64,
    /// Done when the step started (a resumed backfill's chunks): not this run's work.
    base: u64,
    total: Option<u64>,
    last_line: Option<Instant>,
    /// (when, done) at each update of the step, the oldest about [`RATE_WINDOW`] ago.
    samples: VecDeque<(Instant, u64)>,
}

impl State {
    fn new(step: &str, unit: &'static str, done: u64, total: Option<u64>) -> Self {
        let started = Instant::now();
        Self {
            step: step.to_owned(),
            unit,
            done,
            base: done,
            total,
            last_line: None,
            samples: VecDeque::from([(started, done)]),
        }
    }

    /// Units done and the time they took over about the last [`RATE_WINDOW`] (the whole
    /// step while it is younger), counting this update at `now`.
    fn recent(&mut self, now: Instant) -> (u64, Duration) {
        self.samples.push_back((now, self.done));
        while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= RATE_WINDOW {
            self.samples.pop_front();
        }
        let (since, from) = self.samples[0];
        (self.done.saturating_sub(from), now.duration_since(since))
    }
}

impl Progress {
    /// A bar on a terminal (stderr), plain lines every [`PLAIN_EVERY`] otherwise.
    pub fn new(step: &str, unit: &'static str, done: u64, total: Option<u64>) -> Self {
        let sink = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total.unwrap_or(0));
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix} [{elapsed_precise}] {wide_bar} {msg}",
                )
                .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            Sink::Bar(bar)
        } else {
            Sink::Lines {
                every: PLAIN_EVERY,
                write: Box::new(super::out::status),
            }
        };
        Self::with_sink(sink, step, unit, done, total)
    }

    /// Plain lines at most every `every`, each given to `write`.
    #[cfg(test)]
    fn lines(
        every: Duration,
        write: impl Fn(&str) + Send + Sync + 'static,
        step: &str,
        unit: &'static str,
        done: u64,
        total: Option<u64>,
    ) -> Self {
        let sink = Sink::Lines {
            every,
            write: Box::new(write),
        };
        Self::with_sink(sink, step, unit, done, total)
    }

    fn with_sink(
        sink: Sink,
        step: &str,
        unit: &'static str,
        done: u64,
        total: Option<u64>,
    ) -> Self {
        let progress = Self {
            sink,
            state: Mutex::new(State::new(step, unit, done, total)),
        };
        progress.show(false);
        progress
    }

    /// Starts a new step (its counts from zero): the next stage of a training set, the next
    /// view of a materialization.
    pub fn step(&self, step: &str, unit: &'static str, total: Option<u64>) {
        {
            *self.state.lock().expect("progress lock") = State::new(step, unit, 0, total);
        }
        self.show(true);
    }

    /// `by` more units of the step are done.
    pub fn advance(&self, by: u64) {
        self.state.lock().expect("progress lock").done += by;
        self.show(false);
    }

    /// Sets how many units of the step are done.
    pub fn set_done(&self, done: u64) {
        self.state.lock().expect("progress lock").done = done;
        self.show(false);
    }

    /// A message between progress updates (above the bar on a terminal).
    pub fn println(&self, message: &str) {
        match &self.sink {
            Sink::Bar(bar) => bar.println(message),
            Sink::Lines { write, .. } => write(message),
        }
    }

    /// Removes the bar; plain lines need no ending.
    pub fn finish(&self) {
        if let Sink::Bar(bar) = &self.sink {
            bar.finish_and_clear();
        }
    }

    /// Redraws the bar, or writes a line when one is due (`now`: a new step, always).
    fn show(&self, now: bool) {
        let mut state = self.state.lock().expect("progress lock");
        let recent = state.recent(Instant::now());
        let line = describe(&state, recent);
        match &self.sink {
            Sink::Bar(bar) => {
                bar.set_prefix(state.step.clone());
                match state.total {
                    Some(total) => {
                        bar.set_length(total);
                        bar.set_position(state.done.min(total));
                    }
                    None => bar.set_length(0),
                }
                bar.set_message(line.counts);
            }
            Sink::Lines { every, write } => {
                let due = now || state.last_line.is_none_or(|last| last.elapsed() >= *every);
                if due && (now || state.done > state.base) {
                    state.last_line = Some(Instant::now());
                    write(&format!("{}: {}", state.step, line.counts));
                }
            }
        }
    }
}

/// What a progress line says after the step's name.
struct Line {
    counts: String,
}

/// The line for `state`, the rate and ETA from `recent` (units done, in what time).
fn describe(state: &State, recent: (u64, Duration)) -> Line {
    let this_run = state.done.saturating_sub(state.base);
    let (recent_done, elapsed) = recent;
    let rate = recent_done as f64 / elapsed.as_secs_f64().max(1e-3);
    let mut counts = match state.total {
        Some(total) if total > 0 => format!(
            "{}/{} {} ({:.0}%)",
            state.done,
            total,
            state.unit,
            100.0 * state.done.min(total) as f64 / total as f64
        ),
        _ => format!("{} {}", state.done, state.unit),
    };
    if this_run > 0 {
        counts.push_str(&format!(", {rate:.0} {}/s", state.unit));
    }
    let left = state.total.map(|total| total.saturating_sub(state.done));
    match eta(recent_done, elapsed, left) {
        Some(eta) => counts.push_str(&format!(", ETA {}", short_duration(eta))),
        None if left.is_some_and(|left| left > 0) => counts.push_str(", ETA unknown yet"),
        None => {}
    }
    Line { counts }
}

/// Time left for `left` units at the rate of `done` units in `elapsed`; none before any
/// unit is done or when the total is unknown.
pub fn eta(done: u64, elapsed: Duration, left: Option<u64>) -> Option<Duration> {
    let left = left?;
    if left == 0 {
        return Some(Duration::ZERO);
    }
    if done == 0 {
        return None;
    }
    Some(elapsed.mul_f64(left as f64 / done as f64))
}

/// `45s`, `3m05s`, `2h03m`.
pub fn short_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64().round() as u64;
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn eta_is_the_work_left_at_this_runs_rate() {
        let ten = Duration::from_secs(10);
        assert_eq!(eta(50, ten, Some(100)), Some(Duration::from_secs(20)));
        assert_eq!(eta(0, ten, Some(100)), None, "no rate yet");
        assert_eq!(eta(50, ten, None), None, "no total");
        assert_eq!(eta(50, ten, Some(0)), Some(Duration::ZERO));
        assert_eq!(short_duration(Duration::from_secs(45)), "45s");
        assert_eq!(short_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(short_duration(Duration::from_secs(7380)), "2h03m");
    }

    #[test]
    fn plain_lines_count_from_where_the_step_resumed() {
        let mut state = State::new("backfill job 7", "chunks", 20, Some(40));
        state.done = 30;
        // 10 chunks of this run in 5 s: 2 chunks/s, 10 left, 5 s.
        let line = describe(&state, (10, Duration::from_secs(5)));
        assert_eq!(line.counts, "30/40 chunks (75%), 2 chunks/s, ETA 5s");
        state.total = None;
        assert_eq!(
            describe(&state, (10, Duration::from_secs(5))).counts,
            "30 chunks, 2 chunks/s"
        );
    }

    #[test]
    fn the_rate_follows_the_last_half_minute() {
        let mut state = State::new("backfill", "rows", 0, Some(1_000));
        let start = state.samples[0].0;
        // Fast at first (100 rows/s for a minute), then slow (10 rows/s for a minute).
        for second in 1..=60 {
            state.done += 100;
            state.recent(start + Duration::from_secs(second));
        }
        for second in 61..=120 {
            state.done += 10;
            state.recent(start + Duration::from_secs(second));
        }
        let (done, took) = state.recent(start + Duration::from_secs(120));
        assert_eq!((done, took), (300, Duration::from_secs(30)));
    }

    #[test]
    fn plain_lines_are_written_when_due_and_at_each_step() {
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = Arc::clone(&lines);
        let progress = Progress::lines(
            Duration::from_secs(3600),
            move |line| sink.lock().unwrap().push(line.to_owned()),
            "joining",
            "rows",
            0,
            Some(10),
        );
        progress.advance(5); // the first line of the step: due
        progress.advance(5); // within the hour: not due
        progress.step("writing", "rows", None); // a new step: always
        let lines = lines.lock().unwrap().clone();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("joining: 5/10 rows (50%), "),
            "{lines:?}"
        );
        assert!(lines[0].contains("ETA "), "{lines:?}");
        assert_eq!(lines[1], "writing: 0 rows");
    }
}
