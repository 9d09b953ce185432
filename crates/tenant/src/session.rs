//! Portal sign-in sessions: server-side session records, the session cookie and the CSRF token.
//!
//! Enters: a signed-in admin (from the portal's sign-in form), the request's `Cookie` header and a
//! form's `csrf` field, the time (an input). Leaves: the `Set-Cookie` values and the session an
//! admin page or form acts for.
//!
//! - The session id is 32 bytes from `rand`'s thread RNG (a CSPRNG; 256 bits, above OWASP's 64 of
//!   entropy), base64url in the cookie. The server keeps only its SHA-256, so a memory dump does
//!   not hold usable cookies, and looks records up by that digest.
//! - Each session carries its own 32-byte CSRF token, put in a hidden `csrf` field of every portal
//!   form and compared in constant time (`subtle`) on every POST. `SameSite=Strict` on the cookie
//!   is the second layer; the portal's handlers also refuse a cross-origin `Origin` header.
//! - Timeouts: a session ends after [`IDLE_TIMEOUT`] without a request or [`ABSOLUTE_TIMEOUT`]
//!   after sign-in, whichever comes first; sign-out ends it at once. Sessions live in memory only,
//!   so a restart signs everyone out. At most [`MAX_SESSIONS`] are kept (expired first, then the
//!   oldest are dropped).
//! - Cookie: over HTTPS `__Host-cloudsync_portal=<id>; HttpOnly; Secure; SameSite=Strict; Path=/;
//!   Max-Age=<absolute timeout>` (the `__Host-` prefix makes browsers refuse it unless it is
//!   Secure, host-only and `Path=/`). Under `--http` browsers would drop a `Secure` cookie on a
//!   non-localhost address, so it is `cloudsync_portal=<id>; HttpOnly; SameSite=Strict; Path=/`:
//!   cleartext, for loopback tests only, and the tenant warns about it at start.
//!
//! Cookies are built and parsed with the `cookie` crate (the one axum-extra and Rocket use), not by
//! hand.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, SameSite};
use rand::RngCore;
use sha2::Digest;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use cloudsync_api::auth::Role;

/// A session ends after this long without a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// A session ends this long after sign-in, however busy.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(8 * 60 * 60);
/// At most this many sessions are kept.
pub const MAX_SESSIONS: usize = 1024;

/// The cookie's name over HTTPS.
pub const COOKIE_SECURE: &str = "__Host-cloudsync_portal";
/// The cookie's name under `--http`.
pub const COOKIE_PLAIN: &str = "cloudsync_portal";

/// A signed-in admin's session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The admin's object id.
    pub user_id: Uuid,
    /// The admin's UPN.
    pub upn: String,
    /// The admin's roles.
    pub roles: Vec<Role>,
    /// The session's CSRF token (base64url), for the hidden form field.
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

impl Session {
    /// Whether `token` (a form's `csrf` field) is this session's token, compared in constant time.
    pub fn csrf_matches(&self, token: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes()))
    }

    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_seen) >= IDLE_TIMEOUT
            || now.saturating_duration_since(self.created) >= ABSOLUTE_TIMEOUT
    }
}

/// The session table and the cookie settings.
#[derive(Debug)]
pub struct Sessions {
    secure: bool,
    table: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(id: &str) -> [u8; 32] {
    sha2::Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// An empty table; `secure` when the tenant serves HTTPS.
    pub fn new(secure: bool) -> Sessions {
        Sessions {
            secure,
            table: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cookie's name.
    pub fn cookie_name(&self) -> &'static str {
        if self.secure {
            COOKIE_SECURE
        } else {
            COOKIE_PLAIN
        }
    }

    /// Starts a session; returns it and the `Set-Cookie` value.
    pub fn create(
        &self,
        user_id: Uuid,
        upn: &str,
        roles: Vec<Role>,
        now: Instant,
    ) -> (Session, String) {
        let id = random_token();
        let session = Session {
            user_id,
            upn: upn.to_owned(),
            roles,
            csrf: random_token(),
            created: now,
            last_seen: now,
        };
        let mut table = self.lock();
        if table.len() >= MAX_SESSIONS {
            table.retain(|_, s| !s.expired(now));
            while table.len() >= MAX_SESSIONS {
                let oldest = table
                    .iter()
                    .min_by_key(|(_, s)| s.last_seen)
                    .map(|(k, _)| *k);
                match oldest {
                    Some(k) => table.remove(&k),
                    None => break,
                };
            }
        }
        table.insert(digest(&id), session.clone());
        (session, self.set_cookie(&id, ABSOLUTE_TIMEOUT))
    }

    fn set_cookie(&self, value: &str, max_age: Duration) -> String {
        let mut c = Cookie::new(self.cookie_name(), value.to_owned());
        c.set_http_only(true);
        c.set_same_site(SameSite::Strict);
        c.set_path("/");
        c.set_secure(self.secure);
        c.set_max_age(time::Duration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        ));
        c.to_string()
    }

    /// The session id in `headers`' cookies, if any.
    fn id_from(&self, headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|c| c.name() == self.cookie_name())
            .map(|c| c.value().to_owned())
    }

    /// The live session the request's cookie names; touches its idle timer. Expired ones are removed.
    pub fn get(&self, headers: &HeaderMap, now: Instant) -> Option<Session> {
        let key = digest(&self.id_from(headers)?);
        let mut table = self.lock();
        let session = table.get_mut(&key)?;
        if session.expired(now) {
            table.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Ends the request's session; returns the `Set-Cookie` value that clears the cookie.
    pub fn end(&self, headers: &HeaderMap) -> String {
        if let Some(id) = self.id_from(headers) {
            self.lock().remove(&digest(&id));
        }
        self.set_cookie("", Duration::ZERO)
    }

    /// Whether TLS is on (so the cookie is `Secure`).
    pub fn secure(&self) -> bool {
        self.secure
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn cookie_header(set_cookie: &str) -> HeaderMap {
        let pair = set_cookie.split(';').next().unwrap().to_owned();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&pair).unwrap());
        h
    }

    #[test]
    fn cookie_attributes_follow_the_transport() {
        let t0 = Instant::now();
        let (_, tls) = Sessions::new(true).create(Uuid::nil(), "a@b", vec![], t0);
        assert!(tls.starts_with("__Host-cloudsync_portal="), "{tls}");
        for attr in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/",
            "Max-Age=28800",
        ] {
            assert!(tls.split("; ").any(|a| a == attr), "{attr} missing: {tls}");
        }
        let (_, plain) = Sessions::new(false).create(Uuid::nil(), "a@b", vec![], t0);
        assert!(plain.starts_with("cloudsync_portal="), "{plain}");
        assert!(!plain.contains("Secure"), "{plain}");
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        // 32 random bytes, base64url: 43 characters.
        let id = plain.split(';').next().unwrap().split_once('=').unwrap().1;
        assert_eq!(id.len(), 43);
    }

    #[test]
    fn sessions_expire_when_idle_or_old_and_end_on_sign_out() {
        let s = Sessions::new(true);
        let t0 = Instant::now();
        let (session, set) = s.create(Uuid::nil(), "a@b", vec![], t0);
        let h = cookie_header(&set);
        assert!(
            s.get(&h, t0 + IDLE_TIMEOUT - Duration::from_secs(1))
                .is_some()
        );
        // Idle: 15 min after the last request.
        assert!(s.get(&h, t0 + 2 * IDLE_TIMEOUT).is_none());
        // Absolute: busy, but 8 h after sign-in.
        let (_, set) = s.create(Uuid::nil(), "a@b", vec![], t0);
        let h = cookie_header(&set);
        let mut t = t0;
        while t + IDLE_TIMEOUT / 2 < t0 + ABSOLUTE_TIMEOUT {
            t += IDLE_TIMEOUT / 2;
            assert!(s.get(&h, t).is_some());
        }
        assert!(s.get(&h, t0 + ABSOLUTE_TIMEOUT).is_none());
        // Sign-out.
        let (_, set) = s.create(Uuid::nil(), "a@b", vec![], t0);
        let h = cookie_header(&set);
        let cleared = s.end(&h);
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
        assert!(s.get(&h, t0).is_none());
        // CSRF compare; an unknown cookie finds nothing.
        assert!(session.csrf_matches(&session.csrf.clone()));
        assert!(!session.csrf_matches("") && !session.csrf_matches("x"));
        assert!(
            s.get(&cookie_header("__Host-cloudsync_portal=forged"), t0)
                .is_none()
        );
    }

    #[test]
    fn the_table_is_bounded() {
        let s = Sessions::new(false);
        let t0 = Instant::now();
        for i in 0..(MAX_SESSIONS + 10) {
            s.create(
                Uuid::nil(),
                "a@b",
                vec![],
                t0 + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(s.lock().len(), MAX_SESSIONS);
    }
}
