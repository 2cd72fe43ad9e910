//! Keeps the secrets of the running command from the programs it starts: the
//! process makes itself non-dumpable before any process script runs.

/// Makes this process non-dumpable (Linux `PR_SET_DUMPABLE` 0), once: its
/// `/proc/<pid>/environ`, `mem`, `cwd` and the like then belong to root, so a script
/// running as the same user cannot read the secrets the command was started with
/// (`LOCKGATE_TOKEN`, `DATABASE_URL`). Its command line stays readable by everyone,
/// as on every Unix: a password belongs in the environment or lockgate.toml, not in
/// `--db`. Called before any script starts; `lockgate` itself calls it at start-up.
pub fn harden_process() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(target_os = "linux")]
        // SAFETY: prctl with PR_SET_DUMPABLE takes one integer argument and touches no
        // memory of ours.
        unsafe {
            if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
                tracing::warn!(
                    "could not make the process non-dumpable: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    });
}
