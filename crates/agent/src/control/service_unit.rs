//! The agent's and the updater's systemd units. Enters: the loaded configuration (its state paths
//! and shutdown grace), the binary's path, the configuration file's path and the account the
//! services run as. Leaves: the text of `cloudsync-agent.service`, `cloudsync-updater.service` (a
//! oneshot `cloudsync updater run`, writing only beside the binary) and `cloudsync-updater.timer`
//! (daily, with a randomized delay) — [`all_units`]. Both services are hardened
//! (`ProtectSystem=strict` with write access only to the agent's state — for the updater only the
//! binary's directory —, `NoNewPrivileges`, no capabilities but the updater's one, private /tmp and
//! devices) and log structured JSON lines to the journal (`--log-json`).
//!
//! Paths are written as quoted systemd arguments; a path systemd cannot carry (a newline, a double
//! quote, a backslash) is refused rather than written wrongly.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// The agent's unit file name.
pub const AGENT_UNIT: &str = "cloudsync-agent.service";
/// The updater's service (a oneshot `cloudsync updater run`).
pub const UPDATER_UNIT: &str = "cloudsync-updater.service";
/// The timer that starts the updater's service daily.
pub const UPDATER_TIMER: &str = "cloudsync-updater.timer";
/// The units to enable and start (`systemctl enable --now`); the updater's service is started by
/// its timer.
pub const ENABLED_UNITS: [&str; 2] = [AGENT_UNIT, UPDATER_TIMER];

/// What the unit runs and as whom.
#[derive(Debug, Clone)]
pub struct UnitOptions {
    /// The `cloudsync` binary (absolute).
    pub binary: PathBuf,
    /// The agent configuration file (absolute).
    pub config_file: PathBuf,
    /// The account and group the service runs as.
    pub user: String,
}

/// Why no unit could be written.
#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    /// A path systemd's quoting cannot carry, or one that is not absolute.
    #[error("{what} {path:?} cannot be written into a unit file: {why}")]
    Path {
        /// Which path.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why not.
        why: &'static str,
    },
    /// A user name systemd would not accept.
    #[error(
        "user {0:?} is not a valid account name (letters, digits, '_', '-', '.'; not starting with '-')"
    )]
    User(String),
}

/// One path as a quoted systemd argument (`%` doubled, as systemd's specifiers require).
fn quoted(what: &'static str, path: &Path) -> Result<String, UnitError> {
    let refuse = |why| UnitError::Path {
        what,
        path: path.to_path_buf(),
        why,
    };
    if !path.is_absolute() {
        return Err(refuse("it is not absolute"));
    }
    let text = path.to_str().ok_or_else(|| refuse("it is not UTF-8"))?;
    if text.contains(['\n', '\r', '"', '\\']) {
        return Err(refuse("it holds a newline, a double quote or a backslash"));
    }
    Ok(format!("\"{}\"", text.replace('%', "%%")))
}

/// The directories the running agent writes: the journal's parent (the journal, the status file, and by
/// default projection and outbox), and projection's and the outbox's own when configured elsewhere;
/// none listed under another.
pub fn writable_dirs(config: &Config) -> BTreeSet<PathBuf> {
    let parent = |p: &Path| {
        p.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| p.to_path_buf())
    };
    let all = [
        parent(&config.agent.journal_dir),
        config.agent.projection_dir(),
        config.agent.outbox_dir(),
    ];
    // A directory under another one already writable adds nothing.
    all.iter()
        .filter(|d| !all.iter().any(|o| o != *d && d.starts_with(o)))
        .cloned()
        .collect()
}

/// The text of `cloudsync-agent.service` for `config`.
pub fn agent_unit(config: &Config, options: &UnitOptions) -> Result<String, UnitError> {
    let user = checked_user(&options.user)?;
    let binary = quoted("the binary", &options.binary)?;
    let config_file = quoted("the configuration file", &options.config_file)?;
    let writable = writable_dirs(config)
        .iter()
        .map(|d| quoted("a state directory", d))
        .collect::<Result<Vec<_>, _>>()?
        .join(" ");
    // systemd waits this long after SIGTERM: the agent's own bounded shutdown plus a margin.
    let stop_secs = crate::runtime::daemon::task_deadline(config).as_secs() + 15;
    Ok(format!(
        "# Written by `cloudsync agent units`; re-run it after changing the paths in the configuration.\n\
         [Unit]\n\
         Description=cloudsync provisioning agent (Active Directory to the cloud directory)\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=exec\n\
         User={user}\n\
         Group={user}\n\
         ExecStart={binary} --log-json agent run --config {config_file}\n\
         Restart=on-failure\n\
         RestartSec=10s\n\
         TimeoutStopSec={stop_secs}s\n\
         {hardening}\
         ReadWritePaths={writable}\n\
         {sandbox}\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        hardening = HARDENING,
        sandbox = SANDBOX,
    ))
}

/// Privileges every unit drops (before `ReadWritePaths=`, which only the agent has).
const HARDENING: &str = "UMask=0077\n\
    NoNewPrivileges=yes\n\
    CapabilityBoundingSet=\n\
    ProtectSystem=strict\n";

/// The sandbox every unit runs in (after `ReadWritePaths=`).
const SANDBOX: &str = "ProtectHome=yes\n\
    PrivateTmp=yes\n\
    PrivateDevices=yes\n\
    ProtectKernelTunables=yes\n\
    ProtectKernelModules=yes\n\
    ProtectKernelLogs=yes\n\
    ProtectControlGroups=yes\n\
    ProtectClock=yes\n\
    ProtectHostname=yes\n\
    RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n\
    RestrictNamespaces=yes\n\
    RestrictRealtime=yes\n\
    RestrictSUIDSGID=yes\n\
    LockPersonality=yes\n\
    SystemCallArchitectures=native\n";

fn checked_user(user: &str) -> Result<&str, UnitError> {
    let valid = !user.is_empty()
        && !user.starts_with('-')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(user)
    } else {
        Err(UnitError::User(user.to_string()))
    }
}

/// The text of `cloudsync-updater.service`: one `cloudsync updater run` (a oneshot the timer
/// starts). It runs as root because it swaps the root-owned binary and restarts the agent's
/// service (`systemctl restart` over D-Bus), but confined: `ProtectSystem=strict` with the binary's
/// directory the only writable path, `NoNewPrivileges`, and of all capabilities only
/// `CAP_DAC_READ_SEARCH` (to read the agent user's 0600 credentials file). Exit codes 2 (available,
/// not applied) and 5 (deferred: another agent holds the upgrade slot) count as success; 3
/// (refused) and 4 (rolled back) mark the unit failed, so they show in `systemctl --failed`.
pub fn updater_unit(options: &UnitOptions) -> Result<String, UnitError> {
    // The agent's user is checked although the updater does not run as it: a bad one is a bad
    // install either way.
    checked_user(&options.user)?;
    let binary = quoted("the binary", &options.binary)?;
    let config_file = quoted("the configuration file", &options.config_file)?;
    let binary_dir = quoted(
        "the binary's directory",
        options.binary.parent().unwrap_or(Path::new("/")),
    )?;
    let available = crate::control::updater::EXIT_UPDATE_AVAILABLE;
    let deferred = crate::control::updater::EXIT_DEFERRED;
    Ok(format!(
        "# Written by `cloudsync agent units`; started by {UPDATER_TIMER}.\n\
         [Unit]\n\
         Description=cloudsync agent updater (applies a newer signed agent from the tenant's release channel)\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={binary} --log-json updater run --config {config_file}\n\
         SuccessExitStatus={available} {deferred}\n\
         TimeoutStartSec=30min\n\
         UMask=0077\n\
         NoNewPrivileges=yes\n\
         CapabilityBoundingSet=CAP_DAC_READ_SEARCH\n\
         ProtectSystem=strict\n\
         ReadWritePaths={binary_dir}\n\
         {SANDBOX}"
    ))
}

/// The text of `cloudsync-updater.timer`: the updater once a day, at a random point in the first
/// hour after midnight (so a fleet does not ask the tenant at the same second), and at boot when a
/// run was missed while the machine was off.
pub fn updater_timer() -> String {
    format!(
        "# Written by `cloudsync agent units`.\n\
         [Unit]\n\
         Description=Daily check for a newer cloudsync agent\n\
         \n\
         [Timer]\n\
         OnCalendar=daily\n\
         RandomizedDelaySec=1h\n\
         Persistent=true\n\
         Unit={UPDATER_UNIT}\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n"
    )
}

/// Every unit an install writes, by file name, in the order they are started: the agent's service,
/// the updater's service (no `[Install]` section: its timer starts it) and the updater's timer.
/// Enabling and starting are for the agent's service and the timer ([`ENABLED_UNITS`]).
pub fn all_units(
    config: &Config,
    options: &UnitOptions,
) -> Result<Vec<(&'static str, String)>, UnitError> {
    Ok(vec![
        (AGENT_UNIT, agent_unit(config, options)?),
        (UPDATER_UNIT, updater_unit(options)?),
        (UPDATER_TIMER, updater_timer()),
    ])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(journal: &str) -> Config {
        let text = format!(
            "[agent]\njournal_dir = \"{journal}\"\n[domains.corp]\ndns_name = \"corp.example.test\"\n\
             url = \"ldap://127.0.0.1\"\nallow_plaintext = true\nbind_dn = \"svc@corp.example.test\"\n\
             password = \"p\"\n"
        );
        Config::from_toml_str(&text).unwrap()
    }

    fn options() -> UnitOptions {
        UnitOptions {
            binary: "/usr/local/bin/cloudsync".into(),
            config_file: "/etc/cloudsync/agent.toml".into(),
            user: "cloudsync".into(),
        }
    }

    #[test]
    fn the_unit_writes_only_the_state_and_runs_unprivileged() {
        let unit = agent_unit(&config("/var/lib/cloudsync/journal"), &options()).unwrap();
        assert!(unit.contains("ExecStart=\"/usr/local/bin/cloudsync\" --log-json agent run --config \"/etc/cloudsync/agent.toml\"\n"), "{unit}");
        assert!(
            unit.contains("\nReadWritePaths=\"/var/lib/cloudsync\"\n"),
            "{unit}"
        );
        assert!(unit.contains("\nUser=cloudsync\n") && unit.contains("\nProtectSystem=strict\n"));
        assert!(
            unit.contains("\nNoNewPrivileges=yes\n") && unit.contains("\nCapabilityBoundingSet=\n")
        );
        // An outbox configured elsewhere is writable too.
        let mut c = config("/var/lib/cloudsync/journal");
        c.agent.outbox_dir = Some("/srv/outbox".into());
        let unit = agent_unit(&c, &options()).unwrap();
        assert!(
            unit.contains("\nReadWritePaths=\"/srv/outbox\" \"/var/lib/cloudsync\"\n"),
            "{unit}"
        );
    }

    #[test]
    fn paths_systemd_cannot_carry_are_refused_and_percent_is_escaped() {
        let mut o = options();
        o.config_file = "/etc/cloud\"sync/agent.toml".into();
        assert!(matches!(
            agent_unit(&config("/var/lib/cs/journal"), &o),
            Err(UnitError::Path { .. })
        ));
        o.config_file = "relative.toml".into();
        assert!(matches!(
            agent_unit(&config("/var/lib/cs/journal"), &o),
            Err(UnitError::Path { .. })
        ));
        let unit = agent_unit(&config("/var/lib/100%/journal"), &options()).unwrap();
        assert!(unit.contains("ReadWritePaths=\"/var/lib/100%%\""), "{unit}");
        let mut o = options();
        o.user = "-root".into();
        assert!(matches!(
            agent_unit(&config("/var/lib/cs/journal"), &o),
            Err(UnitError::User(_))
        ));
    }

    #[test]
    fn the_updater_runs_once_writing_only_beside_the_binary_and_its_timer_starts_it() {
        let units = all_units(&config("/var/lib/cloudsync/journal"), &options()).unwrap();
        let names: Vec<&str> = units.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "cloudsync-agent.service",
                "cloudsync-updater.service",
                "cloudsync-updater.timer"
            ]
        );
        let updater = &units[1].1;
        assert!(updater.contains("\nType=oneshot\n"), "{updater}");
        assert!(updater.contains("ExecStart=\"/usr/local/bin/cloudsync\" --log-json updater run --config \"/etc/cloudsync/agent.toml\"\n"), "{updater}");
        assert!(!updater.contains("\nUser="), "{updater}");
        assert!(updater.contains("\nProtectSystem=strict\n"), "{updater}");
        assert!(
            updater.contains("\nCapabilityBoundingSet=CAP_DAC_READ_SEARCH\n"),
            "{updater}"
        );
        assert!(updater.contains("\nNoNewPrivileges=yes\n"), "{updater}");
        assert!(
            updater.contains("\nReadWritePaths=\"/usr/local/bin\"\n"),
            "{updater}"
        );
        assert!(!updater.contains("[Install]"), "{updater}");
        assert!(updater.contains("\nSuccessExitStatus=2 5\n"), "{updater}");
        let timer = &units[2].1;
        assert!(
            timer.contains("\nUnit=cloudsync-updater.service\n")
                && timer.contains("\nRandomizedDelaySec="),
            "{timer}"
        );
        let mut o = options();
        o.user = String::new();
        assert!(matches!(updater_unit(&o), Err(UnitError::User(_))));
    }
}
