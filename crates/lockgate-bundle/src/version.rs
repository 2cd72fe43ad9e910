//! Versions: the `x.y.z` names of version folders and the versions a ledger records.

use std::fmt;
use std::str::FromStr;

/// A version `major.minor.patch`, as version folders are named (`1.0.0`, `1.10.0`).
///
/// Versions order numerically (`1.2.0 < 1.10.0`). There are no pre-release or build parts:
/// oe-migration names folders with three whole numbers only. Serialized as its string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// The first number.
    pub major: u64,
    /// The second number.
    pub minor: u64,
    /// The third number.
    pub patch: u64,
}

impl Version {
    /// The version `major.minor.patch`.
    pub fn new(major: u64, minor: u64, patch: u64) -> Version {
        Version { major, minor, patch }
    }

    /// The next patch version: `1.2.3` → `1.2.4` (a number at `u64::MAX` stays there).
    pub fn bump_patch(&self) -> Version {
        Version::new(self.major, self.minor, self.patch.saturating_add(1))
    }

    /// The next minor version: `1.2.3` → `1.3.0` (a number at `u64::MAX` stays there).
    pub fn bump_minor(&self) -> Version {
        Version::new(self.major, self.minor.saturating_add(1), 0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The error of parsing a [`Version`] from text that is not `x.y.z`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a valid semver: version folders are named x.y.z")]
pub struct InvalidVersion(pub String);

impl FromStr for Version {
    type Err = InvalidVersion;

    /// Parses exactly three dot-separated decimal numbers (ASCII digits only, each fitting
    /// in 64 bits). Leading zeros are accepted (`01.0.0` is `1.0.0`); nothing else is: no
    /// `v` prefix, sign, spaces, pre-release or build part.
    fn from_str(text: &str) -> Result<Version, InvalidVersion> {
        let invalid = || InvalidVersion(text.to_owned());
        let mut numbers = [0u64; 3];
        let mut parts = text.split('.');
        for number in &mut numbers {
            let part = parts.next().ok_or_else(invalid)?;
            if part.is_empty() || !part.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(invalid());
            }
            *number = part.parse().map_err(|_| invalid())?;
        }
        if parts.next().is_some() {
            return Err(invalid());
        }
        let [major, minor, patch] = numbers;
        Ok(Version { major, minor, patch })
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Version, D::Error> {
        struct VersionVisitor;

        impl serde::de::Visitor<'_> for VersionVisitor {
            type Value = Version;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a version string x.y.z")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Version, E> {
                text.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(VersionVisitor)
    }
}
