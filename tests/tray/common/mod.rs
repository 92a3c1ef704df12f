//! What the app's integration tests share: the binaries, the demo simulator's address, an
//! approver acting through ARM, and what dunst has shown.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

/// The `jumpgate-tray` binary under test.
pub fn tray() -> std::path::PathBuf {
    jumpgate_tests::bin("jumpgate-tray")
}

pub fn jumpgate() -> std::path::PathBuf {
    jumpgate_tests::bin("jumpgate")
}

/// The demo's simulator: its address (what it shows and derefs to) and the bearer token its
/// control API asks for.
pub struct DemoSim {
    pub url: String,
    pub control_token: String,
}

impl std::fmt::Display for DemoSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl std::ops::Deref for DemoSim {
    type Target = str;
    fn deref(&self) -> &str {
        &self.url
    }
}

impl DemoSim {
    /// A control call (`/_sim/…`) with the run's bearer token.
    pub fn control(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, format!("{}/_sim{path}", self.url))
            .bearer_auth(&self.control_token)
    }
}

/// The demo's simulator, from the configuration the app wrote.
pub fn sim_url(config: &str) -> DemoSim {
    let text = std::fs::read_to_string(config).expect("config");
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("{key} in {config}"))
            .to_string()
    };
    DemoSim {
        url: value("arm_endpoint"),
        control_token: value("control_token"),
    }
}

/// An ARM token for `upn` from the simulator's control API.
pub async fn token(sim: &DemoSim, upn: &str) -> String {
    let answer: serde_json::Value = sim
        .control(reqwest::Method::POST, "/token")
        .json(&serde_json::json!({"upn": upn}))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    answer["access_token"].as_str().expect("token").to_string()
}

/// The approvals waiting for the holder of `token`, as ARM lists them.
async fn approvals_of(http: &reqwest::Client, sim: &DemoSim, token: &str) -> serde_json::Value {
    http.get(format!("{sim}/providers/Microsoft.Authorization/roleAssignmentApprovals?api-version=2021-01-01-preview&$filter=asApprover()"))
        .bearer_auth(token)
        .send()
        .await
        .expect("approvals")
        .json()
        .await
        .expect("json")
}

/// Waits (up to `secs`) until a request waits for `upn`'s approval.
pub async fn approval_waits_for(sim: &DemoSim, upn: &str, secs: u64) {
    let http = reqwest::Client::new();
    let token = token(sim, upn).await;
    let started = std::time::Instant::now();
    loop {
        let approvals = approvals_of(&http, sim, &token).await;
        if approvals["value"].as_array().is_some_and(|a| !a.is_empty()) {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(secs),
            "no request waited for {upn}'s approval"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `upn` approves the first request waiting for them, through ARM as Azure's portal would.
pub async fn approve_as(sim: &DemoSim, upn: &str, justification: &str) {
    let http = reqwest::Client::new();
    let token = token(sim, upn).await;
    let approvals = approvals_of(&http, sim, &token).await;
    let approval = &approvals["value"][0];
    let path = format!(
        "{sim}/providers/Microsoft.Authorization/roleAssignmentApprovals/{}/stages/{}?api-version=2021-01-01-preview",
        approval["name"].as_str().expect("an approval waiting"),
        // A stage is addressed by the last segment of its id (its name may differ).
        approval["properties"]["stages"][0]["id"]
            .as_str()
            .and_then(|id| id.rsplit('/').next())
            .expect("stage")
    );
    let decided = http
        .patch(path)
        .bearer_auth(&token)
        .json(&serde_json::json!({"reviewResult": "Approve", "justification": justification}))
        .send()
        .await
        .expect("approve");
    assert!(decided.status().is_success(), "{}", decided.status());
}

/// The notifications dunst has shown, closed first (its history lists closed ones only):
/// each with its id, which grows with every notification of the session.
fn dunst_history() -> Vec<(i64, String)> {
    let _ = Command::new("dunstctl").arg("close-all").status();
    let out = Command::new("dunstctl")
        .arg("history")
        .output()
        .expect("dunstctl");
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    history["data"][0]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            (
                n["id"]["data"].as_i64().unwrap_or(0),
                format!(
                    "{}: {}\n",
                    n["summary"]["data"].as_str().unwrap_or(""),
                    n["body"]["data"].as_str().unwrap_or("")
                ),
            )
        })
        .collect()
}

/// Where the desktop's notifications stand now: what another test (or test binary) in the
/// same session showed is before it.
pub fn notification_mark() -> i64 {
    dunst_history().iter().map(|(id, _)| *id).max().unwrap_or(0)
}

/// What dunst has shown since `mark`.
pub fn notifications_seen(mark: i64) -> String {
    dunst_history()
        .into_iter()
        .filter(|(id, _)| *id > mark)
        .map(|(_, text)| text)
        .collect()
}

/// `jumpgate signin` for `upn` through the demo's configuration, playing the browser.
pub async fn cli_sign_in(config: &str, upn: &str) {
    let mut child = Command::new(jumpgate())
        .args(["--config", config, "signin", "--no-open", "--user", upn])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("signin");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("authorize URL");
    play_browser(line.trim(), upn).await;
    assert!(child.wait().expect("signin").success());
}

/// What the system browser and the user do with an authorize URL: sign in as `upn` on the
/// simulator's page, and follow its redirect to the app's loopback listener.
pub async fn play_browser(authorize_url: &str, upn: &str) {
    let url = url::Url::parse(authorize_url).expect("URL");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    form.push(("upn".into(), upn.into()));
    let mut action = url.clone();
    action.set_query(None);
    let answer = http
        .post(action)
        .form(&form)
        .send()
        .await
        .expect("sign-in page");
    let location = answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    http.get(&location).send().await.expect("loopback");
}
