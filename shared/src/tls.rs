//! One crypto provider for every TLS connection a function makes: ring.
//!
//! The SDK's default HTTPS client and reqwest's default TLS both bring
//! rustls on aws-lc, about 1.2 MB of every binary (the size budget is
//! 8 MB). ring gives rustls the same TLS 1.2/1.3 suites, key exchanges and
//! signature checks the endpoints we call (AWS, OpenAI) need, in a fraction
//! of that. The SDK's client is told to use ring (`aws::https_client`);
//! reqwest is built without a provider and takes the process default set
//! here.

/// Makes ring the process's default rustls provider. Idempotent, and cheap
/// after the first call; called before any reqwest client is built.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing the same provider is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installing_twice_leaves_ring_as_the_default() {
        install_crypto_provider();
        install_crypto_provider();
        let provider = rustls::crypto::CryptoProvider::get_default().unwrap();
        assert!(!provider.cipher_suites.is_empty());
        assert!(
            provider
                .cipher_suites
                .iter()
                .any(|s| s.suite() == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
    }
}
