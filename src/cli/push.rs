//! `cloudsync push drive` (hidden): runs the push stage over an outbox filled with synthetic
//! operations until it is drained or SIGTERM arrives. Used by the crash tests until projection exists.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use zeroize::Zeroizing;

use cloudsync_agent::control::tenant_client::{Credentials, TenantClient, TlsOptions};
use cloudsync_agent::push::{self, Backoff, Outbox, PushConfig};

/// Push subcommands.
#[derive(Debug, Subcommand)]
pub enum PushCommand {
    /// Deliver an outbox (optionally seeded with synthetic user upserts) to a tenant, then exit.
    Drive(Box<DriveArgs>),
}

/// Flags of `cloudsync push drive`.
#[derive(Debug, Args)]
pub struct DriveArgs {
    /// Outbox directory (segmented log).
    #[arg(long)]
    pub outbox: PathBuf,
    /// The tenant's base URL.
    #[arg(long)]
    pub url: String,
    /// CA certificate (PEM) to trust for the tenant.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// The tenant id (the token endpoint is /{tenant}/oauth2/v2.0/token).
    #[arg(long)]
    pub tenant_id: String,
    /// The agent's client id.
    #[arg(long)]
    pub client_id: String,
    /// File holding the agent's client secret (must not be readable by group or others).
    #[arg(long)]
    pub client_secret_file: PathBuf,
    /// The configuration to push to.
    #[arg(long)]
    pub configuration: Uuid,
    /// Enqueue this many synthetic user upserts if the outbox has never held anything.
    #[arg(long, default_value_t = 0)]
    pub synthetic: u64,
    /// UPN domain of synthetic users.
    #[arg(long, default_value = "contoso.onmicrosoft.com")]
    pub upn_domain: String,
    /// Operations per batch.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Batches in flight.
    #[arg(long, default_value_t = 4)]
    pub in_flight: usize,
    /// First retry delay after a failed call, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub backoff_base_ms: u64,
    /// Client-side write pacing, operations per second.
    #[arg(long)]
    pub rate_limit: Option<f64>,
}

/// Runs a push subcommand.
pub fn run(cmd: PushCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PushCommand::Drive(args) => drive(*args),
    }
}

fn read_secret(path: &PathBuf) -> anyhow::Result<Zeroizing<String>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("while reading {}", path.display()))?
            .permissions()
            .mode();
        anyhow::ensure!(
            mode & 0o077 == 0,
            "{} is readable by group or others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("while reading {}", path.display()))?,
    );
    Ok(Zeroizing::new(text.trim().to_owned()))
}

fn drive(args: DriveArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("while starting the async runtime")?;
    runtime.block_on(async move {
        let outbox = Arc::new(Outbox::open(&args.outbox).context("while opening the outbox")?);
        if args.synthetic > 0 && outbox.last_seq()? == 0 {
            let ops =
                push::synthetic::users(args.configuration, 0..args.synthetic, &args.upn_domain);
            outbox
                .enqueue(ops, Some(("synthetic", args.synthetic)))
                .await?;
        }
        let ca_pem = match &args.ca {
            Some(p) => {
                Some(std::fs::read(p).with_context(|| format!("while reading {}", p.display()))?)
            }
            None => None,
        };
        let creds = Credentials {
            base_url: args.url.clone(),
            token_endpoint: format!("/{}/oauth2/v2.0/token", args.tenant_id),
            client_id: args.client_id.clone(),
            client_secret: read_secret(&args.client_secret_file)?,
            scope: "api://cloudsync/.default".into(),
        };
        let tls = TlsOptions {
            ca_pem,
            insecure: false,
        };
        let client = Arc::new(TenantClient::new(creds, &tls, Duration::from_secs(30))?);
        let cfg = PushConfig {
            max_batch_ops: args.batch_size,
            max_in_flight: args.in_flight,
            call_backoff: Backoff {
                base: Duration::from_millis(args.backoff_base_ms),
                ..Backoff::default()
            },
            write_rate_limit: args.rate_limit,
            stop_when_drained: true,
            ..PushConfig::default()
        };
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            terminate_signal().await;
            on_signal.cancel();
        });
        let (status, _) = tokio::sync::watch::channel(push::PushStatus::default());
        let summary = push::run(outbox, client, cfg, cancel, status)
            .await
            .context("while pushing")?;
        println!("{}", serde_json::to_string(&summary.status)?);
        Ok(ExitCode::SUCCESS)
    })
}

async fn terminate_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
