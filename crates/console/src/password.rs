//! Username/password accounts (`[[console.users]]`): salted PBKDF2-HMAC-SHA256.
//!
//! The config stores `pbkdf2-sha256$<iterations>$<salt>$<hash>`; `poolguard console-user`
//! makes one with [`DEFAULT_ITERATIONS`] (OWASP's 2023 figure for this PRF), so each guess at
//! a leaked hash costs as much as a sign-in does. The comparison is constant-time.

use poolguard_config::PasswordHash;
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Iterations for new hashes.
pub const DEFAULT_ITERATIONS: u32 = 600_000;

fn derive(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
    out
}

/// Whether `password` matches the stored hash.
pub fn verify(password: &str, stored: &PasswordHash) -> bool {
    let got = derive(password, &stored.salt, stored.iterations);
    bool::from(got.as_slice().ct_eq(&stored.hash))
}

/// A new stored hash for `password` with a random 16-byte salt.
pub fn hash(password: &str, iterations: u32) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let h = derive(password, &salt, iterations);
    format!(
        "pbkdf2-sha256${iterations}${}${}",
        hex::encode(salt),
        hex::encode(h)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse", 1000);
        let parsed = PasswordHash::parse(&stored).expect("our own format parses");
        assert!(verify("correct horse", &parsed));
        assert!(!verify("correct horsf", &parsed));
    }
}
