//! ARM's paged lists: `{"value": [...], "nextLink": URL}`.
//!
//! Every list the specs mark `x-ms-pageable` answers through [`page`], which takes the whole
//! list and the request and cuts out the page the request asks for. With the tenant's
//! `page_size` unset, that is the whole list without `nextLink`, as before.
//!
//! A `nextLink` is an absolute URL on the simulator's own base URL: the request's path and
//! query (so `api-version` and `$filter` are kept as the client sent them) with
//! `$skiptoken=<opaque>` in place of any earlier one. The token is base64url text naming the
//! offset of the next item, sealed with a hash of the path, so a garbled token, or one taken
//! to another path, gets ARM's 400 error instead of some other page. Lists are computed afresh
//! for every page, so an item added or removed between pages shifts the rest, as it does in
//! ARM.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::{ok, ArmResult, Call};
use crate::error::ArmError;
use crate::state::World;

const SKIPTOKEN: &str = "$skiptoken";

/// The seal over a token's offset, bound to the (case-insensitive) path it pages.
fn seal(path: &str, offset: usize) -> String {
    let digest = Sha256::digest(format!(
        "jumpgate-sim page|{}|{offset}",
        path.to_ascii_lowercase()
    ));
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

fn encode(path: &str, offset: usize) -> String {
    B64.encode(format!("{offset}.{}", seal(path, offset)))
}

fn decode(path: &str, token: &str) -> Option<usize> {
    let text = String::from_utf8(B64.decode(token.trim()).ok()?).ok()?;
    let (offset, mac) = text.split_once('.')?;
    let offset: usize = offset.parse().ok()?;
    (mac == seal(path, offset)).then_some(offset)
}

fn invalid_token(token: &str) -> ArmError {
    ArmError::bad_request(
        "InvalidSkipToken",
        format!("The value '{token}' of the $skiptoken query parameter is not valid: use the nextLink of the previous page as it was given."),
    )
}

/// The URL of the page that starts at `offset`.
fn next_link(call: &Call, offset: usize) -> String {
    let mut pairs: Vec<&str> = call
        .raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or("");
            let key = url::form_urlencoded::parse(key.as_bytes())
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default();
            !key.eq_ignore_ascii_case(SKIPTOKEN)
        })
        .collect();
    let token = format!("{SKIPTOKEN}={}", encode(&call.path, offset));
    pairs.push(&token);
    format!("{}{}?{}", call.sim.base_url, call.path, pairs.join("&"))
}

/// Answers a pageable list: the page of `items` the request's `$skiptoken` asks for, with a
/// `nextLink` while more follow. `kind` is the collection's name (such as
/// `roleEligibilityScheduleInstances`), matched against the tenant's `empty_first_page`.
pub fn page(call: &Call, world: &World, kind: &str, items: Vec<Value>) -> ArmResult {
    let size = world.tenant.page_size;
    let token = call
        .query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(SKIPTOKEN))
        .map(|(_, v)| v.as_str());
    let start = match token {
        Some(token) => decode(&call.path, token).ok_or_else(|| invalid_token(token))?,
        None => {
            let empty_first = world
                .tenant
                .empty_first_page
                .iter()
                .any(|k| k.eq_ignore_ascii_case(kind));
            if empty_first && size.is_some() {
                return Ok(ok(json!({"value": [], "nextLink": next_link(call, 0)})));
            }
            0
        }
    };
    let total = items.len();
    let start = start.min(total);
    let end = match size {
        Some(n) => start.saturating_add(n).min(total),
        None => total,
    };
    let value: Vec<Value> = items.into_iter().skip(start).take(end - start).collect();
    let mut body = json!({ "value": value });
    if end < total {
        body["nextLink"] = json!(next_link(call, end));
    }
    Ok(ok(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_tampering_and_other_paths() {
        let path = "/providers/Microsoft.Authorization/roleAssignmentApprovals";
        let token = encode(path, 4);
        assert_eq!(decode(path, &token), Some(4));
        assert_eq!(decode(&path.to_ascii_uppercase(), &token), Some(4));
        assert_eq!(decode("/subscriptions", &token), None);
        let forged = B64.encode(format!("6.{}", seal(path, 4)));
        assert_eq!(decode(path, &forged), None);
        for garbage in ["", "!!", "bm90IGEgdG9rZW4", "MTIz"] {
            assert_eq!(decode(path, garbage), None, "{garbage}");
        }
    }
}
