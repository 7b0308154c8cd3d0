//! Finding the distribution tools a test starts for real (Unbound, validators, ...).
//!
//! A missing tool fails the test with the Debian package that provides it: a test never skips
//! or passes silently because the machine lacks something. `scripts/install-test-deps.sh`
//! (run by the README's test command and `.ci/run`) installs them all.

use std::path::PathBuf;

/// The path of `command` (searched on `PATH`, then in `/usr/sbin` and `/sbin`, where daemons
/// live), or a panic naming `package`.
pub fn require_tool(command: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs =
        std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")]);
    for dir in dirs {
        let candidate = dir.join(command);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{command}` is not installed: install the Debian package `{package}` \
         (scripts/install-test-deps.sh installs every test dependency)"
    );
}

/// Checks that `python3 -c "import module"` works, or panics naming the PyPI `package`.
pub fn require_python_module(module: &str, package: &str) {
    let python = require_tool("python3", "python3");
    let ok = std::process::Command::new(python)
        .args(["-c", &format!("import {module}")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "Python module `{module}` is missing: `python3 -m pip install {package}` \
         (scripts/install-test-deps.sh installs every test dependency)"
    );
}
