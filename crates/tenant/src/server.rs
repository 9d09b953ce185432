//! The HTTP(S) server: the router (its routes are the rows of [`super::routes::ROUTES`]), middleware
//! (URI and body limits, faults, the drain of bodies answered early), binding and the address file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use cloudsync_api::MAX_BODY_BYTES;

use super::error::ApiError;
use super::identity::{Seed, SeedUser, random_password};
use super::state::{SharedState, TenantOptions, TenantState};
use super::store::{Store, StoreError};
use super::throttle::ThrottleSettings;
use super::tls::{self, TlsError, TlsMaterial};

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The state store could not be opened.
    #[error("state store: {0}")]
    Store(#[from] StoreError),
    /// The seed file is unusable.
    #[error(transparent)]
    Seed(#[from] super::identity::SeedError),
    /// TLS material could not be created or read.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The state directory (or something in it) is accessible by group or others.
    #[error("refusing to start: {0}")]
    UnsafeState(#[from] cloudsync_private_fs::CheckError),
    /// Binding or serving failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Everything `cloudsync tenant serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Plain HTTP instead of HTTPS.
    pub http: bool,
    /// State directory (sled database and TLS files).
    pub state_dir: PathBuf,
    /// Seed file.
    pub seed: Option<PathBuf>,
    /// Write the base URL here after binding.
    pub address_file: Option<PathBuf>,
    /// Write the CA certificate (PEM) here.
    pub ca_out: Option<PathBuf>,
    /// Fixed tunables.
    pub options: TenantOptions,
    /// Initial throttle and fault settings.
    pub throttle: ThrottleSettings,
}

/// A started tenant.
#[derive(Debug)]
pub struct RunningTenant {
    /// The bound address.
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT` (or `http://…`).
    pub url: String,
    /// The CA certificate PEM (HTTPS only).
    pub ca_pem: Option<String>,
    /// The shared state (for in-process use, e.g. benchmarks).
    pub state: SharedState,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningTenant {
    /// Stops accepting, lets in-flight requests finish for up to `grace`, waits for the server
    /// (at most [`STOP_DEADLINE`] more), then flushes and closes the store on a blocking thread
    /// within [`CLOSE_DEADLINE`]. Every wait is bounded: a sled flush that never completes is
    /// logged and left behind instead of hanging the process in the database's `Drop` on a
    /// runtime thread. Call this before the state directory goes away: a `RunningTenant` that is
    /// only dropped leaves its server task, and the database, alive until the runtime is dropped
    /// (`cargo bench --bench push` hung at exit that way, two runtime threads parked in sled's
    /// `TreeInner::drop` flush of databases whose directories the bench had already removed).
    pub async fn shutdown(self, grace: Duration) -> Result<(), ServeError> {
        self.handle.graceful_shutdown(Some(grace));
        let RunningTenant { state, task, .. } = self;
        let served = match tokio::time::timeout(grace + STOP_DEADLINE, task).await {
            Ok(Ok(result)) => result.map_err(|source| ServeError::Io {
                context: "serving".into(),
                source,
            }),
            Ok(Err(join)) => Err(ServeError::Io {
                context: "serving".into(),
                source: std::io::Error::other(join),
            }),
            Err(_) => {
                tracing::warn!(deadline = ?(grace + STOP_DEADLINE), "The server did not stop in time; closing the store anyway.");
                Ok(())
            }
        };
        close_store(state).await;
        served
    }

    /// Waits until the server stops.
    pub async fn wait(self) -> Result<(), ServeError> {
        let io_err = |source| ServeError::Io {
            context: "serving".into(),
            source,
        };
        match self.task.await {
            Ok(result) => result.map_err(io_err),
            Err(join) => Err(io_err(std::io::Error::other(join))),
        }
    }
}

/// How long the server may take to stop after the grace period.
pub const STOP_DEADLINE: Duration = Duration::from_secs(5);
/// How long the final flush and close of the store may take.
pub const CLOSE_DEADLINE: Duration = Duration::from_secs(10);

/// Flushes the store and drops this handle of the state on a blocking thread, bounded by
/// [`CLOSE_DEADLINE`]. The database closes here when this is the last handle; a request task
/// still holding one closes it when it ends.
async fn close_store(state: SharedState) {
    let closing = tokio::task::spawn_blocking(move || {
        let flushed = state.store.flush_blocking();
        drop(state);
        flushed
    });
    match tokio::time::timeout(CLOSE_DEADLINE, closing).await {
        Ok(Ok(Ok(()))) => tracing::info!("State flushed and closed."),
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "The final flush of the state failed."),
        Ok(Err(e)) => tracing::error!(error = %e, "The final flush of the state did not run."),
        Err(_) => {
            tracing::error!(deadline = ?CLOSE_DEADLINE, "The final flush of the state did not finish in time; exiting without it (every answered write was flushed before its answer).")
        }
    }
}

/// Builds the router over a state: the rows of [`super::routes::ROUTES`] (each behind its guard),
/// the 404 and 405 fallbacks, then the layers every request passes: the body drain, the body
/// limit, the URI limits and the injected faults (outermost first).
pub fn router(state: SharedState) -> Router {
    super::routes::build(&state)
        .fallback(|| async { ApiError::NotFound("No such route.".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("The method is not allowed on this resource.".into())
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), faults))
        .layer(axum::middleware::from_fn(super::route_guard::uri_limits))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(super::body_drain::drain))
        .with_state(state)
}

/// Injected latency, 503s and dropped connections on `/api/*` and `/v1.0/*`.
async fn faults(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !(path.starts_with("/api/") || path.starts_with("/v1.0/")) {
        return next.run(req).await;
    }
    let settings = state.throttle.settings();
    if settings.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(settings.latency_ms)).await;
    }
    if settings.error_rate > 0.0 && rand::random::<f64>() < settings.error_rate {
        tracing::info!(path = %path, "Answering 503 (injected fault).");
        return ApiError::ServiceUnavailable.into_response();
    }
    let response = next.run(req).await;
    if settings.drop_rate > 0.0 && rand::random::<f64>() < settings.drop_rate {
        // Promise more body than is sent: hyper aborts the connection mid-response, so the client
        // sees a transport error although the handler's effects (e.g. an applied batch) are durable.
        let (mut parts, _) = response.into_parts();
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(1_048_576u32));
        tracing::info!("Dropping the connection (injected fault).");
        return Response::from_parts(parts, axum::body::Body::from("{"));
    }
    response
}

/// Opens the state, applies the seed, and builds the shared state.
pub fn build_state(cfg: &ServeConfig) -> Result<(SharedState, Option<PathBuf>), ServeError> {
    cloudsync_private_fs::create_private_dir(&cfg.state_dir).map_err(|source| ServeError::Io {
        context: format!("creating {}", cfg.state_dir.display()),
        source,
    })?;
    // The state holds salted password hashes and the signing key: refuse it when not private.
    cloudsync_private_fs::check_private(&cfg.state_dir)?;
    let store = Store::open(&cfg.state_dir.join("db"))?;
    let (seed, generated) = match &cfg.seed {
        Some(path) => (Seed::load(path)?, None),
        None => {
            let mut seed: Seed =
                toml::from_str("").map_err(|source| super::identity::SeedError::Parse {
                    path: "(default)".into(),
                    source,
                })?;
            let password = random_password();
            let path = cfg.state_dir.join("admin-password");
            tls::write_file(&path, &format!("{password}\n"), true)?;
            seed.users.push(SeedUser {
                user_principal_name: format!("admin@{}", seed.domain),
                password,
                roles: vec![cloudsync_api::auth::Role::GlobalAdministrator],
            });
            (seed, Some(path))
        }
    };
    let mut state = TenantState::new(store, &seed, cfg.options.clone(), cfg.throttle.clone())?;
    state.release_dir = Some(cfg.state_dir.join("releases"));
    state.store.flush_blocking()?;
    Ok((Arc::new(state), generated))
}

/// Binds, writes the address file (and CA), and starts serving in the background.
pub async fn start(cfg: ServeConfig) -> Result<RunningTenant, ServeError> {
    let mut cfg = cfg;
    cfg.options.scheme = if cfg.http { "http" } else { "https" }.to_owned();
    let (state, generated) = build_state(&cfg)?;
    let io_err = |context: &str| {
        let context = context.to_owned();
        move |source| ServeError::Io { context, source }
    };
    let listener = std::net::TcpListener::bind(cfg.listen).map_err(io_err("binding"))?;
    listener.set_nonblocking(true).map_err(io_err("binding"))?;
    let addr = listener.local_addr().map_err(io_err("binding"))?;
    let url = format!("{}://{addr}", cfg.options.scheme);
    let handle = axum_server::Handle::new();
    // Connection info gives handlers the source address smart lockout counts by.
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let (task, ca_pem) = if cfg.http {
        let server = axum_server::from_tcp(listener)
            .map_err(io_err("serving"))?
            .handle(handle.clone());
        (tokio::spawn(server.serve(app)), None)
    } else {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let TlsMaterial {
            ca_pem,
            chain_pem,
            key_pem,
        } = tls::load_or_create(&cfg.state_dir.join("tls"))?;
        let rustls = axum_server::tls_rustls::RustlsConfig::from_pem(
            chain_pem.into_bytes(),
            key_pem.into_bytes(),
        )
        .await
        .map_err(io_err("loading TLS certificate"))?;
        let server = axum_server::tls_rustls::from_tcp_rustls(listener, rustls)
            .map_err(io_err("serving"))?
            .handle(handle.clone());
        (tokio::spawn(server.serve(app)), Some(ca_pem))
    };
    if let (Some(path), Some(pem)) = (&cfg.ca_out, &ca_pem) {
        tls::write_file(path, pem, false)?;
    }
    if let Some(path) = &cfg.address_file {
        // Write then rename, so a reader polling for the file never sees it half-written.
        let tmp = path.with_extension("tmp");
        tls::write_file(&tmp, &format!("{url}\n"), false)?;
        std::fs::rename(&tmp, path).map_err(io_err("writing the address file"))?;
    }
    tracing::info!(
        url = %url,
        tenant_id = %state.identity.tenant_id,
        domain = %state.identity.domain,
        environment = %state.identity.environment,
        admin_password_file = ?generated,
        "Local tenant listening."
    );
    if cfg.http {
        tracing::warn!(
            "Serving plain HTTP: the portal's session cookie cannot be Secure and travels in clear text; use --http on loopback and for tests only."
        );
    }
    Ok(RunningTenant {
        addr,
        url,
        ca_pem,
        state,
        handle,
        task,
    })
}
