//! `cloudsync tenant …`: run the local tenant (the emulated cloud directory).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use cloudsync_api::Environment;
use cloudsync_tenant::lockout::LockoutPolicy;
use cloudsync_tenant::throttle::BucketSettings;
use cloudsync_tenant::{ServeConfig, TenantOptions, ThrottleSettings};

/// Tenant subcommands.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Serve the local tenant over HTTPS (or HTTP with --http) until Ctrl-C / SIGTERM.
    Serve(Box<ServeArgs>),
}

/// Flags of `cloudsync tenant serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (see --address-file).
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long)]
    pub http: bool,
    /// State directory (sled database, TLS material); survives restarts.
    #[arg(long, default_value = "tenant-state")]
    pub state: PathBuf,
    /// Seed file (TOML) with the tenant id, domain and admin users.
    #[arg(long)]
    pub seed: Option<PathBuf>,
    /// After binding, write the base URL (e.g. https://127.0.0.1:PORT) to this file.
    #[arg(long)]
    pub address_file: Option<PathBuf>,
    /// Write the CA certificate (PEM) clients should trust to this file.
    #[arg(long)]
    pub ca_out: Option<PathBuf>,
    /// The cloud to emulate.
    #[arg(long, default_value = "AzureCloud")]
    pub environment: Environment,
    /// Access token lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_lifetime_secs: u64,
    /// Heartbeat interval announced to agents, in seconds.
    #[arg(long, default_value_t = 600)]
    pub heartbeat_interval_secs: u64,
    /// An agent without a heartbeat for this long shows as Inactive.
    #[arg(long, default_value_t = 3600)]
    pub agent_inactive_after_secs: u64,
    /// A configuration's lease runs this long after its holder's last heartbeat, in seconds;
    /// 0 (the default): twice --heartbeat-interval-secs, so another agent takes over within two
    /// heartbeat intervals of the holder's last one.
    #[arg(long, default_value_t = 0)]
    pub lease_secs: u64,
    /// Length of the delete-threshold counting window, in seconds.
    #[arg(long, default_value_t = 120)]
    pub delete_window_secs: u64,
    /// How long a password reset or unlock waits for the agent's answer, in seconds (also the
    /// writeback request's lifetime); 1 to 60.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub writeback_wait_secs: u64,
    /// The largest agent release binary `PUT /api/v1/releases/{version}` accepts, in MiB.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub release_max_mib: u64,
    /// How long one agent holds the upgrade slot (staggered upgrades) unless it reports the new
    /// binary or gives the slot back, in seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub upgrade_slot_secs: u64,
    /// Smart lockout: failed passwords for one account from one address that lock it (Entra: 10).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub lockout_threshold: u32,
    /// Smart lockout: the first lockout's length in seconds, doubling on repeats (Entra: 60).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub lockout_duration_secs: u64,
    /// Smart lockout: failures further apart than this (seconds) start a new count.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub lockout_window_secs: u64,
    /// Smart lockout: failed passwords from one address over all accounts that lock the address
    /// (password spraying); 0, the default, counts none (Entra's smart lockout has no such limit).
    #[arg(long, default_value_t = 0)]
    pub lockout_address_threshold: u32,
    /// Throttle profile: `off` or `realistic` (7,000 writes per 5 minutes, 3,500 reads per 10 s).
    #[arg(long, default_value = "off", value_parser = ["off", "realistic"])]
    pub throttle: String,
    /// Override the write budget: capacity (burst) in operations.
    #[arg(long, requires = "write_refill_per_second")]
    pub write_capacity: Option<f64>,
    /// Override the write budget: operations refilled per second.
    #[arg(long, requires = "write_capacity")]
    pub write_refill_per_second: Option<f64>,
    /// Fraction (0..1) of API requests answered with an injected 503.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Latency added to every API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Fraction (0..1) of API requests whose connection is cut after the handler ran.
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
}

impl ServeArgs {
    fn throttle_settings(&self) -> anyhow::Result<ThrottleSettings> {
        let mut t = match self.throttle.as_str() {
            "realistic" => ThrottleSettings::realistic(),
            _ => ThrottleSettings::default(),
        };
        if let (Some(capacity), Some(refill_per_second)) =
            (self.write_capacity, self.write_refill_per_second)
        {
            t.writes = Some(BucketSettings {
                capacity,
                refill_per_second,
            });
        }
        t.error_rate = self.error_rate;
        t.latency_ms = self.latency_ms;
        t.drop_rate = self.drop_rate;
        t.validate()
            .map_err(|e| anyhow::anyhow!("invalid throttle/fault flags: {e}"))?;
        Ok(t)
    }
}

/// Runs a tenant subcommand.
pub fn run(cmd: TenantCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TenantCommand::Serve(args) => serve(*args),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = ServeConfig {
        listen: args.listen,
        http: args.http,
        state_dir: args.state.clone(),
        seed: args.seed.clone(),
        address_file: args.address_file.clone(),
        ca_out: args.ca_out.clone(),
        options: TenantOptions {
            environment: args.environment,
            token_lifetime_secs: args.token_lifetime_secs,
            heartbeat_interval_secs: args.heartbeat_interval_secs,
            agent_inactive_after_secs: args.agent_inactive_after_secs,
            lease_secs: args.lease_secs,
            delete_window_secs: args.delete_window_secs,
            writeback_wait: Duration::from_secs(args.writeback_wait_secs),
            release_max_bytes: args.release_max_mib * 1024 * 1024,
            upgrade_slot: Duration::from_secs(args.upgrade_slot_secs),
            lockout: LockoutPolicy {
                threshold: args.lockout_threshold,
                duration: Duration::from_secs(args.lockout_duration_secs),
                window: Duration::from_secs(args.lockout_window_secs),
                address_threshold: args.lockout_address_threshold,
                ..LockoutPolicy::default()
            },
            ..TenantOptions::default()
        },
        throttle: args.throttle_settings()?,
    };
    let runtime = tokio::runtime::Runtime::new().context("while starting the async runtime")?;
    let result = runtime.block_on(async {
        let running = cloudsync_tenant::start(config)
            .await
            .context("while starting the local tenant")?;
        println!("{}", running.url);
        shutdown_signal().await;
        tracing::info!("Shutting down the local tenant.");
        running
            .shutdown(Duration::from_secs(5))
            .await
            .context("while shutting down")?;
        anyhow::Ok(ExitCode::SUCCESS)
    });
    // Bounded: a blocking task stuck in sled's flush (see `RunningTenant::shutdown`) must not keep
    // the process from exiting; dropping the runtime would wait for it forever.
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
