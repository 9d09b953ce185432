//! `cloudsync agent units`: writes the agent's hardened systemd unit for its configuration and prints the
//! commands that install and start it (the admin runs them; `agent install` will do it itself).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cloudsync_agent::control::service_unit::{AGENT_UNIT, UnitOptions, agent_unit, writable_dirs};

use super::config_args::ConfigArgs;

/// Arguments of `agent units`.
#[derive(Debug, clap::Args)]
pub struct UnitsArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The directory to write `cloudsync-agent.service` into (e.g. /etc/systemd/system).
    #[arg(long)]
    out: PathBuf,
    /// The account (and group) the service runs as; it must own the state directories.
    #[arg(long, default_value = "cloudsync")]
    user: String,
    /// The cloudsync binary the unit runs; default: this one.
    #[arg(long)]
    binary: Option<PathBuf>,
}

/// Writes the unit (0644: systemd units are world-readable and hold no secret) and prints what to run.
pub fn run(args: UnitsArgs) -> anyhow::Result<ExitCode> {
    let config = args.config.load()?;
    let binary = match args.binary {
        Some(b) => b,
        None => std::env::current_exe().context("while finding this binary's path")?,
    };
    let config_file = std::path::absolute(&args.config.config)
        .with_context(|| format!("while resolving {}", args.config.config.display()))?;
    let unit = agent_unit(
        &config,
        &UnitOptions {
            binary,
            config_file,
            user: args.user.clone(),
        },
    )?;
    let path = args.out.join(AGENT_UNIT);
    std::fs::write(&path, unit).with_context(|| format!("while writing {}", path.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("while setting the mode of {}", path.display()))?;
    }
    println!("wrote {}", path.display());
    println!("to install and start it (as root):");
    let dirs: Vec<String> = writable_dirs(&config)
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    println!(
        "  id -u {u} >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin {u}",
        u = args.user
    );
    println!(
        "  install -d -m 0700 -o {u} -g {u} {}",
        dirs.join(" "),
        u = args.user
    );
    if args.out != std::path::Path::new("/etc/systemd/system") {
        println!("  install -m 0644 {} /etc/systemd/system/", path.display());
    }
    println!("  systemctl daemon-reload && systemctl enable --now {AGENT_UNIT}");
    println!("  journalctl -u {AGENT_UNIT} -f    # its logs, one JSON object per line");
    Ok(ExitCode::SUCCESS)
}
