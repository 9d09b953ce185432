//! Negative checks against the tenant fixture: [`Req`] describes a request as data, [`Case`] says
//! which OData error it must get, and [`TenantFixture::check`] runs a table of cases, naming the one
//! that fails. [`assert_odata`] checks a response already sent.
//!
//! An OData error here is a JSON body with non-empty `error.code` and `error.message`.

use serde_json::Value;

use super::TenantFixture;

/// Asserts an OData error body with the given status.
pub async fn assert_odata(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.expect("a response body");
    odata_error("response", got, &text, status)
}

/// Checks that `text`, answered with status `got`, is an OData error with status `want`: a JSON
/// body with a non-empty `error.code` and `error.message`. `name` labels every failure.
fn odata_error(name: &str, got: u16, text: &str, want: u16) -> Value {
    assert_eq!(got, want, "{name}: unexpected status; body: {text}");
    let body: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{name}: not an OData JSON error body ({e}): {text}"));
    assert!(
        body["error"]["code"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{name}: no error.code in {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{name}: no error.message in {body}"
    );
    body
}

/// The body of a [`Req`].
#[derive(Clone, Debug)]
enum ReqBody {
    Empty,
    Json(Value),
    Raw {
        content_type: &'static str,
        text: String,
    },
}

/// A request to the tenant described as data, so that negative checks can be written as tables
/// ([`Case`]) and sent by one function ([`TenantFixture::send`]).
#[derive(Clone, Debug)]
pub struct Req {
    method: reqwest::Method,
    path: String,
    token: Option<String>,
    headers: Vec<(String, String)>,
    body: ReqBody,
}

impl Req {
    /// A request without token or body; `path` is relative to the tenant or an absolute URL.
    pub fn new(method: reqwest::Method, path: impl Into<String>) -> Req {
        Req {
            method,
            path: path.into(),
            token: None,
            headers: Vec::new(),
            body: ReqBody::Empty,
        }
    }

    /// A GET of `path`.
    pub fn get(path: impl Into<String>) -> Req {
        Req::new(reqwest::Method::GET, path)
    }

    /// A POST to `path`.
    pub fn post(path: impl Into<String>) -> Req {
        Req::new(reqwest::Method::POST, path)
    }

    /// A PUT to `path`.
    pub fn put(path: impl Into<String>) -> Req {
        Req::new(reqwest::Method::PUT, path)
    }

    /// Sends `token` as the bearer token.
    pub fn auth(mut self, token: &str) -> Req {
        self.token = Some(token.to_owned());
        self
    }

    /// Adds a request header (e.g. a portal session `cookie`, an `origin`).
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends `body` as JSON.
    pub fn json(mut self, body: &Value) -> Req {
        self.body = ReqBody::Json(body.clone());
        self
    }

    /// Sends `text` verbatim as `application/json` (for malformed and oversized bodies).
    pub fn raw_json(mut self, text: impl Into<String>) -> Req {
        self.body = ReqBody::Raw {
            content_type: "application/json",
            text: text.into(),
        };
        self
    }

    /// Sends `text` verbatim with `content_type` (e.g. a release binary).
    pub fn raw(mut self, content_type: &'static str, text: impl Into<String>) -> Req {
        self.body = ReqBody::Raw {
            content_type,
            text: text.into(),
        };
        self
    }

    /// The same request to another path (or absolute URL).
    pub fn with_path(mut self, path: impl Into<String>) -> Req {
        self.path = path.into();
        self
    }

    /// The method.
    pub fn method(&self) -> &reqwest::Method {
        &self.method
    }

    /// The path (or absolute URL) as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Sends `text` verbatim as `application/x-www-form-urlencoded`.
    pub fn form(mut self, text: impl Into<String>) -> Req {
        self.body = ReqBody::Raw {
            content_type: "application/x-www-form-urlencoded",
            text: text.into(),
        };
        self
    }
}

/// One negative check: `req` must be answered with an OData error of `status`, and the error
/// message must contain every string in `message_has`. `name` labels the case in failure messages.
#[derive(Clone, Debug)]
pub struct Case {
    name: String,
    req: Req,
    status: u16,
    message_has: Vec<String>,
}

/// A [`Case`]: `req` must fail with `status`.
pub fn case(name: impl Into<String>, req: Req, status: u16) -> Case {
    Case {
        name: name.into(),
        req,
        status,
        message_has: Vec::new(),
    }
}

impl Case {
    /// The error message must also contain `needle` (may be given several times).
    pub fn message_has(mut self, needle: &str) -> Case {
        self.message_has.push(needle.to_owned());
        self
    }
}

impl TenantFixture {
    /// Builds `req` on `client` (for a client other than [`TenantFixture::client`], e.g. one
    /// that does not follow redirects).
    pub fn build(&self, client: &reqwest::Client, req: &Req) -> reqwest::RequestBuilder {
        let url = if req.path.starts_with("http") {
            req.path.clone()
        } else {
            self.at(&req.path)
        };
        let mut b = client.request(req.method.clone(), url);
        if let Some(token) = &req.token {
            b = b.bearer_auth(token);
        }
        for (name, value) in &req.headers {
            b = b.header(name.as_str(), value.as_str());
        }
        match &req.body {
            ReqBody::Empty => b,
            ReqBody::Json(v) => b.json(v),
            ReqBody::Raw { content_type, text } => {
                b.header("content-type", *content_type).body(text.clone())
            }
        }
    }

    /// Sends `req` and returns the response (any status).
    pub async fn send(&self, req: &Req) -> reqwest::Response {
        self.build(&self.client, req)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{} {}: {e}", req.method, req.path))
    }

    /// Sends `req`; its status, or the transport error's chain as text.
    pub async fn send_result(&self, req: &Req) -> Result<u16, String> {
        match self.build(&self.client, req).send().await {
            Ok(r) => Ok(r.status().as_u16()),
            Err(e) => {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text.push_str(&format!(": {s}"));
                    source = s.source();
                }
                Err(text)
            }
        }
    }

    /// Sends `req` and asserts an OData error with `status`; returns the error body. Failures name
    /// `name`, the method and the path.
    pub async fn expect_error(&self, name: &str, req: &Req, status: u16) -> Value {
        let r = self.send(req).await;
        let got = r.status().as_u16();
        let text = r.text().await.expect("a response body");
        odata_error(
            &format!("{name} ({} {})", req.method, req.path),
            got,
            &text,
            status,
        )
    }

    /// Runs every case in order, each with [`TenantFixture::expect_error`] and its message check.
    pub async fn check(&self, cases: impl IntoIterator<Item = Case>) {
        for c in cases {
            let body = self.expect_error(&c.name, &c.req, c.status).await;
            for needle in &c.message_has {
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains(needle.as_str()),
                    "{}: error.message lacks {needle:?}: {body}",
                    c.name
                );
            }
        }
    }
}
