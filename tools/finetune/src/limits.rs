//! `finetune limits show|set`: an operator reads or sets a tenant's fleet
//! limits in the records table. This is the only way limits change: the
//! HTTP API serves them read-only (`GET /limits`), so a tenant's token can
//! never raise its own cap. Who may run this is whoever IAM lets write the
//! table (`dynamodb:PutItem` on `TENANT#<tenant>` / `LIMITS`); the
//! credentials come from the usual AWS chain (environment, profile).

use std::process::ExitCode;

use aws_config::BehaviorVersion;
use clap::Subcommand;
use finetune::domain::TenantId;
use finetune::domain::fleet::{TenantLimits, Usd};
use finetune::store::Store;

#[derive(Subcommand)]
pub enum LimitsCommand {
    /// Print a tenant's limits (its own, else the default given) as JSON.
    Show {
        /// The records table (the stack's `RecordsTable` output).
        #[arg(long, env = "FINETUNE_TABLE")]
        table: String,
        #[arg(long)]
        tenant: String,
    },
    /// Set a tenant's limits: runs in flight at once and a monthly cap in
    /// US dollars. Takes effect at the next admission pass.
    Set {
        #[arg(long, env = "FINETUNE_TABLE")]
        table: String,
        #[arg(long)]
        tenant: String,
        /// 1 to 10000.
        #[arg(long)]
        max_in_flight: u32,
        /// Dollars a month (UTC months); leave out for no cap.
        #[arg(long)]
        monthly_cap_usd: Option<f64>,
    },
}

pub fn run(command: LimitsCommand) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the runtime: {e}"))?;
    runtime.block_on(async {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .http_client(finetune::aws::https_client())
            .load()
            .await;
        let client = finetune::aws::dynamodb_client(&sdk);
        match command {
            LimitsCommand::Show { table, tenant } => {
                let tenant = TenantId::parse(tenant).map_err(|e| e.to_string())?;
                let store = Store::new(client, table);
                let default = finetune::domain::fleet::FleetSettings::default().tenant_default;
                let limits = store
                    .tenant_limits(&tenant, default)
                    .await
                    .map_err(|e| finetune::telemetry::chain(&e).to_string())?;
                println!("{}", describe(&tenant, limits));
                Ok(())
            }
            LimitsCommand::Set {
                table,
                tenant,
                max_in_flight,
                monthly_cap_usd,
            } => {
                let tenant = TenantId::parse(tenant).map_err(|e| e.to_string())?;
                let limits = parse_limits(max_in_flight, monthly_cap_usd)?;
                let store = Store::new(client, table);
                store
                    .set_tenant_limits(&tenant, limits)
                    .await
                    .map_err(|e| finetune::telemetry::chain(&e).to_string())?;
                println!("{}", describe(&tenant, limits));
                Ok(())
            }
        }
    })
}

/// The limits an operator asked for, checked: the rules name the flag.
fn parse_limits(max_in_flight: u32, monthly_cap_usd: Option<f64>) -> Result<TenantLimits, String> {
    if !(1..=10_000).contains(&max_in_flight) {
        return Err(format!(
            "--max-in-flight must be from 1 to 10000, got {max_in_flight}"
        ));
    }
    let monthly_cap = match monthly_cap_usd {
        None => None,
        Some(cap) if (0.0..=1.0e9).contains(&cap) => Some(Usd::from_dollars(cap)),
        Some(cap) => {
            return Err(format!(
                "--monthly-cap-usd must be a number of dollars from 0 to 1e9, got {cap}"
            ));
        }
    };
    Ok(TenantLimits {
        max_in_flight,
        monthly_cap,
    })
}

fn describe(tenant: &TenantId, limits: TenantLimits) -> serde_json::Value {
    serde_json::json!({
        "tenant_id": tenant.to_string(),
        "max_in_flight": limits.max_in_flight,
        "monthly_cap_usd": limits.monthly_cap.map(Usd::dollars),
    })
}

pub fn exit(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("finetune limits: {message}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_their_rules_are_refused_naming_the_flag() {
        assert!(
            parse_limits(0, None)
                .unwrap_err()
                .contains("--max-in-flight")
        );
        assert!(
            parse_limits(3, Some(-1.0))
                .unwrap_err()
                .contains("--monthly-cap-usd")
        );
        assert!(parse_limits(3, Some(f64::NAN)).is_err());
        let ok = parse_limits(3, Some(12.5)).unwrap();
        assert_eq!(ok.monthly_cap, Some(Usd::from_dollars(12.5)));
    }
}
