//! `cloudsync phs …`: password hash sync diagnostics for admins.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use cloudsync_agent::nt_hash::NtHash;
use cloudsync_agent::phs::OrgIdHash;
use cloudsync_agent::phs::fips::{self, FipsSettings};
use cloudsync_agent::source::drsr::ntlm::Credentials;
use cloudsync_agent::source::drsr::{DrsrClient, DrsrSettings};
use cloudsync_api::orgid::{ITERATIONS, MAX_ITERATIONS, MAX_SALT_LEN, SALT_LEN};

/// Password hash sync commands.
#[derive(Debug, Subcommand)]
pub enum PhsCommand {
    /// Read a password on stdin and print its OrgId hash string (`v1;PPH1_MD4,…;`).
    Compute(ComputeArgs),
    /// Read a password on stdin and check it against an OrgId hash string (exit 0 match, 2 mismatch).
    Verify(VerifyArgs),
    /// Replicate the domain over MS-DRSR as the sync account (password on stdin) and report what
    /// password hash sync would get: objects, decrypted passwords, skipped accounts. Prints no hash.
    Check(CheckArgs),
}

/// Arguments of `phs check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The domain controller (host name or IP address).
    #[arg(long)]
    pub dc: String,
    /// The domain NC, e.g. `DC=corp,DC=example,DC=test`.
    #[arg(long)]
    pub base_dn: String,
    /// The sync account's sAMAccountName.
    #[arg(long)]
    pub user: String,
    /// The NetBIOS domain name.
    #[arg(long)]
    pub domain: String,
    /// The DRSUAPI port (default: ask the endpoint mapper on 135).
    #[arg(long)]
    pub port: Option<u16>,
    /// Replicate every attribute instead of the partial attribute set.
    #[arg(long)]
    pub all_attributes: bool,
    /// Allow MD4/MD5/RC4 under FIPS policy (like `fips.allow_md5_for_password_hash_sync = true`).
    #[arg(long)]
    pub allow_md5_for_password_hash_sync: bool,
}

/// Arguments of `phs compute`.
#[derive(Debug, Args)]
pub struct ComputeArgs {
    /// Salt as hex (default: 10 random bytes, as for a real change).
    #[arg(long)]
    pub salt: Option<String>,
    /// PBKDF2 iteration count.
    #[arg(long, default_value_t = ITERATIONS)]
    pub iterations: u32,
    /// Allow MD4 under FIPS policy (like `fips.allow_md5_for_password_hash_sync = true`).
    #[arg(long)]
    pub allow_md5_for_password_hash_sync: bool,
}

/// Arguments of `phs verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The OrgId hash string.
    pub org_id_hash: String,
    /// Allow MD4 under FIPS policy (like `fips.allow_md5_for_password_hash_sync = true`).
    #[arg(long)]
    pub allow_md5_for_password_hash_sync: bool,
}

/// Runs a `phs` command.
pub fn run(cmd: PhsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PhsCommand::Compute(args) => {
            check_fips(args.allow_md5_for_password_hash_sync)?;
            let salt = match &args.salt {
                Some(hex_salt) => hex::decode(hex_salt).context("while reading --salt as hex")?,
                None => rand::random::<[u8; SALT_LEN]>().to_vec(),
            };
            if salt.is_empty() || salt.len() > MAX_SALT_LEN {
                bail!("--salt must be 1 to {MAX_SALT_LEN} bytes");
            }
            if !(1..=MAX_ITERATIONS).contains(&args.iterations) {
                bail!("--iterations must be between 1 and {MAX_ITERATIONS}");
            }
            let nt = read_password_nt_hash()?;
            println!("{}", OrgIdHash::compute(&nt, &salt, args.iterations));
            Ok(ExitCode::SUCCESS)
        }
        PhsCommand::Check(args) => check(args),
        PhsCommand::Verify(args) => {
            check_fips(args.allow_md5_for_password_hash_sync)?;
            let hash: OrgIdHash = args
                .org_id_hash
                .parse()
                .context("while parsing the OrgId hash string")?;
            let nt = read_password_nt_hash()?;
            if hash.matches(&nt) {
                println!("match");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("mismatch");
                Ok(ExitCode::from(2))
            }
        }
    }
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    check_fips(args.allow_md5_for_password_hash_sync)?;
    let mut password = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut password)
        .context("while reading the sync account's password from stdin")?;
    let trimmed = Zeroizing::new(password.trim_end_matches(['\r', '\n']).to_owned());
    let settings = DrsrSettings {
        dc: args.dc,
        port: args.port,
        nc_dn: args.base_dn,
        credentials: Credentials {
            user: args.user,
            domain: args.domain,
            nt_hash: cloudsync_agent::nt_hash::NtHash::from_password(&trimmed),
        },
        timeout: std::time::Duration::from_secs(60),
        page_objects: 1000,
        partial_attribute_set: !args.all_attributes,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("while starting the runtime")?;
    let run = runtime
        .block_on(DrsrClient::replicate(&settings, None))
        .context("while replicating the domain over MS-DRSR")?;
    let disabled = run
        .hashes
        .iter()
        .filter(|h| h.disabled == Some(true))
        .count();
    println!(
        "replicated {} objects in {} pages ({:.2} s)",
        run.objects,
        run.pages,
        run.elapsed.as_secs_f64()
    );
    println!(
        "passwords: {} decrypted ({disabled} of disabled accounts), {} not synced (krbtgt, computers, \
         trusts), {} undecryptable",
        run.hashes.len(),
        run.not_users,
        run.undecryptable
    );
    println!(
        "cookie: {} bytes, {} cursors",
        run.cookie.to_bytes().len(),
        run.cookie.cursors.len()
    );
    Ok(if run.undecryptable == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn check_fips(allow: bool) -> anyhow::Result<()> {
    let settings = FipsSettings {
        enforce: false,
        allow_md5_for_password_hash_sync: allow,
    };
    fips::check_password_hash_sync_on_host(&settings)?;
    Ok(())
}

/// Reads stdin, drops one trailing newline (`\n` or `\r\n`), and returns the NT hash.
fn read_password_nt_hash() -> anyhow::Result<NtHash> {
    let mut buf = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut buf)
        .context("while reading the password from stdin")?;
    let password = buf
        .strip_suffix("\r\n")
        .or_else(|| buf.strip_suffix('\n'))
        .unwrap_or(&buf);
    Ok(NtHash::from_password(password))
}
