//! The one error type of the store, and how object_store's errors map onto it.

/// Errors of the store. [`StoreError::exit_code`] maps them to ARCHITECTURE.md's codes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A bad store URL, configuration or key (exit 2): the message says what is wrong and
    /// what a good one looks like.
    #[error("{0}")]
    Input(String),
    /// The object does not exist.
    #[error("no object {key} in store {store}; list the store to see what it holds")]
    NotFound {
        /// The key asked for.
        key: String,
        /// The store's URL.
        store: String,
    },
    /// The store is unreachable, refused the credentials, or failed some other I/O
    /// (exit 1); the message says what to check.
    #[error("{0}")]
    Unavailable(String),
}

impl StoreError {
    /// The process exit code for this error: 2 for bad input, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            StoreError::Input(_) => 2,
            StoreError::NotFound { .. } | StoreError::Unavailable(_) => 1,
        }
    }
}

/// What to check, for the two kinds of store, appended to an `Unavailable` message.
pub(crate) fn advice(s3: bool) -> &'static str {
    if s3 {
        "check the endpoint (lockgate.toml [snapshots.s3] endpoint or AWS_ENDPOINT_URL), that the server \
         is up and the bucket exists, and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY \
         or lockgate.toml [snapshots.s3])"
    } else {
        "check that the folder exists, is writable and has free space"
    }
}

/// Maps an object_store error met while doing `what` (a phrase such as "reading
/// customer1/x.tsv") on the store at `url`. `key` is set where a missing object is an
/// answer the caller should see as [`StoreError::NotFound`].
pub(crate) fn map(err: object_store::Error, url: &str, s3: bool, what: &str, key: Option<&str>) -> StoreError {
    if let (object_store::Error::NotFound { .. }, Some(key)) = (&err, key) {
        return StoreError::NotFound {
            key: key.to_string(),
            store: url.to_string(),
        };
    }
    let text = condense(&one_line(&err));
    // object_store maps 401/403 to these two variants for single-object requests, but a
    // listing's refusal arrives as a generic error whose text holds the status.
    let refused = matches!(
        err,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) || (s3 && (text.contains("403 Forbidden") || text.contains("401 Unauthorized")));
    if refused {
        return StoreError::Unavailable(format!(
            "store {url} refused the credentials while {what} ({text}); check AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY (or lockgate.toml [snapshots.s3] access_key_id and secret_access_key) \
             and that they may use this bucket"
        ));
    }
    StoreError::Unavailable(format!("store {url} failed while {what}: {text}; {}", advice(s3)))
}

/// An S3 error document (`<?xml …><Error><Code>…</Code><Message>…</Message>…</Error>`)
/// in a message shortened to `Code: Message`; the request and host ids help nobody.
fn condense(text: &str) -> String {
    let Some(start) = text.find("<?xml").or_else(|| text.find("<Error>")) else {
        return text.to_string();
    };
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let from = text[start..].find(&open)? + start + open.len();
        let to = text[from..].find(&format!("</{name}>"))? + from;
        Some(text[from..to].to_string())
    };
    let end = text[start..]
        .find("</Error>")
        .map_or(text.len(), |i| start + i + "</Error>".len());
    let summary = match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => return text.to_string(),
    };
    format!("{}{summary}{}", &text[..start], &text[end..])
}

/// The error and its sources on one line: object_store's own message often hides the
/// part a user needs (connection refused, the HTTP status) in a source.
pub(crate) fn one_line(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text.replace('\n', " ")
}
