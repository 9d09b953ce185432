//! `cloudsync agent units`: writes the agent's and the updater's hardened systemd units for its
//! configuration (`all_units`) and prints the commands that install and start them (the admin runs
//! them; `agent install` does it itself).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cloudsync_agent::control::service_unit::{
    AGENT_UNIT, ENABLED_UNITS, UnitOptions, all_units, writable_dirs,
};

use super::config_args::ConfigArgs;

/// Arguments of `agent units`.
#[derive(Debug, clap::Args)]
pub struct UnitsArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The directory to write the units into (e.g. /etc/systemd/system).
    #[arg(long)]
    out: PathBuf,
    /// The account (and group) the service runs as; it must own the state directories.
    #[arg(long, default_value = "cloudsync")]
    user: String,
    /// The cloudsync binary the unit runs; default: this one.
    #[arg(long)]
    binary: Option<PathBuf>,
}

/// Writes the units (0644: systemd units are world-readable and hold no secret) and prints what to run.
pub fn run(args: UnitsArgs) -> anyhow::Result<ExitCode> {
    let config = args.config.load()?;
    let binary = match args.binary {
        Some(b) => b,
        None => std::env::current_exe().context("while finding this binary's path")?,
    };
    let config_file = std::path::absolute(&args.config.config)
        .with_context(|| format!("while resolving {}", args.config.config.display()))?;
    let units = all_units(
        &config,
        &UnitOptions {
            binary,
            config_file,
            user: args.user.clone(),
        },
    )?;
    let mut paths = Vec::new();
    for (name, unit) in units {
        let path = args.out.join(name);
        std::fs::write(&path, unit).with_context(|| format!("while writing {}", path.display()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
                .with_context(|| format!("while setting the mode of {}", path.display()))?;
        }
        println!("wrote {}", path.display());
        paths.push(path.display().to_string());
    }
    println!("to install and start them (as root):");
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
        println!("  install -m 0644 {} /etc/systemd/system/", paths.join(" "));
    }
    println!(
        "  systemctl daemon-reload && systemctl enable --now {}",
        ENABLED_UNITS.join(" ")
    );
    println!("  journalctl -u {AGENT_UNIT} -f    # its logs, one JSON object per line");
    Ok(ExitCode::SUCCESS)
}
