//! Graph API errors, shared by WhatsApp and Messenger (both are Graph API endpoints):
//! `{"error":{"message","type","code","error_subcode","error_data","fbtrace_id"}}`
//! (<https://developers.facebook.com/docs/graph-api/guides/error-handling>; WhatsApp's
//! variant with `error_data.messaging_product` and `details`:
//! <https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes>).
//!
//! The HTTP statuses follow the error-code tables; clients are told to key on `code`, not
//! on the status, and so should the gateway's connectors.

use rand::Rng;
use serde_json::{json, Value};

use super::exchange::random_alnum;

/// One Graph API error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    /// HTTP status of the answer.
    pub http: u16,
    /// `error.code`.
    pub code: i64,
    /// `error.error_subcode`, when the error has one.
    pub subcode: Option<i64>,
    /// The title, which `error.message` repeats as `(#code) title`.
    pub title: String,
    /// `error.error_data.details` (WhatsApp), when present.
    pub details: Option<String>,
}

impl GraphError {
    /// An error with no subcode or details.
    pub fn new(http: u16, code: i64, title: impl Into<String>) -> GraphError {
        GraphError {
            http,
            code,
            subcode: None,
            title: title.into(),
            details: None,
        }
    }

    /// The same with `details`.
    pub fn details(mut self, details: impl Into<String>) -> GraphError {
        self.details = Some(details.into());
        self
    }

    /// The same with `subcode`.
    pub fn subcode(mut self, subcode: i64) -> GraphError {
        self.subcode = Some(subcode);
        self
    }

    /// `error.message`: the code in `(#…)` before the title (190 is written bare, as Graph
    /// does for OAuth errors).
    pub fn message(&self) -> String {
        if self.code == 190 {
            self.title.clone()
        } else {
            format!("(#{}) {}", self.code, self.title)
        }
    }

    /// The JSON body; `whatsapp` adds `error_data.messaging_product`.
    pub fn body(&self, whatsapp: bool, rng: &mut impl Rng) -> Value {
        let mut error = json!({
            "message": self.message(),
            "type": "OAuthException",
            "code": self.code,
            "fbtrace_id": random_alnum(rng, 23),
        });
        if let Some(sub) = self.subcode {
            error["error_subcode"] = json!(sub);
        }
        match (&self.details, whatsapp) {
            (Some(d), true) => {
                error["error_data"] = json!({"messaging_product": "whatsapp", "details": d});
            }
            (Some(d), false) => error["error_data"] = json!({ "details": d }),
            (None, _) => {}
        }
        json!({ "error": error })
    }

    /// The key counted in `refused`.
    pub fn key(&self) -> String {
        match self.subcode {
            Some(s) => format!("{}/{s}", self.code),
            None => self.code.to_string(),
        }
    }
}

/// The WhatsApp Cloud API error for `code`, from its error-code reference.
pub fn whatsapp_error(code: i64) -> GraphError {
    let (http, title, details) = match code {
        0 => (401, "AuthException", "We were unable to authenticate the app user."),
        190 => (401, "Invalid OAuth access token - Cannot parse access token", ""),
        4 => (400, "Application request limit reached", "The app has reached its API call rate limit."),
        80007 => (400, "Rate limit issues", "The WhatsApp Business Account has reached its rate limit."),
        100 => (400, "Invalid parameter", "The request included one or more unsupported or misspelled parameters."),
        130429 => (400, "Rate limit hit", "Message failed to send because there were too many messages sent from this phone number in a short period of time"),
        131000 => (500, "Something went wrong", "Message failed to send due to an unknown error."),
        131008 => (400, "Required parameter is missing", "The request is missing a required parameter."),
        131009 => (400, "Parameter value is not valid", "One or more parameter values are invalid."),
        131016 => (503, "Service unavailable", "A service is temporarily unavailable."),
        131026 => (400, "Message undeliverable", "Unable to deliver message. The recipient may not be a WhatsApp user, may not have accepted the latest terms, or may use an old WhatsApp version."),
        131047 => (400, "Re-engagement message", "Message failed to send because more than 24 hours have passed since the customer last replied to this number."),
        131056 => (400, "(Business Account, Consumer Account) pair rate limit hit", "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time."),
        132000 => (400, "Number of parameters does not match the expected number of params", "The number of variable parameter values does not match the number of variables the template has."),
        132001 => (404, "Template does not exist", "The template does not exist in the specified language or the template has not been approved."),
        _ => (400, "Simulated error", "An error code the simulator has no title for."),
    };
    let e = GraphError::new(http, code, title);
    if details.is_empty() {
        e
    } else {
        e.details(details)
    }
}

/// The Messenger Platform error for `code`, from its common error codes.
pub fn messenger_error(code: i64) -> GraphError {
    match code {
        190 => GraphError::new(401, 190, "Invalid OAuth access token."),
        2 => GraphError::new(
            500,
            2,
            "An unexpected error has occurred. Please retry your request later.",
        ),
        10 => GraphError::new(400, 10, "This message is sent outside of allowed window.")
            .subcode(2_018_278),
        100 => GraphError::new(400, 100, "Invalid parameter"),
        551 => {
            GraphError::new(400, 551, "This person isn't available right now.").subcode(1_545_041)
        }
        613 => GraphError::new(400, 613, "Calls to this api have exceeded the rate limit."),
        _ => GraphError::new(400, code, "Simulated error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn whatsapp_shape() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let b = whatsapp_error(131047).body(true, &mut rng);
        let e = &b["error"];
        assert_eq!(e["code"], 131047);
        assert_eq!(e["type"], "OAuthException");
        assert_eq!(e["message"], "(#131047) Re-engagement message");
        assert_eq!(e["error_data"]["messaging_product"], "whatsapp");
        assert!(e["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("24 hours"));
        assert_eq!(e["fbtrace_id"].as_str().unwrap().len(), 23);
        assert_eq!(whatsapp_error(190).http, 401);
        assert_eq!(whatsapp_error(132001).http, 404);
    }

    #[test]
    fn messenger_window_error() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let e = messenger_error(10);
        assert_eq!(e.key(), "10/2018278");
        let b = e.body(false, &mut rng);
        assert_eq!(b["error"]["error_subcode"], 2_018_278);
        assert_eq!(
            b["error"]["message"],
            "(#10) This message is sent outside of allowed window."
        );
        assert!(b["error"].get("error_data").is_none());
    }
}
