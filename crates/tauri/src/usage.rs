//! Usage reports (issue #68 item 3) to the seller's relay (`relay serve --record-usage`):
//! `record_usage`. The report, its idempotency id and the sends again with the same id are the
//! core's ([`polar_license::Licensing::record_usage`], `polar_license::usage::RecordUsage`);
//! here the answer only becomes typed data for the webview.

use crate::answers::LicenseError;
use crate::PolarLicense;
use polar_license::usage::UsageAnswer;
use polar_license::{Error, Key, Reason};
use serde::{Deserialize, Serialize};
use tauri::State;

/// `recordUsage`'s answer: the report was kept by the relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRecorded {
    /// The report's idempotency id (the one given, or the one the core made: a UUID v4).
    pub id: String,
    /// Recorded before under this id: counted once.
    pub duplicate: bool,
    /// The meter's balance as the relay knows it after this report; `null` when not read yet.
    pub balance: Option<f64>,
}

/// Why a report was not recorded: a [`LicenseError`] (`code` `credits_exhausted`, Polar's
/// denial of the key, `invalid_input`, `offline`, `rate_limited`, … or `usage_backlog`: too
/// many reports wait at the relay, send it again later with the same `id`), with the balance
/// for `credits_exhausted` and the report's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageError {
    /// The failure, as every command's.
    #[serde(flatten)]
    pub error: LicenseError,
    /// `credits_exhausted`: the balance the relay knows (at or below zero); else `null`.
    pub balance: Option<f64>,
    /// The report's idempotency id: sent again with it, the report counts once (`""` when the
    /// report was refused before it had one).
    pub id: String,
}

impl UsageError {
    fn of(id: String, error: &Error) -> UsageError {
        UsageError {
            error: LicenseError::of(error),
            balance: None,
            id,
        }
    }
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for UsageError {}

/// Reports `units` of `meter` used with `key` (default: the remembered key) to the seller's
/// relay at `relay` (default: the plugin's relay, `relay_url`, else its base URL), with the app's
/// idempotency `id` (default: a new UUID v4). Resolves to the recorded report; rejects with a
/// [`UsageError`]. `units` `null` (what `JSON.stringify` makes of NaN and the infinities) is
/// `invalid_input`.
#[tauri::command]
pub(crate) async fn record_usage(
    state: State<'_, PolarLicense>,
    meter: String,
    units: Option<f64>,
    id: Option<String>,
    key: Option<String>,
    relay: Option<String>,
) -> Result<UsageRecorded, UsageError> {
    // JSON has no NaN nor infinities: the webview's `JSON.stringify` sends them as `null`.
    let Some(units) = units else {
        return Err(UsageError::of(
            String::new(),
            &Error::invalid("units", "must be a finite number above 0"),
        ));
    };
    let licensing = state.licensing().clone();
    let (id, answer) = tauri::async_runtime::spawn_blocking(move || {
        let key = match key {
            Some(key) => Key::new(key),
            None => match licensing.remembered_or_error() {
                Ok(key) => key,
                Err(e) => return (String::new(), Err(e)),
            },
        };
        licensing.record_usage(relay.as_deref(), &key, &meter, units, id.as_deref())
    })
    .await
    .map_err(|e| {
        UsageError::of(
            String::new(),
            &Error::Cache {
                detail: format!("the usage task stopped: {e}"),
            },
        )
    })?;
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => return Err(UsageError::of(id, &e)),
    };
    // The relay's answer: recorded, or its refusal, in the core's words
    // (`UsageAnswer::message`).
    let said = answer.message();
    let plain = |code: &str, class: &str, status: u16| LicenseError {
        code: code.to_string(),
        class: class.to_string(),
        user_message: said.as_ref().map(|m| m.text()).unwrap_or_default(),
        next_step: said.as_ref().map(|m| m.next_step().to_string()),
        detail: code.to_string(),
        hint: None,
        field: None,
        status: Some(status),
        retry_after: None,
        remaining_usages: None,
        stopped: None,
    };
    match answer {
        UsageAnswer::Recorded {
            duplicate, balance, ..
        } => Ok(UsageRecorded {
            id,
            duplicate,
            balance,
        }),
        UsageAnswer::CreditsExhausted { balance } => {
            let reason = Reason::CreditsExhausted;
            Err(UsageError {
                error: plain(reason.code(), reason.class().as_str(), 402),
                balance: Some(balance),
                id,
            })
        }
        UsageAnswer::Backlog { retry_after } => {
            // The core's code (`polar_license::usage::BACKLOG_CODE`), not one of this face's.
            let mut error = plain(
                polar_license::usage::BACKLOG_CODE,
                Reason::RateLimited.class().as_str(),
                429,
            );
            error.retry_after = retry_after;
            Err(UsageError {
                error,
                balance: None,
                id,
            })
        }
        UsageAnswer::Denied(denial) => Err(UsageError {
            error: LicenseError::denied(&denial),
            balance: None,
            id,
        }),
    }
}
