//! One module per console page; each reads the API and renders one template.

pub mod assets;
pub mod clients;
pub mod feeds;
pub mod hits;
pub mod incidents;
pub mod overview;
pub mod quarantine;
pub mod signin;

use std::collections::HashMap;

/// A submitted form's fields.
pub type Fields = HashMap<String, String>;

/// A field's value, trimmed; empty when absent.
pub fn field<'a>(f: &'a Fields, k: &str) -> &'a str {
    f.get(k).map(|s| s.trim()).unwrap_or("")
}

/// Where to go back to after a form: a local path only, never another host (`//evil`).
pub fn local_path(p: &str) -> String {
    if p.starts_with('/') && !p.starts_with("//") && !p.starts_with("/\\") {
        p.to_string()
    } else {
        "/".to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(super::local_path("/hits?x=1"), "/hits?x=1");
        assert_eq!(super::local_path("//evil.example/"), "/");
        assert_eq!(super::local_path("https://evil.example/"), "/");
    }
}
