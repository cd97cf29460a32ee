#![no_main]
//! Bearer tokens as an attacker sends them: service-account token
//! verification and bootstrap token parsing never panic, nothing but a
//! token the key signed verifies, and a bootstrap token Secret's fields
//! are read without trusting them (a token only matches its own secret).

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use shoal_machinery::bootstrap::{self, Token};
use shoal_pki::tokens::{ISSUER, Tokens};

fn tokens() -> &'static Tokens {
    static KEY: OnceLock<Tokens> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = rcgen::KeyPair::generate().expect("a key");
        Tokens::from_pem(&key.serialize_pem()).expect("the key reads back")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    assert!(tokens().verify(&text, &[ISSUER]).is_err(), "a token no one signed verified");
    if let Some((id, secret)) = bootstrap::parse(&text) {
        assert_eq!(id.len(), 6);
        assert_eq!(secret.len(), 16);
    }
    if let Ok(secret) = serde_json::from_slice::<serde_json::Value>(data)
        && let Some(t) = Token::from_secret(&secret)
    {
        assert!(!t.matches(&format!("{}x", t.secret)));
        assert!(t.matches(&t.secret.clone()));
        let _ = t.expired(0);
        assert!(t.user().groups.iter().all(|g| g.starts_with("system:bootstrappers") || g == "system:authenticated"));
        let jws = bootstrap::detached_jws(&t.id, &t.secret, &text);
        assert!(jws.contains(".."));
    }
});
