//! Carrying out an [`Outcome`] on the request: the only part that needs the SDK.

use wasmplug_sdk::{Action, HttpContext};

use crate::{CONSUMER_HEADER, Outcome, Rejection, denial_headers};

/// Carries out `outcome`: forwards untouched ([`Outcome::Pass`]), forwards with
/// `X-Mse-Consumer: <name>` (replacing any the client sent), or answers the denial's status
/// with its text/plain body (and, for a 401, `WWW-Authenticate: <challenge>`).
///
/// `plugin` prefixes the debug log lines; `challenge` is e.g. `Basic realm=MSE Gateway`.
#[inline]
pub fn respond<D: Rejection>(ctx: &mut HttpContext, plugin: &str, challenge: &str, outcome: Outcome<'_, D>) -> Action {
    match outcome {
        Outcome::Pass => Action::Continue,
        Outcome::Authenticated(name) => {
            log::debug!("{plugin}: consumer `{name}` authenticated");
            // Replace, so a client cannot smuggle in a consumer name of its own.
            ctx.set_request_header(CONSUMER_HEADER, name);
            Action::Continue
        }
        Outcome::Denied(denial) => {
            log::debug!("{plugin}: {} {}", denial.status(), denial.body());
            ctx.send_response(denial.status(), &denial_headers(denial.status(), challenge), denial.body());
            Action::Pause
        }
    }
}
