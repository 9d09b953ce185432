//! Installing and starting the services. Enters: the written configuration, the [`Layout`], the
//! account the services run as and the `cloudsync` binary. Leaves: every unit of
//! [`service_unit::all_units`] written (0644) into the layout's unit directory, and either the
//! commands run (systemd is PID 1 and this is a system install) or the same commands returned for
//! the admin to run (a container, CI, or an install under `--prefix`).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::InstallError;
use super::files::{ensure_dir, write_file};
use super::layout::Layout;
use crate::config::Config;
use crate::control::service_unit::{ENABLED_UNITS, UnitOptions, all_units, writable_dirs};

/// What the services step did.
#[derive(Debug, Default)]
pub struct ServicesOutcome {
    /// The unit files written.
    pub units: Vec<PathBuf>,
    /// The commands run (systemd present) …
    pub ran: Vec<String>,
    /// … or to run by hand (no systemd as PID 1, or a `--prefix` install).
    pub to_run: Vec<String>,
}

/// Whether systemd runs this machine (`sd_booted()`: `/run/systemd/system` exists).
pub fn systemd_is_pid1() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Writes the units and starts them, or returns the commands; see the module doc.
pub fn install_services(
    config: &Config,
    layout: &Layout,
    user: &str,
    binary: &Path,
) -> Result<ServicesOutcome, InstallError> {
    let options = UnitOptions {
        binary: binary.to_path_buf(),
        config_file: layout.config_file(),
        user: user.to_string(),
    };
    let units = all_units(config, &options)?;
    let dir = layout.unit_dir();
    ensure_dir(&dir, 0o755)?;
    let mut outcome = ServicesOutcome::default();
    for (name, text) in &units {
        let path = dir.join(name);
        write_file(&path, text.as_bytes(), 0o644)?;
        outcome.units.push(path);
    }
    // The state directory, and any writable directory configured outside it.
    let mut state = vec![layout.state_dir().display().to_string()];
    state.extend(
        writable_dirs(config)
            .iter()
            .filter(|d| !d.starts_with(layout.state_dir()))
            .map(|d| d.display().to_string()),
    );
    let mut commands = vec![
        format!(
            "id -u {user} >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin {user}"
        ),
        format!("chown -R {user}:{user} {}", state.join(" ")),
        format!(
            "chgrp {user} {} {}",
            layout.config_dir().display(),
            layout.config_file().display()
        ),
    ];
    if !layout.is_system() {
        for path in &outcome.units {
            commands.push(format!(
                "install -m 0644 {} /etc/systemd/system/",
                path.display()
            ));
        }
    }
    commands.push("systemctl daemon-reload".into());
    // The agent's service and the updater's timer; the timer starts the updater's service.
    commands.push(format!(
        "systemctl enable --now {}",
        ENABLED_UNITS.join(" ")
    ));
    if layout.is_system() && systemd_is_pid1() {
        for c in commands {
            let status = Command::new("sh")
                .arg("-c")
                .arg(&c)
                .status()
                .map_err(|source| InstallError::Io {
                    path: PathBuf::from("/bin/sh"),
                    source,
                })?;
            if !status.success() {
                return Err(InstallError::Command {
                    command: c,
                    status: status.code(),
                });
            }
            outcome.ran.push(c);
        }
    } else {
        outcome.to_run = commands;
    }
    Ok(outcome)
}

/// Stops and removes the units (or returns the commands that do, as [`install_services`]).
pub fn remove_services(
    layout: &Layout,
    config: &Config,
    binary: &Path,
) -> Result<ServicesOutcome, InstallError> {
    let options = UnitOptions {
        binary: binary.to_path_buf(),
        config_file: layout.config_file(),
        user: "cloudsync".into(),
    };
    let names: Vec<&str> = all_units(config, &options)?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let mut outcome = ServicesOutcome::default();
    let mut commands = vec![
        format!("systemctl disable --now {}", ENABLED_UNITS.join(" ")),
        format!("systemctl stop {}", names.join(" ")),
    ];
    for name in &names {
        let path = layout.unit_dir().join(name);
        if path.exists() {
            std::fs::remove_file(&path).map_err(|source| InstallError::Io {
                path: path.clone(),
                source,
            })?;
            outcome.units.push(path);
        }
        if !layout.is_system() {
            commands.push(format!("rm -f /etc/systemd/system/{name}"));
        }
    }
    commands.push("systemctl daemon-reload".into());
    if layout.is_system() && systemd_is_pid1() {
        for c in commands {
            // A unit that is already gone is not an error here.
            let _ = Command::new("sh").arg("-c").arg(&c).status();
            outcome.ran.push(c);
        }
    } else {
        outcome.to_run = commands;
    }
    Ok(outcome)
}
