//! `poolguard token`: mint a new API token and the config block that accepts it.
//!
//! The token is shown once, to the person who runs the command; only its SHA-256 goes into
//! `config.toml`, so the config can be read by more people than may use the API.

use rand::RngCore;
use sha2::{Digest, Sha256};

use poolguard_config::Role;

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token name must be 1-64 printable characters without quotes or control characters")]
    BadName,
}

/// A freshly minted token.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The secret, 64 hex characters (32 random bytes). Shown once.
    pub token: String,
    /// Lower-case hex SHA-256 of `token`, as `[[api.tokens]] sha256` expects.
    pub sha256: String,
    /// The `[[api.tokens]]` TOML block to paste into config.toml.
    pub toml: String,
}

/// Makes a random token for `name` with `role`.
pub fn generate(name: &str, role: Role) -> Result<NewToken, TokenError> {
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(|c| c.is_control()) {
        return Err(TokenError::BadName);
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let sha256 = hex::encode(Sha256::digest(token.as_bytes()));
    let role_text = match role {
        Role::Viewer => "viewer",
        Role::Investigator => "investigator",
        Role::Feeds => "feeds",
        Role::Admin => "admin",
    };
    let toml = format!(
        "[[api.tokens]]\nname = {}\nrole = \"{role_text}\"\nsha256 = \"{sha256}\"\n",
        toml::Value::String(name.to_string())
    );
    Ok(NewToken {
        token,
        sha256,
        toml,
    })
}

/// The CLI's output: the token on the first line, a blank line, then the TOML block.
pub fn cli_output(name: &str, role: Role) -> Result<String, TokenError> {
    let t = generate(name, role)?;
    Ok(format!("{}\n\n{}", t.token, t.toml))
}

#[cfg(test)]
mod tests {
    use super::*;
    use poolguard_config::Config;

    #[test]
    fn generated_block_parses_and_verifies() {
        let out = cli_output("张伟 \"ops\"", Role::Viewer).unwrap();
        let token = out.lines().next().unwrap();
        assert_eq!(token.len(), 64);
        let block = out.split_once("\n\n").unwrap().1;
        let cfg = Config::from_toml(
            block,
            std::path::Path::new("t.toml"),
            std::path::Path::new("."),
        )
        .unwrap();
        assert_eq!(cfg.api.tokens[0].name, "张伟 \"ops\"");
        let tokens = crate::Tokens::from_config(&cfg.api.tokens);
        assert_eq!(tokens.verify(token).unwrap().role, Role::Viewer);
        assert!(tokens.verify("nope").is_none());
    }
}
