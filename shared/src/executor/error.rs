//! What a failed request means: [`ExecError`], what the executor gives up
//! with, and [`ErrorClass`], the one classification of every answer.

use std::fmt;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// An error the executor gives up on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecError {
    /// Throttling, 5xx, timeouts, conflicts: retrying later can succeed.
    #[error("{0}")]
    Transient(String),
    /// The request can never succeed (validation, item too large, ...).
    #[error("{0}")]
    Permanent(String),
}

impl ExecError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ExecError::Transient(_))
    }
}

pub(super) fn build_err(e: impl fmt::Display) -> ExecError {
    ExecError::Permanent(format!("could not build the request: {e}"))
}

/// What an error answer means for the request that got it. The one
/// classification of the executor: every retry path ([`Executor::transact`],
/// batch writes and reads, [`Executor::conditional`], [`send_retrying`] and
/// [`may_succeed_later`]) goes through [`ErrorClass::of`].
///
/// | answer | class |
/// |---|---|
/// | `ConditionalCheckFailedException`, cancellation reason `ConditionalCheckFailed` | [`ErrorClass::ConditionFailed`] |
/// | `IdempotentParameterMismatchException`, `TransactionInProgressException` | [`ErrorClass::PlanAgain`] |
/// | `ResourceNotFoundException`, `ValidationException`, `SerializationException`, `ItemCollectionSizeLimitExceededException`, `AccessDeniedException`, `UnrecognizedClientException`, `InvalidSignatureException`, `MissingAuthenticationTokenException`, `InvalidArgumentException`, `ExpiredIteratorException`, `TrimmedDataAccessException`, a request that cannot be built | [`ErrorClass::Permanent`] |
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

    /// What an executor gives up with for this class (`ConditionFailed` is
    /// permanent for a request that should not have had one; `PlanAgain`
    /// outside a transaction is retried later).
    pub(super) fn error(self, text: String) -> ExecError {
        match self {
            Self::Retry | Self::PlanAgain => ExecError::Transient(text),
            Self::ConditionFailed | Self::Permanent => ExecError::Permanent(text),
        }
    }
}

/// A failed request's class and its one-line description.
pub(super) fn classify<E, R>(op: &str, err: &SdkError<E, R>) -> (ErrorClass, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let text = match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            format!(
                "{op}: {}: {}",
                e.code().unwrap_or("Unknown"),
                e.message().unwrap_or("")
            )
        }
        other => format!(
            "{op}: {}",
            aws_smithy_types::error::display::DisplayErrorContext(other)
        ),
    };
    (ErrorClass::of(err), text)
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
            (Some("ProvisionedThroughputExceededException"), C::Retry),
            (Some("ThrottlingException"), C::Retry),
            (Some("InternalServerError"), C::Retry),
            (Some("SomethingNew"), C::Retry),
            (None, C::Retry),
        ] {
            assert_eq!(ErrorClass::of_code(code), class, "{code:?}");
        }
        // Planning again is never a dead letter.
        assert!(C::PlanAgain.error("x".into()).is_transient());
        assert!(!C::Permanent.error("x".into()).is_transient());
    }
}
