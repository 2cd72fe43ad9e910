//! Background data upgrades: named row upgrades declared in `lockgate.toml` and
//! `upgrades/*.toml`, or registered as Rust functions ([`def`]), applied in
//! throttled, resumable batches recorded in each row's `applied_upgrades` ([`run`]:
//! init, the walk, row functions with their compare-and-set, quarantine and retry,
//! control, cleanup, the upgraded view, `apply_on_read`), row scripts in a sandbox
//! ([`script`]). ARCHITECTURE.md's "Upgrades" section is the design.

pub mod def;
pub mod run;
pub mod script;

pub use def::{Change, DeclarationError, RowFunction, RustChange, Upgrade, UpgradeSpec};
pub use run::{
    apply_on_read, cleanup, control, init, retry, run, status, view, CleanupReport, RetryReport, RunOptions, RunReport,
    UpgradeError, UpgradeOutcome, UpgradeProgress, UpgradeStatus,
};

use crate::config::Config;
use std::path::Path;

/// Every declared upgrade, from `[upgrades.NAME]` in `config` and the files of the
/// folder `dir` (`upgrades/`), checked together and in dependency order.
pub fn declared(config: &Config, dir: &Path) -> Result<Vec<Upgrade>, DeclarationError> {
    let origin = config
        .path
        .as_ref()
        .map_or_else(|| "lockgate.toml".to_string(), |p| p.display().to_string());
    let mut all: Vec<def::Declared> = config
        .upgrades
        .iter()
        .map(|(name, spec)| (name.clone(), origin.clone(), spec.clone()))
        .collect();
    all.extend(def::read_folder(dir)?);
    def::check(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockgate_toml_and_the_folder_declare_together() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("lockgate.toml");
        std::fs::write(
            &toml,
            "[upgrades.trim]\ntable = \"users\"\nset = { email = \"trim(email)\" }\n",
        )
        .unwrap();
        let folder = dir.path().join("upgrades");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(
            folder.join("lower.toml"),
            "table = \"users\"\nset = { email = \"lower(email)\" }\nafter = [\"trim\"]\n",
        )
        .unwrap();
        let config = Config::load(&toml, true).unwrap();
        let got = declared(&config, &folder).unwrap();
        let names: Vec<&str> = got.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["trim", "lower"]);
        // A misspelt field is the file's error, at its line.
        std::fs::write(&toml, "[upgrades.trim]\ntable = \"users\"\nwhere_ = \"x\"\n").unwrap();
        let e = Config::load(&toml, true).unwrap_err().to_string();
        assert!(e.contains("lockgate.toml:3"), "{e}");
    }
}
