//! Base-model shutdown dates, from `shutdown_dates.json` (compiled in, so
//! the table ships with the code that relies on it and changes by review).
//!
//! A fine-tuned model dies with its base model (OpenAI's GPT-4o / GPT-4.1
//! fine-tunes stop on 2027-01-14), so training one that will live only days
//! wastes the tenant's money. `POST /runs` refuses such a run, with the date,
//! unless the request says it knows (`acknowledge_shutdown`).
//!
//! The table is one file keyed by provider name; each provider's profile
//! hands out its own entry ([`published`]), and the checks here ask the
//! run's profile, so a provider without an entry simply has no dates.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::NaiveDate;
use serde::Deserialize;

use super::profiles::profile;
use crate::domain::ProviderKind;

const TABLE_JSON: &str = include_str!("shutdown_dates.json");

/// One provider's dates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ProviderDates {
    /// The last day the provider takes new fine-tuning jobs.
    pub new_jobs_until: Option<NaiveDate>,
    /// The day each base model (and its fine-tunes) shuts down.
    #[serde(default)]
    pub models: BTreeMap<String, NaiveDate>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Table {
    /// The file's note for people.
    #[serde(default, rename = "about")]
    _about: Option<String>,
    /// Every other key is a provider's name.
    #[serde(flatten)]
    providers: BTreeMap<String, ProviderDates>,
}

/// No dates: what a provider missing from the table has.
static NONE: ProviderDates = ProviderDates {
    new_jobs_until: None,
    models: BTreeMap::new(),
};

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    serde_json::from_str(TABLE_JSON).unwrap_or_else(|e| {
        // A unit test parses the file, so this is a broken build, not input.
        tracing::error!(error = %crate::telemetry::chain(&e), "shutdown_dates.json does not parse; no dates known");
        Table::default()
    })
});

/// The compiled-in dates of `provider` (what its profile answers).
pub fn published(provider: ProviderKind) -> &'static ProviderDates {
    TABLE.providers.get(provider.as_str()).unwrap_or(&NONE)
}

fn dates(provider: ProviderKind) -> &'static ProviderDates {
    profile(provider).shutdown_dates()
}

/// The day `model` shuts down at `provider`, if one is announced.
pub fn shutdown_date(provider: ProviderKind, model: &str) -> Option<NaiveDate> {
    dates(provider).models.get(model).copied()
}

/// Why a run may not start on this model now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShutdownRefusal {
    /// The provider takes no new jobs; acknowledging changes nothing.
    #[error(
        "{} takes no new fine-tuning jobs after {date}; choose another provider",
        .provider.as_str()
    )]
    NoNewJobs {
        provider: ProviderKind,
        date: NaiveDate,
    },
    /// Already shut down: its fine-tuned model could not be used at all.
    #[error("{model} shut down on {date}; choose another base model")]
    ShutDown { model: String, date: NaiveDate },
    /// Shuts down within the margin: refused unless acknowledged.
    #[error(
        "{model} shuts down on {date} ({days} days from now, within the {margin}-day margin) and \
         its fine-tuned model stops with it; choose another base model or provider, or set \
         acknowledge_shutdown to true"
    )]
    ShutsDownSoon {
        model: String,
        date: NaiveDate,
        days: i64,
        margin: u32,
    },
}

/// Whether a run on `model` at `provider` may start `today`.
pub fn check(
    provider: ProviderKind,
    model: &str,
    today: NaiveDate,
    margin_days: u32,
    acknowledged: bool,
) -> Result<(), ShutdownRefusal> {
    let dates = dates(provider);
    check_against(dates, provider, model, today, margin_days, acknowledged)
}

fn check_against(
    dates: &ProviderDates,
    provider: ProviderKind,
    model: &str,
    today: NaiveDate,
    margin_days: u32,
    acknowledged: bool,
) -> Result<(), ShutdownRefusal> {
    if let Some(date) = dates.new_jobs_until
        && today > date
    {
        return Err(ShutdownRefusal::NoNewJobs { provider, date });
    }
    let Some(date) = dates.models.get(model).copied() else {
        return Ok(());
    };
    let days = (date - today).num_days();
    if days <= 0 {
        return Err(ShutdownRefusal::ShutDown {
            model: model.to_owned(),
            date,
        });
    }
    if days <= i64::from(margin_days) && !acknowledged {
        return Err(ShutdownRefusal::ShutsDownSoon {
            model: model.to_owned(),
            date,
            days,
            margin: margin_days,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_compiled_in_table_parses_and_knows_the_gpt_4o_family_date() {
        let table: Table = serde_json::from_str(TABLE_JSON).unwrap();
        let openai = &table.providers["openai"];
        assert_eq!(openai.new_jobs_until, Some(day("2027-01-06")));
        assert_eq!(
            shutdown_date(ProviderKind::OpenAi, "gpt-4o-mini-2024-07-18"),
            Some(day("2027-01-14"))
        );
        assert_eq!(
            shutdown_date(ProviderKind::OpenAi, "gpt-4.1-2025-04-14"),
            Some(day("2027-01-14"))
        );
        assert_eq!(
            shutdown_date(ProviderKind::Bedrock, "amazon.nova-micro-v1:0:128k"),
            None
        );
    }

    #[test]
    fn a_model_far_from_its_shutdown_is_accepted() {
        let ok = check(
            ProviderKind::OpenAi,
            "gpt-4o-mini-2024-07-18",
            day("2026-11-01"),
            30,
            false,
        );
        assert_eq!(ok, Ok(()));
    }

    #[test]
    fn a_model_shutting_down_within_the_margin_is_refused_with_its_date() {
        let err = check(
            ProviderKind::OpenAi,
            "gpt-4o-mini-2024-07-18",
            day("2026-12-20"),
            30,
            false,
        )
        .unwrap_err();
        assert_eq!(
            err,
            ShutdownRefusal::ShutsDownSoon {
                model: "gpt-4o-mini-2024-07-18".into(),
                date: day("2027-01-14"),
                days: 25,
                margin: 30,
            }
        );
        let message = err.to_string();
        assert!(message.contains("2027-01-14"), "{message}");
        assert!(message.contains("acknowledge_shutdown"), "{message}");
    }

    #[test]
    fn acknowledging_the_date_lets_the_run_start() {
        let ok = check(
            ProviderKind::OpenAi,
            "gpt-4o-mini-2024-07-18",
            day("2026-12-20"),
            30,
            true,
        );
        assert_eq!(ok, Ok(()));
    }

    #[test]
    fn a_zero_margin_refuses_only_from_the_shutdown_day() {
        let dates = ProviderDates {
            new_jobs_until: None,
            models: [("m".to_owned(), day("2027-01-14"))].into(),
        };
        let on = |d: &str| check_against(&dates, ProviderKind::Bedrock, "m", day(d), 0, false);
        assert_eq!(on("2027-01-13"), Ok(()));
        assert!(matches!(
            on("2027-01-14"),
            Err(ShutdownRefusal::ShutDown { .. })
        ));
    }

    #[test]
    fn after_the_last_day_for_new_jobs_even_an_acknowledged_run_is_refused() {
        let err = check(
            ProviderKind::OpenAi,
            "gpt-4o-mini-2024-07-18",
            day("2027-01-07"),
            0,
            true,
        )
        .unwrap_err();
        assert!(matches!(err, ShutdownRefusal::NoNewJobs { .. }));
        assert!(err.to_string().contains("2027-01-06"), "{err}");
    }

    #[test]
    fn a_model_without_a_date_is_never_refused() {
        let ok = check(
            ProviderKind::Bedrock,
            "amazon.nova-lite-v1:0:300k",
            day("2030-01-01"),
            365,
            false,
        );
        assert_eq!(ok, Ok(()));
    }
}
