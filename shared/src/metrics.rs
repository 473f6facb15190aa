//! CloudWatch metrics as Embedded Metric Format (EMF) lines: one JSON
//! object per line on stdout, which CloudWatch Logs turns into metrics. No
//! API calls (no latency, no IAM, nothing to fail at the end of an
//! invocation), and the numbers stay readable in the logs. (A run's
//! training curve, the loss per step, is `domain::curve`/`store::curve`.)
//!
//! Every metric name, unit and dimension lives here, so `template.yaml`'s
//! alarms and the dashboards have one place to agree with. Namespace
//! [`NAMESPACE`]; run metrics carry the `Provider` dimension and an
//! aggregate without dimensions (what the alarms watch):
//!
//! | metric | unit | dimensions | when |
//! |---|---|---|---|
//! | `RunsStarted` | Count | Provider; none | `POST /runs` stored a new run |
//! | `RunsCompleted`, `RunsFailed`, `RunsCancelled` | Count | Provider; none | a run ended |
//! | `ProviderErrors` | Count | Provider, Kind; none | a pipeline step failed at the provider |
//! | `DatasetExamples`, `DatasetTokens` | Count | Provider; none | a dataset was prepared |
//! | `BilledTokens` | Count | Provider; none | a job finished with trained tokens |
//! | `PreparationShardsStarted` | Count | Provider; none | a run's preparation was fanned out |
//! | `PreparationShardsDone`, `PreparationShardsFailed` | Count | none | a shard worker's invocation ended |
//! | `PreparationShardBytes` | Count | none | bytes a shard read (done or not) |
//! | `PreparationShardDuration` | Milliseconds | none | a shard worker's invocation |
//! | `MonitorRunsChecked`, `MonitorRunsAdvanced`, `MonitorRunsErrored` | Count | none | a monitor tick |
//! | `MonitorDuration` | Milliseconds | none | a monitor tick |
//! | `MonitorStalestRunIdle` | Seconds | none | a monitor tick: the longest any run it took had gone unwritten |
//!
//! The sink is a handle passed to whoever emits, not a global: tests
//! capture their own lines while other tests run on other threads.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::domain::{ProviderKind, RunStatus};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "Finetune";

/// A CloudWatch unit (the subset we use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
        }
    }
}

#[derive(Clone)]
enum Sink {
    Stdout,
    Memory(Arc<Mutex<Vec<String>>>),
    Discard,
}

/// Where metric lines go. Cheap to clone; every clone writes to the same sink.
#[derive(Clone)]
pub struct Metrics {
    sink: Sink,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sink = match self.sink {
            Sink::Stdout => "stdout",
            Sink::Memory(_) => "memory",
            Sink::Discard => "discard",
        };
        f.debug_struct("Metrics").field("sink", &sink).finish()
    }
}

/// The lines an in-memory [`Metrics`] received, for tests and tools.
#[derive(Clone, Debug, Default)]
pub struct Recorded(Arc<Mutex<Vec<String>>>);

impl Recorded {
    /// Every line written so far, parsed.
    pub fn lines(&self) -> Vec<Value> {
        let lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The sum of `metric` over every line, optionally only lines whose
    /// dimension `key` has `value` (lines without dimensions when `None`).
    pub fn sum(&self, metric: &str, dimension: Option<(&str, &str)>) -> f64 {
        self.lines()
            .iter()
            .filter(|l| match dimension {
                Some((k, v)) => l.get(k).and_then(Value::as_str) == Some(v),
                None => true,
            })
            .filter_map(|l| l.get(metric).and_then(Value::as_f64))
            .sum()
    }
}

impl Metrics {
    /// Lambda: lines on stdout, next to the logs.
    pub fn stdout() -> Self {
        Self { sink: Sink::Stdout }
    }

    /// Tools that want no metrics in their output.
    pub fn discard() -> Self {
        Self {
            sink: Sink::Discard,
        }
    }

    /// A sink kept in memory, and the handle to read it.
    pub fn in_memory() -> (Self, Recorded) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (
            Self {
                sink: Sink::Memory(lines.clone()),
            },
            Recorded(lines),
        )
    }

    /// `POST /runs` stored a new run.
    pub fn run_started(&self, provider: ProviderKind) {
        self.per_provider(provider, &[], &[("RunsStarted", Unit::Count, 1.0)]);
    }

    /// A run reached a terminal status; anything else is ignored.
    pub fn run_ended(&self, provider: ProviderKind, status: RunStatus) {
        let name = match status {
            RunStatus::Completed => "RunsCompleted",
            RunStatus::Failed => "RunsFailed",
            RunStatus::Cancelled => "RunsCancelled",
            _ => return,
        };
        self.per_provider(provider, &[], &[(name, Unit::Count, 1.0)]);
    }

    /// A provider answered busy at upload or job creation and the run went
    /// back to its queue (not a failure).
    pub fn provider_busy(&self, provider: ProviderKind) {
        self.per_provider(provider, &[], &[("ProviderBusy", Unit::Count, 1.0)]);
    }

    /// A waiting run was admitted to its pool.
    pub fn run_admitted(&self, provider: ProviderKind) {
        self.per_provider(provider, &[], &[("RunsAdmitted", Unit::Count, 1.0)]);
    }

    /// The reaper gave back a slot whose holder had let go of it without
    /// saying so (a terminal or deleted run): should stay at zero.
    pub fn slot_reclaimed(&self, provider: ProviderKind) {
        self.per_provider(provider, &[], &[("SlotsReclaimed", Unit::Count, 1.0)]);
    }

    /// A provider call failed; `kind` is the error's stable code
    /// (`provider_rate_limited`, …), never its message.
    pub fn provider_error(&self, provider: ProviderKind, kind: &str) {
        self.per_provider(
            provider,
            &[("Kind", kind)],
            &[("ProviderErrors", Unit::Count, 1.0)],
        );
    }

    /// A dataset was prepared: its examples (train and validation) and the
    /// tokens one epoch trains on.
    pub fn dataset_prepared(&self, provider: ProviderKind, examples: u64, tokens: u64) {
        self.per_provider(
            provider,
            &[],
            &[
                ("DatasetExamples", Unit::Count, examples as f64),
                ("DatasetTokens", Unit::Count, tokens as f64),
            ],
        );
    }

    /// A run's preparation was fanned out over `shards` shards.
    pub fn shards_handed_out(&self, provider: ProviderKind, shards: u32) {
        self.per_provider(
            provider,
            &[],
            &[("PreparationShardsStarted", Unit::Count, f64::from(shards))],
        );
    }

    /// A shard worker's invocation ended: done or failed, with the bytes
    /// it read and how long it took.
    pub fn shard_ended(&self, done: bool, bytes: u64, duration: Duration) {
        let metric = if done {
            "PreparationShardsDone"
        } else {
            "PreparationShardsFailed"
        };
        self.emit(
            &[],
            &[],
            &[
                (metric, Unit::Count, 1.0),
                ("PreparationShardBytes", Unit::Count, bytes as f64),
                (
                    "PreparationShardDuration",
                    Unit::Milliseconds,
                    duration.as_millis() as f64,
                ),
            ],
        );
    }

    /// A job finished and the provider reported the tokens it billed.
    pub fn billed_tokens(&self, provider: ProviderKind, tokens: u64) {
        self.per_provider(
            provider,
            &[],
            &[("BilledTokens", Unit::Count, tokens as f64)],
        );
    }

    /// Examples an evaluation scored in one step (both answers stored).
    pub fn examples_scored(&self, provider: ProviderKind, examples: u64) {
        self.per_provider(
            provider,
            &[],
            &[("EvaluationExamplesScored", Unit::Count, examples as f64)],
        );
    }

    /// An evaluation decided (`better`, `worse`, `inconclusive`), and
    /// whether the model was activated by it.
    /// Published by provider and decision, and by decision alone (what
    /// the "worse fine-tune" alarm watches).
    pub fn evaluation_decided(&self, provider: ProviderKind, decision: &str, activated: bool) {
        let dimensions = [("Provider", provider.as_str()), ("Decision", decision)];
        self.emit(
            &dimensions,
            &[&dimensions, &dimensions[1..]],
            &[
                ("EvaluationsDecided", Unit::Count, 1.0),
                (
                    "ModelsActivated",
                    Unit::Count,
                    f64::from(u8::from(activated)),
                ),
            ],
        );
    }

    /// One monitor tick. `stalest_idle` is how long the least recently
    /// written run it took had gone unwritten: it grows when runs stop
    /// advancing, which is what the "stuck runs" alarm watches.
    pub fn monitor_tick(&self, tick: &MonitorTick) {
        self.emit(
            &[],
            &[],
            &[
                ("MonitorRunsChecked", Unit::Count, tick.checked as f64),
                ("MonitorRunsAdvanced", Unit::Count, tick.advanced as f64),
                ("MonitorRunsErrored", Unit::Count, tick.errored as f64),
                (
                    "MonitorDuration",
                    Unit::Milliseconds,
                    tick.duration.as_millis() as f64,
                ),
                (
                    "MonitorStalestRunIdle",
                    Unit::Seconds,
                    tick.stalest_idle.as_secs() as f64,
                ),
            ],
        );
    }

    /// Run metrics: by provider (plus `extra` dimensions), and aggregated.
    fn per_provider(
        &self,
        provider: ProviderKind,
        extra: &[(&str, &str)],
        values: &[(&str, Unit, f64)],
    ) {
        let mut dimensions = vec![("Provider", provider.as_str())];
        dimensions.extend_from_slice(extra);
        self.emit(&dimensions, &[dimensions.as_slice()], values);
    }

    /// One EMF line: `dimensions` as members, and the dimension sets the
    /// values are published under (always including the empty set, the
    /// aggregate an alarm can watch without knowing the providers).
    fn emit(
        &self,
        dimensions: &[(&str, &str)],
        sets: &[&[(&str, &str)]],
        values: &[(&str, Unit, f64)],
    ) {
        if matches!(self.sink, Sink::Discard) {
            return;
        }
        let line = emf_line(
            dimensions,
            sets,
            values,
            chrono::Utc::now().timestamp_millis(),
        );
        match &self.sink {
            Sink::Stdout => {
                // One write of a whole line, so it never interleaves with a log line.
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(format!("{line}\n").as_bytes());
                let _ = out.flush();
            }
            Sink::Memory(lines) => lines.lock().unwrap_or_else(|p| p.into_inner()).push(line),
            Sink::Discard => {}
        }
    }
}

/// What a monitor tick reports to [`Metrics::monitor_tick`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonitorTick {
    pub checked: usize,
    pub advanced: usize,
    pub errored: usize,
    pub duration: Duration,
    pub stalest_idle: Duration,
}

fn emf_line(
    dimensions: &[(&str, &str)],
    sets: &[&[(&str, &str)]],
    values: &[(&str, Unit, f64)],
    timestamp_ms: i64,
) -> String {
    let mut dimension_sets: Vec<Vec<&str>> = sets
        .iter()
        .map(|set| set.iter().map(|(k, _)| *k).collect())
        .collect();
    dimension_sets.push(Vec::new());
    let metrics: Vec<Value> = values
        .iter()
        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
        .collect();
    let mut line = Map::new();
    line.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dimension_sets,
                "Metrics": metrics,
            }]
        }),
    );
    for (k, v) in dimensions {
        line.insert((*k).to_owned(), json!(v));
    }
    for (name, _, value) in values {
        line.insert((*name).to_owned(), json!(value));
    }
    Value::Object(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the EMF rules CloudWatch applies: every dimension key and
    /// metric name of the directive is a member of the line.
    fn assert_emf(line: &Value) {
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert!(line["_aws"]["Timestamp"].as_i64().unwrap() > 0);
        for set in directive["Dimensions"].as_array().unwrap() {
            for key in set.as_array().unwrap() {
                assert!(line[key.as_str().unwrap()].is_string(), "{line}");
            }
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            assert!(line[metric["Name"].as_str().unwrap()].is_number(), "{line}");
            assert!(metric["Unit"].is_string());
        }
    }

    #[test]
    fn a_run_metric_is_one_emf_line_by_provider_and_aggregated() {
        let (metrics, recorded) = Metrics::in_memory();
        metrics.run_started(ProviderKind::OpenAi);
        let lines = recorded.lines();
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_emf(line);
        assert_eq!(line["Provider"], "openai");
        assert_eq!(line["RunsStarted"], 1.0);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Provider"], []])
        );
    }

    #[test]
    fn only_terminal_statuses_count_as_ended() {
        let (metrics, recorded) = Metrics::in_memory();
        metrics.run_ended(ProviderKind::OpenAi, RunStatus::Training);
        metrics.run_ended(ProviderKind::OpenAi, RunStatus::Failed);
        metrics.run_ended(ProviderKind::Bedrock, RunStatus::Cancelled);
        metrics.run_ended(ProviderKind::OpenAi, RunStatus::Completed);
        assert_eq!(recorded.lines().len(), 3);
        assert_eq!(
            recorded.sum("RunsFailed", Some(("Provider", "openai"))),
            1.0
        );
        assert_eq!(
            recorded.sum("RunsCancelled", Some(("Provider", "bedrock"))),
            1.0
        );
        recorded.lines().iter().for_each(assert_emf);
    }

    #[test]
    fn provider_errors_carry_their_kind_as_a_dimension() {
        let (metrics, recorded) = Metrics::in_memory();
        metrics.provider_error(ProviderKind::OpenAi, "provider_rate_limited");
        let line = &recorded.lines()[0];
        assert_emf(line);
        assert_eq!(line["Kind"], "provider_rate_limited");
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Provider", "Kind"], []])
        );
    }

    #[test]
    fn a_monitor_tick_has_no_dimensions_and_its_units() {
        let (metrics, recorded) = Metrics::in_memory();
        metrics.monitor_tick(&MonitorTick {
            checked: 3,
            advanced: 2,
            errored: 1,
            duration: Duration::from_millis(1500),
            stalest_idle: Duration::from_secs(90),
        });
        let line = &recorded.lines()[0];
        assert_emf(line);
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([[]]));
        assert_eq!(line["MonitorRunsChecked"], 3.0);
        assert_eq!(line["MonitorDuration"], 1500.0);
        assert_eq!(line["MonitorStalestRunIdle"], 90.0);
        let units: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Unit"].as_str().unwrap())
            .collect();
        assert_eq!(
            units,
            ["Count", "Count", "Count", "Milliseconds", "Seconds"]
        );
    }
}
