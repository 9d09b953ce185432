//! A real group managed service account on the lab DC (Samba 4.21+): the DC serves `msDS-ManagedPassword`
//! over LDAPS to a computer account among the gMSA's allowed principals and to no one else, the project's
//! decoder (`cloudsync_agent::account::gmsa_blob`) reads the blob the DC serves, and the decoded current
//! NT hash binds as the gMSA (NTLM over LDAP with Samba's `ldbsearch --pw-nt-hash`, a tool independent of
//! the project). The project's own NTLM client taking an NT hash is task E's; see docs/lab.md § gMSA.
//!
//! Expected values come from the DC (what it accepts) and from Samba's documented behaviour (the blob
//! is 256 password bytes; no error, just no attribute, for a principal that may not read it), never from
//! the decoder under test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use cloudsync_agent::account::gmsa;
use cloudsync_agent::account::gmsa_blob::ManagedPassword;
use cloudsync_agent::nt_hash::NtHash;
use cloudsync_agent::source::drsr::ntlm::Credentials;
use cloudsync_agent::source::drsr::{DrsrClient, DrsrSettings};
use cloudsync_agent::source::ldap::{BindCredential, DomainConfig, conn};
use common::lab::LabDc;

const GMSA: &str = "provAgentgMSA";

#[test]
fn dc_serves_the_gmsa_password_to_the_allowed_host_only_and_its_hash_logs_on() {
    let dc = LabDc::start();

    // A domain provisioned by Samba 4.21+ has a KDS root key usable at once (research §1); without it
    // the DC cannot derive any gMSA password.
    let keys = dc
        .samba_tool(&["domain", "kds", "root-key", "list"])
        .expect("samba-tool domain kds root-key list");
    assert!(
        keys.to_lowercase().contains("root key") || keys.contains("CN="),
        "the freshly provisioned lab domain has no KDS root key:\n{keys}"
    );

    let gmsa_dn = dc.create_gmsa(GMSA);
    let host = dc.create_computer("AGENTHOST1");
    let stranger = dc.create_computer("OTHERHOST1");

    // Before the host is allowed, the entry comes back without the attribute (no error).
    assert_eq!(
        dc.read_managed_password(&gmsa_dn, &host.dn, &host.password)
            .unwrap(),
        None,
        "{GMSA} served its password to {} before it was allowed",
        host.sam_account_name
    );

    dc.gmsa_allow(GMSA, &host.sam_account_name);
    let allowed = dc.gmsa_allowed(GMSA);
    assert!(
        allowed.contains(&host.sam_account_name) || allowed.contains(&host.name),
        "group-msa-membership show does not list {}:\n{allowed}",
        host.sam_account_name
    );

    let blob = dc
        .read_managed_password(&gmsa_dn, &host.dn, &host.password)
        .unwrap()
        .unwrap_or_else(|| {
            panic!(
                "the DC did not serve msDS-ManagedPassword to the allowed {}",
                host.sam_account_name
            )
        });
    // Header 16 bytes + 256 password bytes + NUL + the two 8-byte intervals (MS-ADTS 2.2.19).
    assert!(
        blob.len() >= 16 + 256 + 2 + 16,
        "blob of {} bytes",
        blob.len()
    );
    let password = ManagedPassword::decode(&blob).expect("decode the DC's blob");
    // samba-tool's default interval is 30 days; a new account's first change comes within it.
    assert!(
        password.next_change_in > Duration::ZERO
            && password.next_change_in <= Duration::from_secs(30 * 24 * 3600),
        "next change in {:?}",
        password.next_change_in
    );

    // Not to another computer, nor to a plain user (the attribute is simply absent), and not to the
    // allowed host over plain LDAP either (confidentiality needs an encrypted connection) — the first
    // two only, the third is the DC's rule and the fixture always uses LDAPS.
    assert_eq!(
        dc.read_managed_password(&gmsa_dn, &stranger.dn, &stranger.password)
            .unwrap(),
        None,
        "{GMSA} served its password to {}, which is not among its allowed principals",
        stranger.sam_account_name
    );
    assert_eq!(
        dc.read_managed_password(
            &gmsa_dn,
            &dc.user_dn(1),
            &common::lab::seeded_password("user00001")
        )
        .unwrap(),
        None,
        "{GMSA} served its password to user00001"
    );

    // The decoded current NT hash is the gMSA's password: the DC accepts it for an NTLM bind as
    // provAgentgMSA$ (the token it builds carries the gMSA's own SID), and refuses the same hash with one
    // bit flipped (rc 49, data 52e), so the check can fail.
    let sam = format!("{GMSA}$");
    let sid = dc.gmsa_sid(GMSA);
    let token = dc
        .ldap_bind_with_nt_hash(&sam, password.current.expose())
        .unwrap_or_else(|e| panic!("the decoded current NT hash does not bind as {sam}: {e}"));
    assert!(
        token.contains(&sid),
        "bound, but the token {token:?} lacks {sam}'s SID {sid}"
    );
    let mut wrong = *password.current.expose();
    wrong[0] ^= 1;
    let refused = dc.ldap_bind_with_nt_hash(&sam, &wrong);
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("data 52e")),
        "a wrong NT hash was not refused with 49/52e: {refused:?}"
    );

    // A second read serves the same current password (no change is due for days).
    let again = dc
        .read_managed_password(&gmsa_dn, &host.dn, &host.password)
        .unwrap()
        .expect("second read");
    assert_eq!(
        ManagedPassword::decode(&again).unwrap().current,
        password.current
    );
}

/// The agent's own NTLM clients authenticate as the gMSA with the hash decoded from the blob the DC
/// served — a password that never was a string: the LDAP client (NTLM over LDAPS; the DC's WhoAmI
/// names the gMSA) and the MS-DRSR client (once the gMSA holds the replication rights, a replication
/// whose user00001 hash is the NT hash of user00001's seeded password, computed here independently).
#[test]
fn the_agents_ldap_and_drsr_clients_authenticate_as_the_gmsa_with_the_blob_hash() {
    let dc = LabDc::start();
    let gmsa_dn = dc.create_gmsa(GMSA);
    let host = dc.create_computer("AGENTHOST2");
    dc.gmsa_allow(GMSA, &host.sam_account_name);
    let blob = dc
        .read_managed_password(&gmsa_dn, &host.dn, &host.password)
        .unwrap()
        .expect("the allowed host reads the blob");
    let oracle = ManagedPassword::decode(&blob).unwrap().current;
    let sam = format!("{GMSA}$");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // The agent's own reader (account::gmsa), as the computer account over LDAPS: the same password as
    // the fixture's ldapsearch read; refused with the fix for a host not allowed and over plain LDAP.
    let text = format!(
        "dns_name = {:?}\nurl = {:?}\nbind_dn = \"unused\"\npassword = \"unused\"\nca_file = {:?}\n",
        dc.dns_domain,
        dc.ldaps_url,
        dc.ca_file.display().to_string()
    );
    let ldaps: DomainConfig = toml::from_str(&text).unwrap();
    let secret = |p: &str| cloudsync_agent::secret::Secret::new(p.to_owned());
    let read = rt
        .block_on(gmsa::read(
            &ldaps,
            &host.dn,
            &secret(&host.password),
            &gmsa_dn,
        ))
        .expect("the agent reads the gMSA password as the allowed host");
    assert_eq!(read.current, oracle);
    let stranger = dc.create_computer("OTHERHOST2");
    let err = rt
        .block_on(gmsa::read(
            &ldaps,
            &stranger.dn,
            &secret(&stranger.password),
            &gmsa_dn,
        ))
        .unwrap_err();
    assert!(matches!(err, gmsa::GmsaError::NotAllowed { .. }), "{err:?}");
    assert!(
        err.to_string().contains("group-msa-membership add"),
        "{err}"
    );
    let mut plain = ldaps.clone();
    plain.url = format!("ldap://{}", dc.ip);
    let err = rt
        .block_on(gmsa::read(
            &plain,
            &host.dn,
            &secret(&host.password),
            &gmsa_dn,
        ))
        .unwrap_err();
    assert!(matches!(err, gmsa::GmsaError::NeedsTls { .. }), "{err:?}");
    let held = gmsa::Held::new(read, std::time::Instant::now());
    let hash = held.hashes(std::time::Instant::now())[0].clone();

    // LDAP: NTLM over LDAPS as DOMAIN\provAgentgMSA$ with the hash only.
    let text = format!(
        "dns_name = {:?}\nurl = {:?}\nbind_dn = {:?}\npassword = \"unused\"\nca_file = {:?}\nbind_method = \"ntlm\"\n",
        dc.dns_domain,
        dc.ldaps_url,
        format!("{}\\{sam}", dc.netbios_domain),
        dc.ca_file.display().to_string()
    );
    let cfg: DomainConfig = toml::from_str(&text).unwrap();
    let who = rt.block_on(async {
        let mut c = conn::connect_with(&cfg, &BindCredential::NtHash(hash.clone()))
            .await
            .expect("NTLM bind as the gMSA with its blob hash");
        let (exop, _) = c
            .op()
            .extended(ldap3::exop::WhoAmI)
            .await
            .unwrap()
            .success()
            .unwrap();
        let who: ldap3::exop::WhoAmIResp = exop.parse();
        c.close().await;
        who.authzid
    });
    assert!(
        who.to_ascii_lowercase().contains(&sam.to_ascii_lowercase()),
        "WhoAmI after the NTLM bind: {who:?}"
    );

    // MS-DRSR: without the rights the gMSA is refused; with them it replicates password hashes.
    let settings = DrsrSettings {
        dc: dc.ip.to_string(),
        port: None,
        nc_dn: dc.base_dn.clone(),
        credentials: Credentials {
            user: sam.clone(),
            domain: dc.netbios_domain.clone(),
            nt_hash: hash,
        },
        timeout: Duration::from_secs(30),
        page_objects: 400,
        partial_attribute_set: true,
    };
    let refused = rt
        .block_on(DrsrClient::replicate(&settings, None))
        .unwrap_err();
    assert!(refused.is_access_denied(), "{refused:?}");
    for right in ["--car=get-changes", "--car=get-changes-all"] {
        let o = std::process::Command::new("samba-tool")
            .args(["dsacl", "set", "-s"])
            .arg(&dc.smb_conf)
            .arg(format!("--objectdn={}", dc.base_dn))
            .args([right, "--action=allow"])
            .arg(format!("--trusteedn={gmsa_dn}"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
    }
    let run = rt
        .block_on(DrsrClient::replicate(&settings, None))
        .expect("replication as the gMSA");
    let user1 = run
        .hashes
        .iter()
        .find(|h| h.dn.starts_with("CN=user00001,"))
        .expect("user00001 replicated");
    assert_eq!(
        user1.nt_hash,
        NtHash::from_password(&common::lab::seeded_password("user00001"))
    );
}
