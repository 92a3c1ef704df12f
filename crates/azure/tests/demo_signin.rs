//! The tray's demo sign-in against an in-process simulator: the real authorization-code +
//! PKCE flow with `prompt=none` and `login_hint`, no browser.

use jumpgate_azure::signin::{self, Authority};

async fn sim(control: bool) -> jumpgate_sim::SimHandle {
    jumpgate_azure::init_tls();
    jumpgate_sim::SimBuilder::new("demo")
        .control(control)
        .start()
        .await
        .expect("simulator")
}

fn authority(sim: &jumpgate_sim::SimHandle) -> Authority {
    let c = sim.client_config();
    Authority {
        base: format!("{}/{}", c.base_url, c.tenant_id),
        client_id: c.client_id,
        tenant: c.tenant_id,
        arm_scope: "https://management.azure.com/.default".into(),
        graph_audience: "https://graph.microsoft.com".into(),
    }
}

#[tokio::test]
async fn each_demo_user_signs_in_without_a_browser() {
    let sim = sim(true).await;
    for upn in [
        "alice@contoso.example",
        "bob@contoso.example",
        "carol@contoso.example",
        "dave@contoso.example",
    ] {
        let tokens = signin::demo(&authority(&sim), upn, None)
            .await
            .expect("signed in");
        assert_eq!(tokens.account.upn, upn);
        assert!(
            tokens.refresh_token.is_some(),
            "offline_access was asked for"
        );
    }
}

#[tokio::test]
async fn without_the_control_api_it_fails_at_once_and_says_why() {
    let sim = sim(false).await;
    let started = std::time::Instant::now();
    let err = signin::demo(&authority(&sim), "alice@contoso.example", None)
        .await
        .expect_err("no silent sign-in without --control");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "it did not wait for the timeout"
    );
    let text = err.to_string();
    assert!(
        text.contains("demo sign-in as alice@contoso.example failed"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unknown_user_is_refused() {
    let sim = sim(true).await;
    let err = signin::demo(&authority(&sim), "mallory@contoso.example", None)
        .await
        .expect_err("unknown user");
    let text = err.to_string();
    assert!(
        text.contains("demo sign-in as mallory@contoso.example failed"),
        "{text}"
    );
}
