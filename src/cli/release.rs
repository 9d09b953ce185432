//! `cloudsync release …`: the publisher's side of agent updates (docs/updater.md).
//!
//! - `keygen --out KEYFILE`: a new Ed25519 key pair; KEYFILE (0600) holds the standard base64 of the
//!   32-byte private seed, `KEYFILE.pub` the public key — what `agent install --release-public-key`
//!   pins. The private key is never printed.
//! - `sign --key KEYFILE --binary F --version V [--out SIGFILE]`: the signature (base64) over the
//!   statement of version, size and SHA-256 (`cloudsync_api::release::signed_statement`); the
//!   version is signed so a signed old binary cannot be offered as a newer version.
//! - `publish --tenant-url … --tenant-id … --admin-upn … --admin-password-file - --version V
//!   --binary F (--signature B64 | --signature-file SIGFILE)`: uploads and publishes it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use sha2::Digest;
use zeroize::Zeroizing;

use cloudsync_agent::control::install::admin;
use cloudsync_agent::control::tenant_client::TenantConfig;
use cloudsync_agent::control::updater::publish::publish;
use cloudsync_api::release::{parse_version, signed_statement};

use super::install::Secrets;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// `cloudsync release …`.
#[derive(Debug, clap::Subcommand)]
pub enum ReleaseCommand {
    /// Make an Ed25519 signing key pair: KEYFILE (private, 0600) and KEYFILE.pub.
    Keygen {
        /// Where to write the private key (refused if it exists).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a binary for a version; prints the signature (base64) or writes it to --out.
    // `--version` names the release here, not this program's version.
    #[command(disable_version_flag = true)]
    Sign {
        /// The private key file from `release keygen`.
        #[arg(long)]
        key: PathBuf,
        /// The binary.
        #[arg(long)]
        binary: PathBuf,
        /// The version it is published as (SemVer; part of what is signed).
        #[arg(long)]
        version: String,
        /// Write the signature here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Upload and publish a signed binary on a tenant's release channel (Global Administrator).
    #[command(disable_version_flag = true)]
    Publish(Box<PublishArgs>),
}

/// Flags of `release publish`.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// The tenant's base URL.
    #[arg(long)]
    tenant_url: String,
    /// The tenant id (GUID) or its initial domain (names the token endpoint).
    #[arg(long)]
    tenant_id: String,
    /// The CA (PEM) that signs the tenant's certificate (else the system roots).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// A Global Administrator.
    #[arg(long)]
    admin_upn: String,
    /// Its password: a file's first line, or `-` for stdin.
    #[arg(long, value_name = "FILE|-")]
    admin_password_file: PathBuf,
    /// The version (SemVer).
    #[arg(long)]
    version: String,
    /// The binary.
    #[arg(long)]
    binary: PathBuf,
    /// The signature (base64), as `release sign` printed it.
    #[arg(
        long,
        conflicts_with = "signature_file",
        required_unless_present = "signature_file"
    )]
    signature: Option<String>,
    /// A file holding the signature.
    #[arg(long)]
    signature_file: Option<PathBuf>,
}

/// Runs the command.
pub fn run(cmd: ReleaseCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ReleaseCommand::Keygen { out } => keygen(&out),
        ReleaseCommand::Sign {
            key,
            binary,
            version,
            out,
        } => sign(&key, &binary, &version, out.as_deref()),
        ReleaseCommand::Publish(args) => publish_cmd(&args),
    }
}

fn write_new(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("while creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("while writing {}", path.display()))
}

fn pub_path(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::RngCore::fill_bytes(&mut rand::rng(), seed.as_mut_slice());
    let key = SigningKey::from_bytes(&seed);
    let public = B64.encode(key.verifying_key().as_bytes());
    write_new(
        out,
        &format!("{}\n", Zeroizing::new(B64.encode(*seed)).as_str()),
        0o600,
    )?;
    let pub_file = pub_path(out);
    write_new(&pub_file, &format!("{public}\n"), 0o644)?;
    println!(
        "Wrote the private key to {} (0600; keep it off agent hosts) and the public key to {}.",
        out.display(),
        pub_file.display()
    );
    println!("Public key (pin it with `agent install --release-public-key`): {public}");
    Ok(ExitCode::SUCCESS)
}

fn load_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("while reading the private key {}", path.display()))?,
    );
    let bytes = Zeroizing::new(B64.decode(text.trim()).ok().with_context(|| {
        format!(
            "{} is not a key from `release keygen` (base64)",
            path.display()
        )
    })?);
    let seed: [u8; 32] = bytes.as_slice().try_into().ok().with_context(|| {
        format!(
            "{} is not a key from `release keygen` (32 bytes)",
            path.display()
        )
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

fn sign(key: &Path, binary: &Path, version: &str, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let version = parse_version(version)
        .with_context(|| format!("version {version:?} is not a semantic version (e.g. 1.4.2)"))?;
    let key = load_key(key)?;
    let bytes =
        std::fs::read(binary).with_context(|| format!("while reading {}", binary.display()))?;
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    let signature = B64.encode(
        key.sign(&signed_statement(&version, bytes.len() as u64, &sha))
            .to_bytes(),
    );
    match out {
        Some(path) => {
            write_new(path, &format!("{signature}\n"), 0o644)?;
            println!(
                "Signed {} as {version} (sha256 {sha}, {} bytes); signature written to {}.",
                binary.display(),
                bytes.len(),
                path.display()
            );
        }
        None => println!("{signature}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn publish_cmd(a: &PublishArgs) -> anyhow::Result<ExitCode> {
    let version = parse_version(&a.version).with_context(|| {
        format!(
            "version {:?} is not a semantic version (e.g. 1.4.2)",
            a.version
        )
    })?;
    let signature = match (&a.signature, &a.signature_file) {
        (Some(s), _) => s.trim().to_owned(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("while reading the signature {}", f.display()))?
            .trim()
            .to_owned(),
        (None, None) => anyhow::bail!("give --signature or --signature-file"),
    };
    let bytes = std::fs::read(&a.binary)
        .with_context(|| format!("while reading {}", a.binary.display()))?;
    let password = Secrets::default().read(&a.admin_password_file, "the admin password")?;
    let tenant: TenantConfig = toml::from_str(&format!(
        "url = {:?}\ntenant_id = {:?}\ncredentials_file = \"/nonexistent\"\n{}",
        a.tenant_url,
        a.tenant_id,
        a.ca_file
            .as_ref()
            .map(|c| format!("ca_file = {:?}\n", c.display().to_string()))
            .unwrap_or_default()
    ))
    .context("while reading the tenant flags")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("while starting the runtime")?;
    let release = runtime.block_on(async {
        let session = admin::sign_in(&tenant, &a.admin_upn, &password)
            .await
            .context("while signing in to the tenant")?;
        publish(&session, &version, bytes, &signature)
            .await
            .context("while publishing the release")
    })?;
    let (sha, size) = release
        .binary
        .as_ref()
        .map(|b| (b.sha256.as_str(), b.size))
        .unwrap_or(("?", 0));
    println!(
        "Published cloudsync {version} (sha256 {sha}, {size} bytes); the release channel now offers {}.",
        release.version
    );
    Ok(ExitCode::SUCCESS)
}
