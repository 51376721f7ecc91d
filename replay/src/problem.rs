//! What the CLI says when a command fails: one or two lines a person can act
//! on, for the mistakes everyone makes first (a missing table, an endpoint
//! that is not running, no region, no or wrong credentials, access denied,
//! throttling), instead of the SDK's error dump. The dump is still there
//! with `-v`.
//!
//! The SDK's errors reach the commands as text (the executor and the
//! commands keep `DisplayErrorContext`'s rendering), so a problem is
//! recognised by the error codes and connector messages in that text: AWS
//! error codes are stable names.

/// Where the CLI sends its requests, and which setting said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: Option<String>,
    /// The environment variable that gave `url`.
    pub source: Option<&'static str>,
    pub region: Option<String>,
}

impl Endpoint {
    /// From the environment, as aws-config reads it.
    pub fn from_env() -> Self {
        let var = |name: &'static str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| (v, name))
        };
        let found = var("AWS_ENDPOINT_URL_DYNAMODB").or_else(|| var("AWS_ENDPOINT_URL"));
        Self {
            url: found.as_ref().map(|(v, _)| v.clone()),
            source: found.map(|(_, name)| name),
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .map(|(v, _)| v),
        }
    }

    /// `http://127.0.0.1:4566 (AWS_ENDPOINT_URL)`, or `AWS (region us-east-1)`.
    fn shown(&self) -> String {
        match (&self.url, self.source) {
            (Some(url), Some(source)) => format!("{url} (from {source})"),
            (Some(url), None) => url.clone(),
            _ => match &self.region {
                Some(r) => format!("AWS in {r}"),
                None => "AWS".to_owned(),
            },
        }
    }

    /// True for an endpoint on this machine (the local one of `scripts/endpoint`).
    fn is_loopback(&self) -> bool {
        self.url.as_deref().is_some_and(|u| {
            let host = u.split("://").nth(1).unwrap_or(u);
            host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]")
        })
    }
}

/// A problem the CLI can explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The table does not exist at the endpoint.
    MissingTable,
    /// A Kinesis stream does not exist.
    MissingStream,
    /// The endpoint did not answer (refused, unknown host, timed out).
    Unreachable {
        why: &'static str,
    },
    NoRegion,
    NoCredentials,
    /// The credentials were not accepted (unknown key, bad signature, expired).
    BadCredentials {
        code: String,
    },
    AccessDenied {
        code: String,
    },
    /// Throttled until the retries ran out.
    Throttled {
        code: String,
    },
}

/// Error codes that mean the credentials themselves were refused.
const BAD_CREDENTIALS: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "ExpiredToken",
    "MissingAuthenticationTokenException",
];
const ACCESS_DENIED: &[&str] = &["AccessDeniedException", "AccessDenied"];
const THROTTLED: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "TooManyRequestsException",
];

impl Problem {
    /// Recognises a problem by an executor error's AWS error code, without
    /// reading its text (an error the executor gives up with is its last
    /// answer's: a throttling code means the retries ran out).
    pub fn of_code(code: &str) -> Option<Self> {
        let code_s = code.to_owned();
        if BAD_CREDENTIALS.contains(&code) {
            Some(Self::BadCredentials { code: code_s })
        } else if ACCESS_DENIED.contains(&code) {
            Some(Self::AccessDenied { code: code_s })
        } else if THROTTLED.contains(&code) {
            Some(Self::Throttled { code: code_s })
        } else if code == "ResourceNotFoundException" {
            Some(Self::MissingTable)
        } else {
            None
        }
    }

    /// The problem of a failed command: by the code of an executor error in
    /// its chain ([`Problem::of_code`]), else from its full text.
    fn of(err: &anyhow::Error, full: &str) -> Option<Self> {
        err.chain()
            .find_map(|e| e.downcast_ref::<streamfold_shared::ExecError>())
            .and_then(streamfold_shared::ExecError::code)
            .and_then(Self::of_code)
            .or_else(|| Self::recognise(full))
    }

    /// Recognises a problem in an error's full text (its chain, and the
    /// SDK's rendering).
    pub fn recognise(text: &str) -> Option<Self> {
        let has = |needle: &str| text.contains(needle);
        let code_in = |codes: &[&str]| codes.iter().find(|c| has(c)).map(|c| (*c).to_owned());
        if has("no AWS region is configured") {
            return Some(Self::NoRegion);
        }
        if has("no credentials found in chain")
            || has("CredentialsNotLoaded")
            || has("the credential provider was not enabled")
        {
            return Some(Self::NoCredentials);
        }
        if let Some(code) = code_in(BAD_CREDENTIALS) {
            return Some(Self::BadCredentials { code });
        }
        if let Some(code) = code_in(ACCESS_DENIED) {
            return Some(Self::AccessDenied { code });
        }
        if has("ResourceNotFoundException") {
            return Some(
                if has("Stream ") && has("not found") || has("Kinesis stream") {
                    Self::MissingStream
                } else {
                    Self::MissingTable
                },
            );
        }
        if has("dispatch failure") || has("DispatchFailure") || has("ConnectorError") {
            let why = if has("Connection refused") || has("ConnectionRefused") {
                "connection refused"
            } else if has("dns error") || has("failed to lookup address") {
                "the host name does not resolve"
            } else if has("timed out") || has("Timeout") || has("timeout") {
                "no answer in time"
            } else {
                "the connection failed"
            };
            return Some(Self::Unreachable { why });
        }
        if has("TimeoutError") {
            return Some(Self::Unreachable {
                why: "no answer in time",
            });
        }
        if let Some(code) = code_in(THROTTLED) {
            return Some(Self::Throttled { code });
        }
        None
    }

    /// The lines that explain it: what is wrong, then what to do.
    pub fn explain(&self, table: &str, endpoint: &Endpoint) -> Vec<String> {
        let at = endpoint.shown();
        match self {
            Self::MissingTable => vec![
                format!("error: table {table} does not exist at {at}"),
                "  create it with `streamfold table create` (--table or STREAMFOLD_TABLE names another table)".to_owned(),
            ],
            Self::MissingStream => vec![
                format!("error: the Kinesis stream does not exist at {at}"),
                "  check --kinesis-stream / STREAMFOLD_AGENT_STREAM; `streamfold publish` creates a stream it is given".to_owned(),
            ],
            Self::Unreachable { why } => {
                let mut lines = vec![format!("error: cannot reach the endpoint {at}: {why}")];
                if endpoint.is_loopback() {
                    lines.push(
                        "  start the local endpoint with `scripts/endpoint start` (then `eval \"$(scripts/endpoint env)\"`)"
                            .to_owned(),
                    );
                } else if endpoint.url.is_some() {
                    lines.push(format!(
                        "  check the URL in {}, or unset it to talk to AWS",
                        endpoint.source.unwrap_or("the endpoint setting")
                    ));
                } else {
                    lines.push("  check the network, or set AWS_ENDPOINT_URL for a local endpoint".to_owned());
                }
                lines
            }
            Self::NoRegion => vec![
                "error: no AWS region is configured".to_owned(),
                "  set AWS_REGION (any region works for the local endpoint, e.g. AWS_REGION=us-east-1)".to_owned(),
            ],
            Self::NoCredentials => vec![
                format!("error: no AWS credentials found for {at}"),
                "  set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (any values work for the local endpoint: `eval \"$(scripts/endpoint env)\"`)".to_owned(),
            ],
            Self::BadCredentials { code } => vec![
                format!("error: {at} refused the credentials ({code})"),
                "  check AWS_PROFILE / AWS_ACCESS_KEY_ID, and refresh a session token that may have expired".to_owned(),
            ],
            Self::AccessDenied { code } => vec![
                format!("error: access denied on table {table} at {at} ({code})"),
                "  the credentials' IAM policy lacks a permission this command needs (docs/deploy.md lists them)".to_owned(),
            ],
            Self::Throttled { code } => vec![
                format!("error: requests to table {table} were throttled until the retries ran out ({code})"),
                "  try again later, or raise the table's capacity (on demand tables: a hot key or the account limit)".to_owned(),
            ],
        }
    }
}

/// What the CLI prints for a failed command: the explained lines when the
/// problem is known; else the error without the SDK's debug dump, cut to a
/// few lines. With `verbose`, the whole error follows.
pub fn report(err: &anyhow::Error, table: &str, endpoint: &Endpoint, verbose: bool) -> String {
    let full = format!("{err:#}");
    let problem = Problem::of(err, &full);
    let mut out = String::new();
    match &problem {
        Some(problem) => {
            for line in problem.explain(table, endpoint) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        None => {
            out.push_str(&format!("error: {}\n", short(&full)));
        }
    }
    if verbose {
        out.push_str(&format!("detail: {full}\n"));
    } else if full.len() > short(&full).len() || problem.is_some() {
        out.push_str("  (-v shows the details)\n");
    }
    out
}

/// The error's text without the SDK's trailing debug rendering (`(ServiceError(…))`)
/// and repeats, at most two lines of at most 300 characters.
fn short(text: &str) -> String {
    let mut s = text;
    for marker in [
        " (ServiceError(",
        " (DispatchFailure(",
        " (TimeoutError(",
        " (ResponseError(",
        " (ConstructionFailure(",
    ] {
        if let Some(i) = s.find(marker) {
            s = &s[..i];
        }
    }
    let lines: Vec<String> = s
        .lines()
        .take(2)
        .map(|l| {
            if l.chars().count() > 300 {
                let cut: String = l.chars().take(300).collect();
                format!("{cut}…")
            } else {
                l.to_owned()
            }
        })
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_executor_error_is_recognised_by_its_code_not_its_text() {
        use streamfold_shared::executor::{ErrorClass, Op, RequestError};
        let failed = |code: &str, class| {
            let e = RequestError::new(Op::Query, Some(code), class, "Query: (text without a code)");
            anyhow::Error::new(streamfold_shared::ExecError::from(e)).context("reading the table")
        };
        let of = |e: &anyhow::Error| Problem::of(e, &format!("{e:#}"));
        let missing = failed("ResourceNotFoundException", ErrorClass::Permanent);
        assert_eq!(of(&missing), Some(Problem::MissingTable));
        let throttled = failed("ThrottlingException", ErrorClass::Retry);
        let code = "ThrottlingException".to_owned();
        assert_eq!(of(&throttled), Some(Problem::Throttled { code }));
        assert_eq!(of(&failed("SomethingNew", ErrorClass::Retry)), None);
    }

    fn local() -> Endpoint {
        Endpoint {
            url: Some("http://127.0.0.1:4566".to_owned()),
            source: Some("AWS_ENDPOINT_URL"),
            region: Some("us-east-1".to_owned()),
        }
    }

    #[test]
    fn the_first_mistakes_are_recognised_from_the_sdk_texts() {
        let cases = [
            (
                "service error: ResourceNotFoundException: Requested resource not found (ServiceError(ServiceError { raw: Response { headers } }))",
                Problem::MissingTable,
            ),
            (
                "gave up after 8 attempts: GetItem: ResourceNotFoundException: Requested resource not found",
                Problem::MissingTable,
            ),
            (
                "Kinesis stream x: service error: ResourceNotFoundException: Stream x under account 1 not found.",
                Problem::MissingStream,
            ),
            (
                "dispatch failure: io error: client error (Connect): tcp connect error: Connection refused (os error 111) (DispatchFailure(DispatchFailure { source: ConnectorError { kind: Io } }))",
                Problem::Unreachable {
                    why: "connection refused",
                },
            ),
            (
                "no AWS region is configured: set AWS_REGION",
                Problem::NoRegion,
            ),
            (
                "dispatch failure: other: the credential provider was not enabled: no credentials found in chain",
                Problem::NoCredentials,
            ),
            (
                "Query: UnrecognizedClientException: The security token included in the request is invalid.",
                Problem::BadCredentials {
                    code: "UnrecognizedClientException".to_owned(),
                },
            ),
            (
                "Query: AccessDeniedException: User: arn:aws:iam::1:user/x is not authorized to perform: dynamodb:Query",
                Problem::AccessDenied {
                    code: "AccessDeniedException".to_owned(),
                },
            ),
            (
                "gave up after 8 attempts: Query: ProvisionedThroughputExceededException: The level of configured provisioned throughput for the table was exceeded.",
                Problem::Throttled {
                    code: "ProvisionedThroughputExceededException".to_owned(),
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Problem::recognise(text), Some(want), "{text}");
        }
        assert_eq!(
            Problem::recognise("deleting table t loses every item: pass --yes"),
            None
        );
    }

    #[test]
    fn explanations_name_the_table_the_endpoint_and_the_fix_in_two_lines() {
        let lines = Problem::MissingTable.explain("nope", &local());
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].contains("nope")
                && lines[0].contains("http://127.0.0.1:4566 (from AWS_ENDPOINT_URL)")
        );
        assert!(lines[1].contains("streamfold table create"));
        let lines = Problem::Unreachable {
            why: "connection refused",
        }
        .explain("t", &local());
        assert!(lines[1].contains("scripts/endpoint start"));
        let remote = Endpoint {
            url: Some("https://ddb.example:443".to_owned()),
            ..local()
        };
        let lines = Problem::Unreachable {
            why: "connection refused",
        }
        .explain("t", &remote);
        assert!(!lines[1].contains("scripts/endpoint") && lines[1].contains("AWS_ENDPOINT_URL"));
    }

    #[test]
    fn an_unknown_error_loses_the_sdk_dump_and_keeps_two_lines() {
        let err = anyhow::anyhow!(
            "Scan: SomethingNew: odd (ServiceError(ServiceError {{ raw: Response {{ }} }}))\nsecond\nthird"
        );
        let text = report(&err, "t", &local(), false);
        assert!(
            text.starts_with("error: Scan: SomethingNew: odd\n"),
            "{text}"
        );
        assert!(
            !text.contains("ServiceError(") && text.lines().count() <= 3,
            "{text}"
        );
        let verbose = report(&err, "t", &local(), true);
        assert!(verbose.contains("ServiceError("));
    }
}
