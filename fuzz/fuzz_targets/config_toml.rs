//! Fuzzes the agent's configuration file: TOML parse, typed extraction and validation
//! (`Config::from_toml_str`, the loader's path without the environment), and the command line's
//! `--set section.key=value` parser (`Override`) on each line. Any text loads or fails with a typed
//! error, never panics; an `Invalid` error names at least one problem, each with a key.
#![no_main]

use cloudsync_agent::config::{Config, ConfigError, Override};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml_str(text) {
        Ok(config) => {
            // A valid configuration validates again (validation reads nothing it did not read before).
            assert!(config.validate().is_ok());
        }
        Err(ConfigError::Invalid(problems)) => {
            assert!(!problems.is_empty(), "an Invalid error without a problem");
        }
        Err(ConfigError::Load(_)) => {}
    }
    for line in text.lines().take(4) {
        if let Ok(o) = line.parse::<Override>() {
            assert!(
                o.key.contains('.'),
                "override key {:?} without a section",
                o.key
            );
        }
    }
});
