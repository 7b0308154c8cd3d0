//! Who may call what: every role against every endpoint, plus missing and wrong tokens.

mod api_support;

use api_support::{Api, Harness};
use poolguard::config::Role;
use reqwest::Method;

const ENDPOINTS: [(Method, &str, bool); 7] = [
    // (method, path, admin only)
    (Method::GET, "/api/v1/queries", false),
    (Method::GET, "/api/v1/hits", false),
    (Method::GET, "/api/v1/stats", false),
    (Method::GET, "/api/v1/clients/10.20.3.7", false),
    (Method::GET, "/api/v1/openapi.json", false),
    (Method::POST, "/api/v1/ledger/reload", true),
    (Method::GET, "/api/v1/hits?format=csv", false),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_matrix_401_and_403() {
    let h = Harness::new(|_| {});
    let ledger_file = h.dir.path().join("ledger.csv");
    std::fs::write(&ledger_file, api_support::LEDGER).expect("write ledger");
    let api = Api::start(&h, Some(ledger_file)).await;
    for (method, path, admin_only) in ENDPOINTS {
        let url = format!("{}{path}", api.base);
        // No token, a wrong token, a malformed header: 401 with the JSON error shape.
        let none = api
            .http
            .request(method.clone(), &url)
            .send()
            .await
            .expect("send");
        assert_eq!(none.status(), 401, "{method} {path} without token");
        assert!(none.headers().contains_key("www-authenticate"));
        let body: serde_json::Value = none.json().await.expect("json");
        assert!(body["error"].is_string());
        let wrong = api
            .http
            .request(method.clone(), &url)
            .bearer_auth("0".repeat(64))
            .send()
            .await
            .expect("send");
        assert_eq!(wrong.status(), 401, "{method} {path} with wrong token");
        let basic = api
            .http
            .request(method.clone(), &url)
            .header("authorization", format!("Basic {}", api.token(Role::Admin)))
            .send()
            .await
            .expect("send");
        assert_eq!(basic.status(), 401, "{method} {path} with Basic scheme");
        for role in [Role::Viewer, Role::Investigator, Role::Feeds, Role::Admin] {
            let r = api
                .http
                .request(method.clone(), &url)
                .bearer_auth(api.token(role))
                .send()
                .await
                .expect("send");
            let want = if admin_only && role != Role::Admin {
                403
            } else {
                200
            };
            assert_eq!(r.status().as_u16(), want, "{method} {path} as {role:?}");
        }
    }
    // Open endpoints need no token.
    for path in ["/healthz", "/metrics"] {
        let r = api
            .http
            .get(format!("{}{path}", api.base))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "{path}");
    }
    api.stop().await;
}

#[test]
fn permissions_per_role() {
    use poolguard::api::Permission::*;
    let allowed = |p: poolguard::api::Permission| {
        [Role::Viewer, Role::Investigator, Role::Feeds, Role::Admin]
            .into_iter()
            .filter(|r| p.allows(*r))
            .collect::<Vec<_>>()
    };
    assert_eq!(allowed(ReadEvidence).len(), 4);
    assert_eq!(allowed(WriteFeeds), vec![Role::Feeds, Role::Admin]);
    assert_eq!(
        allowed(WriteIncidents),
        vec![Role::Investigator, Role::Admin]
    );
    assert_eq!(allowed(Admin), vec![Role::Admin]);
}
