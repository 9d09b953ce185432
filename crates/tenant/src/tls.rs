//! The tenant's TLS material: a private CA and a CA:FALSE server certificate it signs.
//!
//! Files under `<state>/tls/`: `ca.pem`, `server.pem` (leaf + CA), `server.key` (0600). The CA key is
//! dropped after signing, so nothing else can ever be issued under this CA. The files are
//! generated on first start and reused afterwards, so clients that trust the CA (`--ca-out` writes a
//! copy) keep working across restarts. The server certificate's SANs are `localhost`, `127.0.0.1`
//! and `::1`. (webpki rejects a self-signed CA certificate used as the server's own certificate,
//! hence the two-level chain.)

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Errors creating or reading TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// PEM-encoded TLS material.
#[derive(Clone)]
pub struct TlsMaterial {
    /// The CA certificate clients should trust.
    pub ca_pem: String,
    /// The server certificate followed by the CA certificate (the chain).
    pub chain_pem: String,
    /// The server's private key.
    pub key_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial").finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `contents` to `path`, readable by the owner only when `secret`.
pub fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), TlsError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(contents.as_bytes()).map_err(io(path))
}

/// Generates a fresh CA and server certificate.
pub fn generate() -> Result<TlsMaterial, TlsError> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "cloudsync local tenant CA");
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])?;
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = leaf.signed_by(&key, &issuer)?;
    Ok(TlsMaterial {
        ca_pem: ca_cert.pem(),
        chain_pem: format!("{}{}", cert.pem(), ca_cert.pem()),
        key_pem: key.serialize_pem(),
    })
}

/// Loads the material from `dir`, generating and saving it on first use.
pub fn load_or_create(dir: &Path) -> Result<TlsMaterial, TlsError> {
    let ca = dir.join("ca.pem");
    let chain = dir.join("server.pem");
    let key = dir.join("server.key");
    if ca.exists() && chain.exists() && key.exists() {
        return Ok(TlsMaterial {
            ca_pem: std::fs::read_to_string(&ca).map_err(io(&ca))?,
            chain_pem: std::fs::read_to_string(&chain).map_err(io(&chain))?,
            key_pem: std::fs::read_to_string(&key).map_err(io(&key))?,
        });
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let material = generate()?;
    write_file(&ca, &material.ca_pem, false)?;
    write_file(&chain, &material.chain_pem, false)?;
    write_file(&key, &material.key_pem, true)?;
    Ok(material)
}
