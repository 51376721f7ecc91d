//! What a failed request means: [`ErrorClass`], the one classification of
//! every answer; [`RequestError`], one failed request with its operation,
//! its AWS error code and its class; and [`ExecError`], what the executor
//! gives up with.

use std::fmt;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// An error the executor gives up on. What a caller decides on is
/// [`ExecError::is_transient`] (fail the record now, retry it later) against
/// permanent (dead-letter it); a request's failure also carries its
/// operation and AWS error code ([`ExecError::code`]), so a caller can
/// recognise a missing table or a throttled request without reading text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecError {
    /// A request the executor sent (or could not send) failed, and it stops
    /// there: its operation, error code and class are in the
    /// [`RequestError`].
    #[error("{0}")]
    Request(RequestError),
    /// A caller's own failure that retrying later can fix (its reads kept
    /// changing, a dependency is not there yet).
    #[error("{0}")]
    Transient(String),
    /// A caller's own failure that can never succeed (a malformed item, an
    /// invalid id).
    #[error("{0}")]
    Permanent(String),
}

impl ExecError {
    /// Whether retrying later can succeed: a transient failure fails its
    /// record now (Lambda retries it); a permanent one is dead-lettered.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Request(e) => e.is_transient(),
            Self::Transient(_) => true,
            Self::Permanent(_) => false,
        }
    }

    /// The failed request, if the error is one.
    pub fn request(&self) -> Option<&RequestError> {
        match self {
            Self::Request(e) => Some(e),
            Self::Transient(_) | Self::Permanent(_) => None,
        }
    }

    /// The AWS error code of the failed request's answer
    /// (`ResourceNotFoundException`, `ProvisionedThroughputExceededException`,
    /// ...), if a service answered.
    pub fn code(&self) -> Option<&str> {
        self.request().and_then(RequestError::code)
    }

    /// The operation that failed, if the error is a request's.
    pub fn op(&self) -> Option<Op> {
        self.request().map(RequestError::op)
    }

    /// The error's class: a request's own, [`ErrorClass::Retry`] for a
    /// caller's transient failure, [`ErrorClass::Permanent`] otherwise.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Request(e) => e.class(),
            Self::Transient(_) => ErrorClass::Retry,
            Self::Permanent(_) => ErrorClass::Permanent,
        }
    }
}

impl From<RequestError> for ExecError {
    fn from(e: RequestError) -> Self {
        Self::Request(e)
    }
}

/// An operation of an AWS service, as the executor names it in errors and
/// logs. The executor's own requests have their variant; any other request
/// (one a caller sends through [`super::Executor::retrying`] or
/// [`super::send_retrying`]) is [`Op::Other`] with its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    GetItem,
    PutItem,
    UpdateItem,
    DeleteItem,
    Query,
    Scan,
    BatchGetItem,
    BatchWriteItem,
    TransactWriteItems,
    /// Any other operation, by its name (`DescribeStream`, `ListShards`, ...).
    Other(&'static str),
}

impl Op {
    /// The operation's name, as the service spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::GetItem => "GetItem",
            Self::PutItem => "PutItem",
            Self::UpdateItem => "UpdateItem",
            Self::DeleteItem => "DeleteItem",
            Self::Query => "Query",
            Self::Scan => "Scan",
            Self::BatchGetItem => "BatchGetItem",
            Self::BatchWriteItem => "BatchWriteItem",
            Self::TransactWriteItems => "TransactWriteItems",
            Self::Other(name) => name,
        }
    }
}

impl From<&'static str> for Op {
    fn from(name: &'static str) -> Self {
        match name {
            "GetItem" => Self::GetItem,
            "PutItem" => Self::PutItem,
            "UpdateItem" => Self::UpdateItem,
            "DeleteItem" => Self::DeleteItem,
            "Query" => Self::Query,
            "Scan" => Self::Scan,
            "BatchGetItem" => Self::BatchGetItem,
            "BatchWriteItem" => Self::BatchWriteItem,
            "TransactWriteItems" => Self::TransactWriteItems,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One failed request: its operation, the AWS error code of its answer
/// (`None` without a service answer: a timeout, a dropped connection, a
/// request that could not be built, what a batch left unprocessed), its
/// [`ErrorClass`], and a one-line description (never an attribute's value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    op: Op,
    code: Option<String>,
    class: ErrorClass,
    attempts: u32,
    text: String,
}

impl RequestError {
    /// A failure described by `text` (shown as is).
    pub fn new(op: Op, code: Option<&str>, class: ErrorClass, text: impl Into<String>) -> Self {
        Self {
            op,
            code: code.map(str::to_owned),
            class,
            attempts: 1,
            text: text.into(),
        }
    }

    /// A failed request of any AWS service, classified by [`ErrorClass::of`]:
    /// `{op}: {code}: {message}` for a service's answer, `{op}: {the SDK's
    /// error chain}` otherwise.
    pub fn of<E, R>(op: Op, err: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        let class = ErrorClass::of(err);
        match err {
            SdkError::ServiceError(service) => {
                let e = service.err();
                let code = e.code().unwrap_or("Unknown");
                let text = format!("{op}: {code}: {}", e.message().unwrap_or(""));
                Self::new(op, e.code(), class, text)
            }
            other => {
                let text = format!(
                    "{op}: {}",
                    aws_smithy_types::error::display::DisplayErrorContext(other)
                );
                Self::new(op, None, class, text)
            }
        }
    }

    /// A request that could not be built (a permanent error).
    pub fn unbuildable(op: Op, e: impl fmt::Display) -> Self {
        Self::new(
            op,
            None,
            ErrorClass::Permanent,
            format!("could not build the request: {e}"),
        )
    }

    /// The same failure, described anew (`text` wraps the old description)
    /// after `attempts` requests.
    pub(super) fn after(mut self, attempts: u32, text: String) -> Self {
        self.attempts = attempts;
        self.text = text;
        self
    }

    pub fn op(&self) -> Op {
        self.op
    }

    /// The AWS error code of the answer, if the service answered.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    pub fn class(&self) -> ErrorClass {
        self.class
    }

    /// How many requests were sent before the executor stopped.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub fn is_transient(&self) -> bool {
        self.class.is_transient()
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for RequestError {}

/// What an error answer means for the request that got it. The one
/// classification of the executor: every retry path
/// ([`super::Executor::transact`], batch writes and reads,
/// [`super::Executor::conditional`], [`super::send_retrying`] and
/// [`may_succeed_later`]) goes through [`ErrorClass::of`] (and a
/// cancelled transaction through [`ErrorClass::of_cancellation`]).
///
/// | answer | class |
/// |---|---|
/// | `ConditionalCheckFailedException`, cancellation reason `ConditionalCheckFailed` | [`ErrorClass::ConditionFailed`] |
/// | `IdempotentParameterMismatchException`, `TransactionInProgressException` | [`ErrorClass::PlanAgain`] |
/// | `ResourceNotFoundException`, `ValidationException`, `SerializationException`, `ItemCollectionSizeLimitExceededException`, `AccessDeniedException`, `UnrecognizedClientException`, `InvalidSignatureException`, `MissingAuthenticationTokenException`, `InvalidArgumentException`, `ExpiredIteratorException`, `TrimmedDataAccessException`, cancellation reason `ValidationError`, a request that cannot be built | [`ErrorClass::Permanent`] |
/// | anything else: throttling, 5xx, `TransactionConflict`, timeouts, dropped connections, unknown codes | [`ErrorClass::Retry`] |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// A failed condition: an answer, not a fault (retrying gives the same
    /// answer); the caller re-reads if it wants to.
    ConditionFailed,
    /// The same request again, after a pause, can succeed.
    Retry,
    /// The same request again cannot help, a new one can: read again, plan
    /// again (bounded), under the new plan's token. Only a transaction gets
    /// these answers; never a dead letter.
    PlanAgain,
    /// The request can never succeed.
    Permanent,
}

impl ErrorClass {
    /// The class of an AWS error code (`None`: no service answer, such as a
    /// timeout or a dropped connection).
    pub fn of_code(code: Option<&str>) -> Self {
        match code {
            Some("ConditionalCheckFailedException") => Self::ConditionFailed,
            Some("IdempotentParameterMismatchException" | "TransactionInProgressException") => {
                Self::PlanAgain
            }
            Some(
                "ResourceNotFoundException"
                | "ValidationException"
                | "SerializationException"
                | "ItemCollectionSizeLimitExceededException"
                | "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "MissingAuthenticationTokenException"
                | "InvalidArgumentException"
                | "ExpiredIteratorException"
                | "TrimmedDataAccessException",
            ) => Self::Permanent,
            _ => Self::Retry,
        }
    }

    /// The class of a failed request of any AWS service.
    pub fn of<E, R>(err: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        match err {
            SdkError::ServiceError(service) => {
                Self::of_code(Some(service.err().code().unwrap_or("")))
            }
            SdkError::ConstructionFailure(_) => Self::Permanent,
            _ => Self::Retry,
        }
    }

    /// The class of a cancelled transaction, from its cancellation reasons
    /// (one per action, `None` for an action that was fine): a failed
    /// condition anywhere is an answer; a `ValidationError` can never
    /// succeed; anything else (`TransactionConflict`, throttling) can.
    pub fn of_cancellation<'a>(reasons: impl IntoIterator<Item = &'a str>) -> Self {
        let mut class = Self::Retry;
        for reason in reasons {
            match reason {
                "ConditionalCheckFailed" => return Self::ConditionFailed,
                "ValidationError" => class = Self::Permanent,
                _ => {}
            }
        }
        class
    }

    /// Whether an executor that gives up with this class gives up for now
    /// only (`PlanAgain` outside a transaction is retried later;
    /// `ConditionFailed` is permanent for a request that should not have
    /// had one).
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Retry | Self::PlanAgain)
    }
}

/// Whether a failed request to any AWS service may succeed when sent again:
/// throttling, a 5xx, a timeout, a dropped connection, an unknown error code
/// ([`ErrorClass::Retry`]). A missing resource, a validation error, a denied
/// request or a failed condition will not.
pub fn may_succeed_later<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    ErrorClass::of(err) == ErrorClass::Retry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_classification_of_every_answer() {
        use ErrorClass as C;
        for (code, class) in [
            (Some("ConditionalCheckFailedException"), C::ConditionFailed),
            (Some("IdempotentParameterMismatchException"), C::PlanAgain),
            (Some("TransactionInProgressException"), C::PlanAgain),
            (Some("ResourceNotFoundException"), C::Permanent),
            (Some("ValidationException"), C::Permanent),
            (Some("SerializationException"), C::Permanent),
            (
                Some("ItemCollectionSizeLimitExceededException"),
                C::Permanent,
            ),
            (Some("AccessDeniedException"), C::Permanent),
            (Some("UnrecognizedClientException"), C::Permanent),
            (Some("InvalidSignatureException"), C::Permanent),
            (Some("MissingAuthenticationTokenException"), C::Permanent),
            (Some("InvalidArgumentException"), C::Permanent),
            (Some("ExpiredIteratorException"), C::Permanent),
            (Some("TrimmedDataAccessException"), C::Permanent),
            (Some("ProvisionedThroughputExceededException"), C::Retry),
            (Some("ThrottlingException"), C::Retry),
            (Some("RequestLimitExceeded"), C::Retry),
            (Some("InternalServerError"), C::Retry),
            (Some("TransactionConflictException"), C::Retry),
            (Some("SomethingNew"), C::Retry),
            (Some(""), C::Retry),
            (None, C::Retry),
        ] {
            assert_eq!(ErrorClass::of_code(code), class, "{code:?}");
        }
        // Planning again is never a dead letter.
        assert!(C::PlanAgain.is_transient() && C::Retry.is_transient());
        assert!(!C::Permanent.is_transient() && !C::ConditionFailed.is_transient());
    }

    #[test]
    fn a_cancelled_transaction_is_classified_by_its_reasons() {
        use ErrorClass as C;
        for (reasons, class) in [
            (vec!["None", "ConditionalCheckFailed"], C::ConditionFailed),
            (
                vec!["ValidationError", "ConditionalCheckFailed"],
                C::ConditionFailed,
            ),
            (vec!["None", "ValidationError"], C::Permanent),
            (vec!["TransactionConflict", "None"], C::Retry),
            (vec!["ThrottlingError"], C::Retry),
            (vec![], C::Retry),
        ] {
            assert_eq!(
                ErrorClass::of_cancellation(reasons.clone()),
                class,
                "{reasons:?}"
            );
        }
    }

    #[test]
    fn a_request_error_keeps_its_operation_code_and_class() {
        let e = RequestError::new(
            Op::Query,
            Some("ResourceNotFoundException"),
            ErrorClass::Permanent,
            "Query: ResourceNotFoundException: Requested resource not found",
        );
        assert_eq!(e.op(), Op::Query);
        assert_eq!(e.code(), Some("ResourceNotFoundException"));
        assert!(!e.is_transient());
        assert_eq!(
            e.to_string(),
            "Query: ResourceNotFoundException: Requested resource not found"
        );
        let gave_up = RequestError::new(Op::GetItem, None, ErrorClass::Retry, "x")
            .after(8, "gave up after 8 attempts: x".to_owned());
        assert_eq!((gave_up.attempts(), gave_up.is_transient()), (8, true));
        assert_eq!(Op::from("DescribeStream"), Op::Other("DescribeStream"));
        assert_eq!(Op::from("BatchGetItem"), Op::BatchGetItem);
        assert_eq!(Op::Other("ListShards").to_string(), "ListShards");
    }

    #[test]
    fn an_exec_error_says_transient_or_permanent_and_its_code() {
        let missing = RequestError::new(
            Op::GetItem,
            Some("ResourceNotFoundException"),
            ErrorClass::Permanent,
            "GetItem: ResourceNotFoundException: Requested resource not found",
        );
        let e = ExecError::from(missing);
        assert!(!e.is_transient());
        assert_eq!(e.code(), Some("ResourceNotFoundException"));
        assert_eq!(e.op(), Some(Op::GetItem));
        assert_eq!(
            e.to_string(),
            "GetItem: ResourceNotFoundException: Requested resource not found"
        );
        let plan_again = RequestError::new(
            Op::TransactWriteItems,
            Some("IdempotentParameterMismatchException"),
            ErrorClass::PlanAgain,
            "x",
        );
        assert!(ExecError::from(plan_again).is_transient());
        let own = ExecError::Transient("group g kept changing".to_owned());
        assert!(own.is_transient());
        assert_eq!((own.code(), own.class()), (None, ErrorClass::Retry));
        assert!(!ExecError::Permanent("bad".to_owned()).is_transient());
    }
}
